"""Ablation of filling unsure pixels from the nearest sure decision (``PostprocessConfig.fill_margin``,
:func:`bamf_lib.fusion.postprocess.fill_uncertain`) on the validation sets only.

    python scripts/ablate_fill.py [CAMPAIGN_DIR] [--profile camera] [--append campaign/fill_ablation.jsonl]

For the shipped default nets (their stored (k, tau)) and a campaign's current checkpoints (the
(k, tau) given by ``--k/--tau``), each in one order and in both (``SwapAveraged``), every pair's
refined score map is computed once and post-processed with each margin of ``MARGINS`` (0 is the
paper's method).  Each row gives the mean refined pixel accuracy on the sets of
``scripts/ablate_swap.py``.  No test pair is read.

Reading, fixed before the first run: for each nets and order the margin is chosen on the camera
tuning set alone (the highest mean accuracy; a tie keeps the smaller margin), and the option
helps if the chosen margin is above 0 and loses no more than 0.005 against margin 0 on any
other set.  It stays an option whatever the result (it departs from the paper).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablate_swap import emit, nets_under_test, parse_args, validation_sets  # noqa: E402

from bamf_lib.config import PostprocessConfig  # noqa: E402
from bamf_lib.evaluation.groundtruth import evaluate_decisions  # noqa: E402
from bamf_lib.fusion.pipeline import fuse  # noqa: E402
from bamf_lib.fusion.postprocess import decision_map  # noqa: E402
from bamf_lib.fusion.scorers import SwapAveraged, as_scorer  # noqa: E402

MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3)


def main() -> None:
    args = parse_args(__doc__)
    sets = validation_sets()
    for name, (initial, boundary, fdb) in nets_under_test(args.folder, args.profile, args.k, args.tau).items():
        for swap in (False, True):
            t0 = time.perf_counter()
            si, sb = (as_scorer(n, device="cpu") for n in (initial, boundary))
            si, sb = (SwapAveraged(si), SwapAveraged(sb)) if swap else (si, sb)
            refined = {
                id(p.a): fuse([p.a, p.b], fdb=fdb, device="cpu", initial=si, boundary=sb).refined_score_map
                for pairs in sets.values()
                for p in pairs
            }
            scored = round(time.perf_counter() - t0, 1)
            for margin in MARGINS:
                post = PostprocessConfig(fill_margin=margin)
                decide = {"refined": lambda a, b, post=post, maps=refined: decision_map(maps[id(a)], post)}
                row = {"nets": name, "fdb": [fdb.k, fdb.tau], "swap_average": swap, "fill_margin": margin}
                for label, pairs in sets.items():
                    row[label] = round(float(evaluate_decisions(pairs, decide)["refined"]["mean"]["accuracy"]), 4)
                row["seconds_scoring"] = scored
                emit(row, args.append)


if __name__ == "__main__":
    main()
