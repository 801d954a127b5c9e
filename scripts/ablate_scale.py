"""Ablation of scoring the initial net at two scales (:class:`~bamf_lib.fusion.scorers.TwoScale`)
on the validation sets only.

    python scripts/ablate_scale.py [CAMPAIGN_DIR] [--profile camera] [--append campaign/scale_ablation.jsonl]

For the shipped default nets (their stored (k, tau)) and a campaign's current checkpoints (the
(k, tau) given by ``--k/--tau``), each in one order and in both (``SwapAveraged``), the initial
net scored at full size only (the paper's method) and at full and half size (``TwoScale``, the
maps combined by their mean log-odds); the boundary net is unchanged.  Each row gives the mean
refined pixel accuracy on the sets of ``scripts/ablate_swap.py``: the camera tuning set
(``camera_validation_set(24, seed=1)``), the camera validation set (seed 2) and the paper's
Gaussian validation sets.  No test pair is read.

Reading, fixed before the first run: the option helps a set of nets if, in the same order,
two scales raise the tuning-set accuracy and lose no more than 0.005 on any other set.  It
stays an option whatever the result (it departs from the paper and adds a quarter of the
initial net's time).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_swap import emit, nets_under_test, parse_args, validation_sets  # noqa: E402
from campaign_candidate import refined_accuracy  # noqa: E402

from bamf_lib.fusion.scorers import SwapAveraged, TwoScale, as_scorer  # noqa: E402


def main() -> None:
    args = parse_args(__doc__)
    sets = validation_sets()
    for name, (initial, boundary, fdb) in nets_under_test(args.folder, args.profile, args.k, args.tau).items():
        for swap in (False, True):
            for two in (False, True):
                t0 = time.perf_counter()
                si, sb = (as_scorer(n, device="cpu") for n in (initial, boundary))
                si, sb = (SwapAveraged(si), SwapAveraged(sb)) if swap else (si, sb)
                si = TwoScale(si) if two else si
                row = {"nets": name, "fdb": [fdb.k, fdb.tau], "swap_average": swap, "two_scale": two}
                for label, pairs in sets.items():
                    row[label] = round(refined_accuracy(pairs, si, sb, fdb), 4)
                row["seconds"] = round(time.perf_counter() - t0, 1)
                emit(row, args.append)


if __name__ == "__main__":
    main()
