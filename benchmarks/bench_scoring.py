"""Reference (patch per pixel) against whole-image score maps: agreement and speed, one run.

For each Lytro pair, reference scores are computed, with the whole image as context, for
two sets of pixels: ``crop**2`` pixels drawn uniformly at random (an unbiased estimate of
whole-image agreement) and the ``crop x crop`` square where the strided map is least
certain (most pixels with 0.1 < S < 0.9: across the focus boundary, the hardest place to
agree).  Every whole-image path runs on the full 520 x 520 pair and is compared with the
reference on both sets.  Prints patches/s of the
reference, seconds per pair of each fast path, the speed-up over the (extrapolated)
reference on the full pair, the mean and max |S_fast - S_ref| and the agreement of the
maps binarised at 0.5.  Each whole-image path is also timed on the plain network
(``optimized=False``: BatchNorm not folded, no oneDNN fusion) right after the optimised one.

    python benchmarks/bench_scoring.py                       # shipped initial weights
    python benchmarks/bench_scoring.py --weights runs/quick-initial.safetensors --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import cv2
import numpy as np
import torch

from bamf_lib.colour import to_float_gray
from bamf_lib.config import get_profile
from bamf_lib.data import datasets
from bamf_lib.nets.models import build_model
from bamf_lib.nets.pretrained import load_pretrained
from bamf_lib.nets.scoring import score_map, score_masked
from bamf_lib.nets.weightfile import load_weights

FAST = ("strided", "dilated", "coarse-to-fine")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device):
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t


def _least_certain(model, a, b, crop: int) -> tuple[int, int]:
    """Top-left corner of the crop x crop square with the most uncertain strided scores."""
    s = score_map(model, a, b, path="strided")
    unsure = ((s > 0.1) & (s < 0.9)).astype(np.float32)
    counts = cv2.boxFilter(unsure, -1, (crop, crop), normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    counts = counts[: a.shape[0] - crop + 1, : a.shape[1] - crop + 1]
    y, x = np.unravel_index(np.argmax(counts), counts.shape)
    return int(y), int(x)


def _model(weights: str | None):
    if weights:
        return load_weights(weights), weights
    try:
        return load_pretrained("initial"), "shipped initial"
    except FileNotFoundError:
        warnings.warn("no shipped weights: using an untrained quick net, agreement numbers mean little", stacklevel=2)
        return build_model(get_profile("quick").model).eval(), "untrained quick"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help=".safetensors file (default: shipped initial)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs", default="1,5,10", help="Lytro pair numbers")
    ap.add_argument("--crop", type=int, default=48, help="side of the boundary square; crop**2 random pixels too")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, source = _model(args.weights)
    cfg = model.config
    print(
        f"net {cfg.version}-{cfg.depth} w{cfg.width} P{cfg.patch_size} ({source}); device {args.device}; "
        f"torch threads {torch.get_num_threads()}"
    )

    sets = ("random", "boundary")
    rows = {(m, k): {"diff": [], "max": [], "agree": []} for m in FAST for k in sets}
    seconds = {m: [] for m in FAST}
    plain_seconds = {m: [] for m in FAST}  # the same path on the plain (not optimised) network
    ref_rate = []
    rng = np.random.default_rng(args.seed)
    for n in map(int, args.pairs.split(",")):
        a, b = (to_float_gray(im) for im in datasets.lytro_pair(n))
        h, w = a.shape
        where = {k: np.zeros((h, w), bool) for k in sets}
        where["random"].flat[rng.choice(h * w, args.crop**2, replace=False)] = True
        y0, x0 = _least_certain(model, a, b, args.crop)
        where["boundary"][y0 : y0 + args.crop, x0 : x0 + args.crop] = True
        mask = where["random"] | where["boundary"]
        ref, t_ref = _timed(
            lambda: score_masked(model, a, b, mask, path="reference", device=args.device, batch_size=args.batch_size),
            args.device,
        )
        ref_rate.append(mask.sum() / t_ref)
        line = [f"lytro-{n:02d}: reference {ref_rate[-1]:.0f} patches/s"]
        for m in FAST:
            score_map(model, a[:64, :64], b[:64, :64], path=m, device=args.device)  # warm-up
            fast, t = _timed(lambda: score_map(model, a, b, path=m, device=args.device), args.device)
            seconds[m].append(t)
            _, t_plain = _timed(
                lambda: score_map(model, a, b, path=m, device=args.device, optimized=False), args.device
            )
            plain_seconds[m].append(t_plain)
            for k in sets:
                f, r = fast[where[k]], ref[where[k]]
                rows[m, k]["diff"].append(float(np.abs(f - r).mean()))
                rows[m, k]["max"].append(float(np.abs(f - r).max()))
                rows[m, k]["agree"].append(float(((f > 0.5) == (r > 0.5)).mean()))
            line.append(
                f"{m} {t:.2f} s, agree {rows[m, 'random']['agree'][-1]:.4f} (random px) "
                f"{rows[m, 'boundary']['agree'][-1]:.4f} (boundary)"
            )
        print("; ".join(line))

    rate = float(np.mean(ref_rate))
    ref_seconds = 520 * 520 / rate
    summary = {
        "net": f"{cfg.version}-{cfg.depth} w{cfg.width} P{cfg.patch_size}",
        "weights": source,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "samples_per_set": args.crop**2,
        "pairs": args.pairs,
        "reference_patches_per_s": rate,
        "reference_seconds_520": ref_seconds,
        "paths": {},
    }
    print(f"\nreference: {rate:.0f} patches/s -> {ref_seconds:.0f} s for a 520x520 pair (extrapolated)")
    print(
        f"{'path':<16}{'s / 520^2':>10}{'plain net':>10}{'speed-up':>10}{'set':>10}{'mean|dS|':>10}{'max|dS|':>9}{'agree@0.5':>11}"
    )
    for m in FAST:
        sec, plain = float(np.mean(seconds[m])), float(np.mean(plain_seconds[m]))
        summary["paths"][m] = {"seconds_520": sec, "seconds_520_plain_net": plain, "speedup": ref_seconds / sec}
        for k in sets:
            r = {
                "mean_abs_diff": float(np.mean(rows[m, k]["diff"])),
                "max_abs_diff": float(np.max(rows[m, k]["max"])),
                "binary_agreement": float(np.mean(rows[m, k]["agree"])),
            }
            summary["paths"][m][k] = r
            print(
                f"{m:<16}{sec:>10.2f}{plain:>10.2f}{ref_seconds / sec:>10.0f}{k:>10}{r['mean_abs_diff']:>10.4f}"
                f"{r['max_abs_diff']:>9.3f}{r['binary_agreement']:>11.4f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
