"""Throughput of training-data synthesis (``bamf_lib.data.synthesis``) at the paper's 64 x 64 patches.

Goal: >= 2,000 labelled patch pairs per second on this 2-core machine.  Printed per source
(``embedded`` always; ``alphamatting`` when ``BAMF_DATA_DIR`` is set):

* ``stream``: :func:`~bamf_lib.data.synthesis.iter_patches`, what a training loop consumes: labelled samples per second (after the channel swap and the 8
  rotations/flips, i.e. the samples a network trains on) and *distinct* crops per second
  (before augmentation: every crop becomes 16 samples);
* ``in memory``: :func:`~bamf_lib.data.synthesis.generate_patches` (adds the final shuffle).

Loading and resizing the foreground/background pools is a one-off cost, timed separately.

Run: ``BAMF_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_synthesis.py [--patch 64]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from bamf_lib.config import SynthesisConfig
from bamf_lib.data import synthesis
from bamf_lib.data.datasets import data_dir

GOAL = 2000.0


def bench(cfg: SynthesisConfig, repeat: int) -> dict[str, float]:
    t0 = time.perf_counter()
    n_fg = len(synthesis.load_foregrounds(cfg))
    n_bg = len(synthesis.load_backgrounds(cfg))
    load_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = sum(len(y) for _, y in synthesis.iter_patches(cfg))
        best = min(best, time.perf_counter() - t0)
    per_crop = 2 * cfg.n_transforms if cfg.augment else 1
    t0 = time.perf_counter()
    X, _ = synthesis.generate_patches(cfg)
    mem_s = time.perf_counter() - t0
    return {
        "pool": f"{n_fg} fg x {n_bg} bg",
        "load_s": load_s,
        "samples": n,
        "stream": n / best,
        "crops": n / per_crop / best,
        "memory": len(X) / mem_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sources = ["embedded"] + (["alphamatting"] if data_dir() is not None else [])
    print(f"synthesis throughput, {args.patch}x{args.patch} patch pairs, goal >= {GOAL:,.0f}/s (best of {args.repeat})")
    for source in sources:
        # alphamatting with all 27 foregrounds over the embedded backgrounds (no COCO here)
        cfg = replace(SynthesisConfig(source=source, patch_size=args.patch), n_backgrounds=None)
        r = bench(cfg, args.repeat)
        verdict = "meets" if r["stream"] >= GOAL else "MISSES"
        print(f"{source:>12} ({r['pool']}, train split, {r['samples']:,} samples; pools loaded in {r['load_s']:.2f} s)")
        print(
            f"{'':>12} stream   : {r['stream']:>9,.0f} labelled samples/s  ({verdict} the goal), "
            f"{r['crops']:,.0f} distinct crops/s"
        )
        print(f"{'':>12} in memory: {r['memory']:>9,.0f} samples/s")


if __name__ == "__main__":
    main()
