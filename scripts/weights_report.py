"""Numbers for bamf_lib/weights/MODEL_CARD.md, computed from the shipped weights.

    python scripts/weights_report.py [--pairs 8] [--json OUT] [--weights DIR] [--store]

1. (k, tau) chosen with boundary.tune_fdb on synthetic validation pairs (groundtruth_set
   seed 1; held-out images, never a test pair);
2. decision-map scores on a disjoint synthetic ground-truth set (seed 2): the initial net
   alone (post-processed) and with boundary refinement, on the fast path.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bamf_lib import load_pretrained
from bamf_lib.fusion.boundary import tune_fdb
from bamf_lib.config import FDBConfig
from bamf_lib.evaluation.groundtruth import default_deciders, evaluate_decisions, groundtruth_set
from bamf_lib.nets.weightfile import save_weights
from bamf_lib.runtime.locate import weights_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--json")
    parser.add_argument("--weights", help="networks to report on instead of the shipped ones (see bamf fuse --weights)")
    parser.add_argument("--store", action="store_true",
                        help="write the tuned (k, tau) into the initial net's metadata, where fuse() finds them")
    args = parser.parse_args()
    torch.set_num_threads(1)
    initial, boundary = load_pretrained("initial", args.weights), load_pretrained("boundary", args.weights)
    report = {n: {k: m.metadata.get(k) for k in ("profile", "val_acc", "val_boundary_acc", "samples_seen", "epochs", "device")}
              for n, m in (("initial", initial), ("boundary", boundary))}

    t0 = time.perf_counter()
    tuned = tune_fdb(initial, groundtruth_set(args.pairs, seed=1), boundary, path="fast")
    tuned.pop("grid")
    report["fdb_tuning"] = {**tuned, "seconds": time.perf_counter() - t0, "pairs": f"groundtruth_set({args.pairs}, seed=1)"}
    fdb = FDBConfig(k=tuned["k"], tau=tuned["tau"])
    if args.store:
        initial.metadata["fdb"] = {"k": fdb.k, "tau": fdb.tau}
        initial.metadata["fdb_tuned_on"] = report["fdb_tuning"]["pairs"]
        save_weights(initial, weights_path("initial", args.weights), initial.metadata)

    deciders = default_deciders(fdb, args.weights)
    scored = evaluate_decisions(groundtruth_set(args.pairs, seed=2),
                                {"initial only": deciders["bamf-initial"], "refined": deciders["bamf"]})
    report["groundtruth"] = {name: result["mean"] for name, result in scored.items()}
    report["groundtruth"]["pairs"] = f"groundtruth_set({args.pairs}, seed=2)"
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
