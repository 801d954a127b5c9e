"""Ablation of the uncertain-score fill (``PostprocessConfig.fill_margin``, beyond the paper).

    python scripts/ablate_fill.py [--weights DIR] [--margins 0.1 0.2 0.3] [--nyud]

Each pair is scored once (initial net + boundary refinement, fast path, the weights' tuned
(k, tau)); the post-processing variants then decide from the same refined score map.
Printed: decision accuracy on the Kodak synthetic validation pairs (``groundtruth_set(8,
seed=2, images="kodak")``: the set a default may be chosen on) and, with ``--nyud``, on the
nyud40 test pairs (PSNR against the ground truth and decision accuracy: reported, never used
to choose).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bamf_lib import datasets, nyud
from bamf_lib.config import PostprocessConfig
from bamf_lib.fusion import fuse
from bamf_lib.groundtruth import groundtruth_set
from bamf_lib.postprocess import decision_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--nyud", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = {"paper (no fill)": PostprocessConfig(), **{f"fill {m:g}": PostprocessConfig(fill_margin=m)
                                                         for m in args.margins}}
    kodak = {v: [] for v in variants}
    for pair in groundtruth_set(8, seed=2, images="kodak"):
        refined = fuse([pair.a, pair.b], weights=args.weights, device="cpu").refined_score_map
        for v, cfg in variants.items():
            kodak[v].append(float((decision_map(refined, cfg) == pair.truth).mean()))
    ny = {v: {"psnr": [], "accuracy": []} for v in variants}
    if args.nyud:
        for n in datasets.NYUD_INDICES:
            a, b, gt = datasets.nyud_pair(n)
            take_a, scored = nyud.truth_decision(a, b, gt)
            refined = fuse([a, b], weights=args.weights, device="cpu").refined_score_map
            for v, cfg in variants.items():
                d = decision_map(refined, cfg)
                ny[v]["psnr"].append(nyud.psnr(np.where(d[..., None], a, b), gt))
                ny[v]["accuracy"].append(nyud.decision_accuracy(d, take_a, scored))
    print("| post-processing | Kodak validation accuracy | nyud40 PSNR (dB) | nyud40 accuracy | nyud40 worst |")
    print("|---|---|---|---|---|")
    for v in variants:
        row = f"| {v} | {np.mean(kodak[v]):.4f} |"
        if args.nyud:
            row += f" {np.mean(ny[v]['psnr']):.2f} | {np.mean(ny[v]['accuracy']):.4f} | {min(ny[v]['accuracy']):.3f} |"
        else:
            row += " | | |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
