"""Scale robustness of the decision map: the same scene, photographed at another resolution.

    python benchmarks/bench_scale.py [--weights DIR] [--pairs lytro20] [--scales 0.5 1.5 2]

For each test pair, both sources are resized by each factor (OpenCV, area interpolation when
shrinking, cubic when enlarging), fused, and the decision map is resized back (nearest) to the
original size.  Printed per pair and scale:

* **agreement** with the x1 decision map (fraction of pixels); goal >= 95 % for every pair;
* **largest share** of the map taken by one source; a pair where one source takes > 97 % is
  flagged (none of the Lytro or grayscale pairs is focused wholly in one source).

Figures are printed, not asserted: the machine is shared and the goal is a measurement.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from bamf_lib.data import datasets
from bamf_lib.fusion.pipeline import fuse
from bamf_lib.nets.weightfile import load_weights
from bamf_lib.runtime.locate import weights_path


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def decision(sources, scale: float, nets) -> np.ndarray:
    """Decision map (True = first source) of the pair resized by ``scale``, back at the original size."""
    h, w = sources[0].shape[:2]
    scaled = [s if scale == 1 else resize(s, scale) for s in sources]
    d = fuse(scaled, device="cpu", initial=nets[0], boundary=nets[1]).decision_map == 0
    return d if scale == 1 else cv2.resize(d.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0


def pairs(name: str):
    if name == "lytro20":
        return [(f"lytro-{n:02d}", list(datasets.lytro_pair(n))) for n in datasets.LYTRO_INDICES]
    if name == "grayscale10":
        return [(f"g_{n:02d}", list(datasets.grayscale_pair(n))) for n in range(1, 11)]
    raise ValueError(f"--pairs must be lytro20 or grayscale10, got {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="folder with initial/boundary nets (default: the shipped ones)")
    parser.add_argument("--pairs", default="lytro20")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.5, 2.0])
    args = parser.parse_args()
    torch.set_num_threads(2)
    nets = tuple(load_weights(weights_path(n, args.weights)).eval() for n in ("initial", "boundary"))
    print(f"weights: {weights_path('initial', args.weights)} ({nets[0].metadata.get('profile')}); pairs: {args.pairs}")
    head = " | ".join(f"x{s:g} agree" for s in args.scales)
    print(f"| pair | {head} | largest share (x1, {', '.join(f'x{s:g}' for s in args.scales)}) |")
    print("|---|" + "---|" * (len(args.scales) + 1))
    worst, flagged, t0 = 1.0, [], time.perf_counter()
    for name, sources in pairs(args.pairs):
        base = decision(sources, 1.0, nets)
        agree, shares = [], [max(base.mean(), 1 - base.mean())]
        for s in args.scales:
            d = decision(sources, s, nets)
            agree.append(float((d == base).mean()))
            shares.append(max(d.mean(), 1 - d.mean()))
        worst = min(worst, *agree)
        flagged += [f"{name} x{s:g}" for s, sh in zip([1.0, *args.scales], shares) if sh > 0.97]
        print(
            f"| {name} | "
            + " | ".join(f"{a:.4f}" for a in agree)
            + " | "
            + ", ".join(f"{sh:.3f}" for sh in shares)
            + " |",
            flush=True,
        )
    print(
        f"\nworst agreement {worst:.4f} (goal >= 0.95 for every pair); one source > 97 % of the map: "
        f"{', '.join(flagged) if flagged else 'none'}; {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
