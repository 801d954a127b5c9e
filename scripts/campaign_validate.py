"""The campaign's validation curve: score its checkpoints on the camera validation set.

    python scripts/campaign_validate.py [CAMPAIGN_DIR] [--profile camera] [--pairs 24] [--append campaign/validation.jsonl]
    python scripts/campaign_validate.py --shipped      # the same scores for the shipped default nets

Builds the initial and boundary networks from ``CAMPAIGN_DIR/PROFILE-{initial,boundary}/checkpoint.pt``
(default ``campaign``, profile ``camera``; ``camera2`` is the second campaign) and scores their decision maps on ``camera_validation_set(pairs, seed=2)``
with the shipped default's stored (k, tau), held fixed so the curve shows the networks only;
tuning (k, tau) for a candidate is the selection script's job (``campaign/README.md``). Prints
one JSON row (the epochs of both checkpoints, mean and worst pixel accuracy, initial net alone
and refined) and appends it to ``--append`` when given. No test pair is read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bamf_lib import load_pretrained
from bamf_lib.config import get_profile
from bamf_lib.evaluation.groundtruth import camera_validation_set, evaluate_decisions
from bamf_lib.fusion.boundary import fdb_for
from bamf_lib.fusion.pipeline import fuse
from bamf_lib.nets.checkpoint import load_checkpoint
from bamf_lib.nets.models import build_model


def checkpoint_net(path: Path, profile_name: str = "camera"):
    """The network stored in a campaign profile's checkpoint, in eval mode, and its epoch."""
    profile = get_profile(profile_name)
    state = load_checkpoint(path, profile.train, torch.device("cpu"))
    model = build_model(profile.model)
    model.load_state_dict(state["model"])
    return model.eval(), int(state["epoch"])


def validate(folder: Path | None, pairs: int, profile: str = "camera") -> dict:
    """Scores of the campaign's checkpoints in ``folder``, or of the shipped nets if None."""
    if folder is None:
        initial, boundary, e_init, e_bound = load_pretrained("initial"), load_pretrained("boundary"), None, None
    else:
        initial, e_init = checkpoint_net(folder / f"{profile}-initial" / "checkpoint.pt", profile)
        boundary, e_bound = checkpoint_net(folder / f"{profile}-boundary" / "checkpoint.pt", profile)
    fdb = fdb_for(load_pretrained("initial"))

    def decider(refine: bool):
        return lambda a, b: (
            fuse([a, b], refine=refine, fdb=fdb, device="cpu", initial=initial, boundary=boundary).decision_map == 0
        )

    t0 = time.perf_counter()
    scores = evaluate_decisions(
        camera_validation_set(pairs, seed=2), {"initial only": decider(False), "refined": decider(True)}
    )
    row = {
        "nets": "shipped" if folder is None else "campaign",  # not the folder: rows are committed
        "profile": None if folder is None else profile,
        "epoch_initial": e_init,
        "epoch_boundary": e_bound,
        "pairs": pairs,
        "fdb": {"k": fdb.k, "tau": fdb.tau},
    }
    for name, s in scores.items():
        row[name] = {
            "mean": round(s["mean"]["accuracy"], 5),
            "worst": round(min(p["accuracy"] for p in s["per_pair"].values()), 5),
        }
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="campaign", type=Path)
    ap.add_argument("--profile", default="camera", help="the campaign's profile (camera, camera2)")
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--append", type=Path)
    ap.add_argument("--shipped", action="store_true", help="score the shipped default nets instead")
    args = ap.parse_args()
    row = validate(None if args.shipped else args.folder, args.pairs, args.profile)
    print(json.dumps(row))
    if args.append:
        with open(args.append, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
