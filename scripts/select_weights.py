"""Tune each network pair's FDB window and margin (k, tau) on synthetic validation, store them, and
choose among candidates: the one script that owns the values ``fuse()`` reads (``fdb_for``).

    python scripts/select_weights.py [DIR ...] [--pairs 8] [--tune-on kodak|embedded] [--json OUT] [--store]

Each DIR holds an initial and a boundary network (``initial.safetensors`` and
``boundary.safetensors``, or what ``bamf train --out DIR`` wrote; a name such as ``padded`` names a
set shipped in ``bamf_lib/weights``; default: the shipped default nets; ``--boundary-from DIR2``
takes the boundary net from elsewhere).  For each candidate:

1. (k, tau) chosen with ``bamf_lib.fusion.boundary.tune_fdb`` on ``groundtruth_set(n, seed=1,
   images=...)``: held-out images (Kodak24 photographs by default, or the embedded
   scikit-image set) over each other through procedural mattes; training never sees them and no
   test pair is read;
2. the decision maps scored on the disjoint ``groundtruth_set(n, seed=2, images="kodak")`` and on
   the small embedded set ``groundtruth_set(n, seed=2)``: pixel accuracy of the initial net alone
   (post-processed) and refined, on the fast path.

The candidate with the best mean refined accuracy over the two validation sets is the one to
ship: a choice must hold on both (a texture-trained net once ranked first on the Kodak set alone
while the embedded set showed it failing).  ``--store`` writes each candidate's tuned (k, tau)
into its initial net's metadata, where ``bamf_lib.fusion.boundary.fdb_for`` finds them; this
changes the file's hash, so re-export its ONNX graph afterwards
(``python -m bamf_lib.nets.export DIR``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bamf_lib.config import FDBConfig
from bamf_lib.evaluation.groundtruth import evaluate_decisions, groundtruth_set
from bamf_lib.fusion.boundary import tune_fdb
from bamf_lib.fusion.pipeline import fuse
from bamf_lib.nets.weightfile import load_weights, save_weights
from bamf_lib.runtime.locate import weights_path

_META = (
    "profile",
    "backgrounds",
    "receptive_field",
    "val_acc",
    "val_boundary_acc",
    "samples_seen",
    "epochs",
    "seconds",
    "device",
)


def _deciders(initial, boundary, fdb: FDBConfig) -> dict:
    def run(refine: bool):
        return lambda a, b: (
            fuse([a, b], refine=refine, fdb=fdb, device="cpu", initial=initial, boundary=boundary).decision_map == 0
        )

    return {"initial only": run(False), "refined": run(True)}


def report(
    folder: str | None, pairs: int, boundary_from: str | None = None, store: bool = False, tune_on: str = "kodak"
) -> dict:
    ipath = weights_path("initial", folder)
    bpath = weights_path("boundary", boundary_from or folder)
    initial, boundary = load_weights(ipath).eval(), load_weights(bpath).eval()
    out = {"initial": str(ipath), "boundary": str(bpath)}
    for name, m in (("initial", initial), ("boundary", boundary)):
        out[name + "_meta"] = {k: m.metadata.get(k) for k in _META}
    t0 = time.perf_counter()
    images = {"kodak": {"images": "kodak"}, "embedded": {}}[tune_on]
    tuned_on = f"groundtruth_set({pairs}, seed=1" + (", images='kodak')" if images else ")")
    tuned = tune_fdb(initial, groundtruth_set(pairs, seed=1, **images), boundary, path="fast", device="cpu")
    tuned.pop("grid")
    fdb = FDBConfig(k=tuned["k"], tau=tuned["tau"])
    out["fdb"] = {**tuned, "seconds": round(time.perf_counter() - t0, 1), "pairs": tuned_on}
    if store:
        initial.metadata["fdb"] = {"k": fdb.k, "tau": fdb.tau}
        initial.metadata["fdb_tuned_on"] = tuned_on
        save_weights(initial, ipath, initial.metadata)
    for kind in ("kodak", "embedded"):
        scored = evaluate_decisions(
            groundtruth_set(pairs, seed=2, **({"images": "kodak"} if kind == "kodak" else {})),
            _deciders(initial, boundary, fdb),
        )
        out[f"validation_{kind}"] = {name: r["mean"] for name, r in scored.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", help="candidate weight folders (default: the shipped default nets)")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument(
        "--tune-on",
        choices=["kodak", "embedded"],
        default="kodak",
        help="images of the tuning pairs (the shipped exact and padded sets were tuned on embedded)",
    )
    parser.add_argument("--boundary-from", help="take every candidate's boundary net from this folder")
    parser.add_argument("--json")
    parser.add_argument("--store", action="store_true", help="write the tuned (k, tau) into each initial net")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folders = args.folders or [None]
    results = {str(f): report(f, args.pairs, args.boundary_from, args.store, args.tune_on) for f in folders}
    print(
        "| candidate | backgrounds | RF | patch val acc | k | tau | Kodak acc (initial) | Kodak acc (refined) "
        "| embedded acc (refined) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results.values():
        m = r["initial_meta"]
        print(
            f"| {Path(r['initial']).parent.name} | {m['backgrounds']} | {m['receptive_field']} | {m['val_acc']} "
            f"| {r['fdb']['k']} | {r['fdb']['tau']} | {r['validation_kodak']['initial only']['accuracy']:.4f} "
            f"| {r['validation_kodak']['refined']['accuracy']:.4f} "
            f"| {r['validation_embedded']['refined']['accuracy']:.4f} |"
        )

    def score(f: str) -> float:
        return (
            results[f]["validation_kodak"]["refined"]["accuracy"]
            + results[f]["validation_embedded"]["refined"]["accuracy"]
        ) / 2

    if len(results) > 1:
        best = max(results, key=score)
        print(f"\nbest by the mean refined accuracy of both validation sets: {best} ({score(best):.4f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
