"""Ablation of scoring both orders of a pair (``--swap-average``) on the validation sets only.

    python scripts/ablate_swap.py [CAMPAIGN_DIR] [--profile camera] [--append campaign/ablations.jsonl]

For the shipped default nets (their stored (k, tau)) and a campaign's current checkpoints
(``CAMPAIGN_DIR/<profile>-{initial,boundary}/checkpoint.pt``, ``--profile``, default camera; the
(k, tau) given by ``--k/--tau``), scored once in one order (the paper's method) and once in both
(:class:`bamf_lib.fusion.scorers.SwapAveraged`): the mean refined pixel accuracy on the camera
tuning set ``camera_validation_set(24, seed=1)``, the camera validation set (seed 2) and the
paper's Gaussian validation sets (``groundtruth_set(8, seed=2, images="kodak")``,
``groundtruth_set(8, seed=2)``).  One JSON row per (nets, order).  No test pair is read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_candidate import refined_accuracy  # noqa: E402
from campaign_validate import checkpoint_net  # noqa: E402

from bamf_lib import load_pretrained  # noqa: E402
from bamf_lib.config import FDBConfig  # noqa: E402
from bamf_lib.evaluation.groundtruth import camera_validation_set, groundtruth_set  # noqa: E402
from bamf_lib.fusion.boundary import fdb_for  # noqa: E402
from bamf_lib.fusion.scorers import SwapAveraged, as_scorer  # noqa: E402


def validation_sets() -> dict:
    """The four validation sets every ablation scores, by the label of its JSON column."""
    return {
        "camera_tuning_seed1": camera_validation_set(24, seed=1),
        "camera_seed2": camera_validation_set(24, seed=2),
        "gaussian_kodak": groundtruth_set(8, seed=2, images="kodak"),
        "gaussian_embedded": groundtruth_set(8, seed=2),
    }


def nets_under_test(folder: Path, profile: str = "camera", k: int = 5, tau: float = 0.3) -> dict:
    """``{label: (initial, boundary, fdb)}`` for the shipped nets (their stored (k, tau)) and the
    checkpoints of ``profile``'s campaign in ``folder`` (``(k, tau)`` given)."""
    si = load_pretrained("initial")
    ci, e_init = checkpoint_net(folder / f"{profile}-initial" / "checkpoint.pt", profile)
    cb, e_bound = checkpoint_net(folder / f"{profile}-boundary" / "checkpoint.pt", profile)
    label = "campaign" if profile == "camera" else f"campaign {profile}"
    return {
        "shipped": (si, load_pretrained("boundary"), fdb_for(si)),
        f"{label} epochs {e_init}/{e_bound}": (ci, cb, FDBConfig(k=k, tau=tau)),
    }


def parse_args(doc: str) -> argparse.Namespace:
    """The arguments every ablation script takes (one scoring thread is set too)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="campaign", type=Path)
    ap.add_argument("--profile", default="camera", help="the campaign whose checkpoints are scored")
    ap.add_argument("--k", type=int, default=5, help="FDB window of the campaign's nets (default 5)")
    ap.add_argument("--tau", type=float, default=0.3, help="FDB margin of the campaign's nets (default 0.3)")
    ap.add_argument("--append", type=Path, help="a JSON-lines file the rows are appended to")
    torch.set_num_threads(1)
    return ap.parse_args()


def emit(row: dict, append: Path | None) -> None:
    """Print one ablation row as JSON and append it to ``append`` if given."""
    line = json.dumps(row)
    print(line, flush=True)
    if append:
        with open(append, "a") as fh:
            fh.write(line + "\n")


def main() -> None:
    args = parse_args(__doc__)
    sets = validation_sets()
    nets = nets_under_test(args.folder, args.profile, args.k, args.tau)
    for name, (initial, boundary, fdb) in nets.items():
        for swap in (False, True):
            t0 = time.perf_counter()
            scored = [as_scorer(n, device="cpu") for n in (initial, boundary)]
            scored = [SwapAveraged(n) for n in scored] if swap else scored
            row = {"nets": name, "fdb": [fdb.k, fdb.tau], "swap_average": swap}
            for label, pairs in sets.items():
                row[label] = round(refined_accuracy(pairs, *scored, fdb), 4)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            emit(row, args.append)


if __name__ == "__main__":
    main()
