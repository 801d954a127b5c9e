"""Benchmarks of the whole fusion pipeline (``bamf_lib.fusion.pipeline.fuse``), printed with their goals.

1. End to end: ``fuse`` of lytro-05 (520 x 520 colour) on this machine on the torch backend
   (``benchmarks/bench_cli.py`` measures the default ONNX Runtime one, whole process), weights
   loaded beforehand, median of several runs.  Goal: <= 1.0 s on CPU.  The optimised network
   (:mod:`bamf_lib.nets.inference`, the default) and the plain one run interleaved,
   at torch's thread count and at one thread (on a busy shared 2-core machine one thread
   is the faster), with the largest score difference between them and whether their
   decision maps are identical.
2. Fast versus reference: the whole pipeline (both networks, post-processing) on a
   ``crop x crop`` cut of four Lytro pairs, centred where the fast path's decision map
   has the most boundary pixels, once with the paper's per-patch evaluation (``path="reference"``) and
   once with the fast path; the decision maps are compared over the crop.  (The crop is
   fused as an image of its own, so the small-region rule works at the crop's scale and
   cannot hide a difference.)  The reference's seconds per evaluation in the crop are
   extrapolated to the whole image and set against the fast path's time on the whole
   image.  Goal: >= 1000x faster at >= 99.5 % agreement.  Score-map agreement per scoring path is
   ``benchmarks/bench_scoring.py``'s job; this one measures what survives the pipeline.
3. Peak memory fusing a 24-megapixel colour pair (lytro-05 upscaled to 6000 x 4000), in a
   fresh subprocess: its peak resident set (``resource.getrusage``) and the peak of the
   Python-level allocations (``tracemalloc``; torch's own buffers are not traced there).
   Goal: <= 2 GB.

Run: ``BAMF_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_fuse.py [--weights padded]``
(``--skip-memory`` leaves out the slow 24-MP run; ``--crop 64`` sets the crop side;
``--weights padded`` measures the shipped zero-padded nets, whose fast path only approximates).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np
import torch

from bamf_lib.config import FDBConfig, PostprocessConfig
from bamf_lib.data.datasets import lytro_pair
from bamf_lib.evaluation.groundtruth import decision_edges
from bamf_lib.fusion.boundary import fdb_for
from bamf_lib.fusion.pipeline import fuse
from bamf_lib.nets.pretrained import load_pretrained

PAIRS = (2, 5, 10, 17)


NETS: dict = {}  # "initial"/"boundary" -> model, when --weights names other weights than the shipped ones


def _nets() -> dict:
    return dict(NETS)


def describe_weights() -> str:
    net = NETS.get("initial") or load_pretrained("initial")
    meta = getattr(net, "metadata", {}) or {}
    cfg = net.config
    return (
        f"{'weights from --weights' if NETS else 'shipped weights'}: profile {meta.get('profile', '?')}, "
        f"{cfg.version}-{cfg.depth} w{cfg.width} P{cfg.patch_size} {cfg.padding}-padded"
    )


def bench_end_to_end(repeats: int = 7) -> dict:
    """Median fuse of lytro-05 per variant: optimised or plain network (``fuse(optimized=)``),
    at torch's thread count and, if that is more, at one thread.  The variants run
    interleaved, so a shared machine's load falls on all of them alike."""
    sources = list(lytro_pair(5))
    fuse(sources, device="cpu", backend="torch", **_nets())  # warm-up: weights loaded, caches filled
    threads = torch.get_num_threads()
    variants = [(opt, n) for n in dict.fromkeys((threads, 1)) for opt in (True, False)]
    runs = {v: [] for v in variants}
    stages = {v: [] for v in variants}
    results = {}
    try:
        for _ in range(repeats):
            for opt, n in variants:
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                results[opt, n] = fuse(sources, device="cpu", optimized=opt, backend="torch", **_nets())
                runs[opt, n].append(time.perf_counter() - t0)
                stages[opt, n].append(results[opt, n].timings)
    finally:
        torch.set_num_threads(threads)
    out = {"threads": threads, "variants": []}
    for opt, n in variants:
        out["variants"].append(
            {
                "optimized": opt,
                "threads": n,
                "median_s": statistics.median(runs[opt, n]),
                "min_s": min(runs[opt, n]),
                "stages": {k: statistics.median(s[k] for s in stages[opt, n]) for k in stages[opt, n][0]},
            }
        )
    fast, plain = results[True, threads], results[False, threads]
    out["max_score_difference"] = float(
        max(
            np.abs(fast.score_map - plain.score_map).max(),
            np.abs(fast.refined_score_map - plain.refined_score_map).max(),
        )
    )
    out["same_band"] = bool(np.array_equal(fast.near_boundary, plain.near_boundary))
    out["same_decision"] = bool(np.array_equal(fast.decision_map, plain.decision_map))
    out["band_fraction"] = float(fast.near_boundary.mean())
    out["median_s"] = out["variants"][0]["median_s"]
    return out


def _crop_centre(decision: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` square holding the most focus-boundary pixels (pixels
    of the fast path's decision map with a differently decided 4-neighbour)."""
    band = decision_edges(decision)
    density = cv2.blur(band.astype(np.float32), (side, side))
    h, w = band.shape
    half = side // 2
    density[:half], density[h - half :], density[:, :half], density[:, w - half :] = 0, 0, 0, 0
    y, x = np.unravel_index(np.argmax(density), density.shape)
    return y - half, x - half


def bench_fast_vs_reference(side: int, fdb: FDBConfig, post: PostprocessConfig, path: str = "fast") -> dict:
    rows = []
    for n in PAIRS:
        a8, b8 = lytro_pair(n)
        fuse([a8, b8], device="cpu", fdb=fdb, post=post, path=path, **_nets())  # warm-up
        t0 = time.perf_counter()
        full = fuse([a8, b8], device="cpu", fdb=fdb, post=post, path=path, **_nets())
        t_fast = time.perf_counter() - t0
        y, x = _crop_centre(full.decision_map, side)
        win = (slice(y, y + side), slice(x, x + side))
        crop = [np.ascontiguousarray(a8[win]), np.ascontiguousarray(b8[win])]
        fast = fuse(crop, device="cpu", fdb=fdb, post=post, path=path, **_nets())
        ref = fuse(crop, device="cpu", fdb=fdb, post=post, path="reference", **_nets())
        # the reference's cost per evaluation in the crop, times the evaluations the whole
        # image needs: the initial net at every pixel, the boundary net on the band
        per_pixel = ref.timings["score"] / (side * side)
        per_band_pixel = ref.timings["refine"] / max(1, int(ref.near_boundary.sum()))
        t_ref_full = per_pixel * a8.shape[0] * a8.shape[1] + per_band_pixel * int(full.near_boundary.sum())
        rows.append(
            {
                "pair": f"lytro-{n:02d}",
                "crop": [int(y), int(x), side],
                "fast_s": t_fast,
                "reference_crop_s": ref.timings["score"] + ref.timings["refine"],
                "reference_full_est_s": t_ref_full,
                "speedup": t_ref_full / t_fast,
                "score_agreement": float(np.mean((ref.refined_score_map > 0.5) == (fast.refined_score_map > 0.5))),
                "decision_agreement": float(np.mean(ref.decision_map == fast.decision_map)),
                "band_in_crop": float(ref.near_boundary.mean()),
            }
        )
    return {
        "pairs": rows,
        "min_speedup": min(r["speedup"] for r in rows),
        "min_decision_agreement": min(r["decision_agreement"] for r in rows),
        "mean_decision_agreement": float(np.mean([r["decision_agreement"] for r in rows])),
    }


_MEMORY_CHILD = r"""
import json, resource, sys, time, tracemalloc
import cv2
from bamf_lib.data.datasets import lytro_pair
from bamf_lib.fusion.pipeline import fuse
from bamf_lib.nets.pretrained import load_pretrained
weights = sys.argv[1] if len(sys.argv) > 1 else None
load_pretrained("initial", weights); load_pretrained("boundary", weights)
a, b = (cv2.resize(x, (6000, 4000), interpolation=cv2.INTER_CUBIC) for x in lytro_pair(5))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
t0 = time.perf_counter()
r = fuse([a, b], device="cpu", weights=weights)
seconds = time.perf_counter() - t0
_, traced_peak = tracemalloc.get_traced_memory()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rss_kib": peak, "rss_before_fuse_kib": base, "traced_peak_bytes": traced_peak,
                  "seconds": seconds, "shape": list(r.fused.shape)}))
"""


def bench_memory(threads: int | None = None, weights: str | None = None) -> dict:
    child = _MEMORY_CHILD if not threads else f"import torch; torch.set_num_threads({threads})\n" + _MEMORY_CHILD
    out = subprocess.run(
        [sys.executable, "-c", child, *([weights] if weights else [])], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print_end_to_end(e2e: dict, repeats: int) -> None:
    print(
        f"\n1. end-to-end fuse of lytro-05 (520x520 RGB, CPU), median of {repeats} interleaved runs "
        f"per variant  [goal <= 1.0 s]"
    )
    base = {v["threads"]: v["median_s"] for v in e2e["variants"] if not v["optimized"]}
    for v in e2e["variants"]:
        name = f"{'optimised' if v['optimized'] else 'plain    '} net, {v['threads']} thread{'s' if v['threads'] > 1 else ' '}"
        print(
            f"   {name}: median {v['median_s']:.3f} s (min {v['min_s']:.3f}; x{base[v['threads']] / v['median_s']:.2f} "
            f"vs plain at these threads) [{'met' if v['median_s'] <= 1.0 else 'NOT met'}]; stages "
            + ", ".join(f"{k} {t:.3f}" for k, t in v["stages"].items() if k != "align")
        )
    print(
        f"   optimised vs plain: max |score difference| {e2e['max_score_difference']:.1e}, same near-FDB band "
        f"{e2e['same_band']}, same decision map {e2e['same_decision']}; band {100 * e2e['band_fraction']:.1f} % of pixels"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=64, help="side of the reference crops (pixels)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads (bench_scoring.py's table uses 1)")
    parser.add_argument("--json", help="also write all figures here")
    parser.add_argument(
        "--weights",
        help="networks to use instead of the shipped default: a folder (as for "
        "bamf fuse --weights) or 'padded', the shipped zero-padded nets",
    )
    parser.add_argument("--path", default="fast", help="the fast path to compare with the reference")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.weights:
        NETS.update({net: load_pretrained(net, args.weights) for net in ("initial", "boundary")})
    fdb, post = fdb_for(NETS.get("initial") or load_pretrained("initial")), PostprocessConfig()
    print(
        f"{describe_weights()}; FDB k={fdb.k} tau={fdb.tau}; threshold {post.threshold}, "
        f"area {post.area_fraction}; CPU, "
        f"{torch.get_num_threads()} torch threads"
    )

    e2e = None if args.skip_end_to_end else bench_end_to_end(args.repeats)
    if e2e:
        _print_end_to_end(e2e, args.repeats)

    cmp = bench_fast_vs_reference(args.crop, fdb, post, args.path)
    print(f"\n2. {args.path} vs reference on {args.crop}x{args.crop} crops at the focus boundary")
    print(
        f"   {'pair':9s} {'crop y,x':>9s} {'fast s':>7s} {'ref crop s':>10s} {'ref full est s':>14s} "
        f"{'speed-up':>9s} {'S agr':>7s} {'D agr':>7s} {'band':>6s}"
    )
    for r in cmp["pairs"]:
        print(
            f"   {r['pair']:9s} {r['crop'][0]:4d},{r['crop'][1]:<4d} {r['fast_s']:7.2f} {r['reference_crop_s']:10.2f} "
            f"{r['reference_full_est_s']:14.0f} {r['speedup']:8.0f}x {100 * r['score_agreement']:6.2f}% "
            f"{100 * r['decision_agreement']:6.2f}% {100 * r['band_in_crop']:5.1f}%"
        )
    print(
        f"   min speed-up {cmp['min_speedup']:.0f}x [goal >= 1000x: {'met' if cmp['min_speedup'] >= 1000 else 'NOT met'}]; "
        f"min decision agreement {100 * cmp['min_decision_agreement']:.2f} % [goal >= 99.5 %: "
        f"{'met' if cmp['min_decision_agreement'] >= 0.995 else 'NOT met'}]"
    )

    mem = None
    if not args.skip_memory:
        mem = bench_memory(args.threads, args.weights)
        gib = mem["peak_rss_kib"] * 1024 / 2**30
        print(
            f"\n3. 24-MP pair (6000x4000 RGB): peak RSS {gib:.2f} GiB "
            f"(before fuse {mem['rss_before_fuse_kib'] / 2**20:.2f} GiB; Python allocations peak "
            f"{mem['traced_peak_bytes'] / 2**30:.2f} GiB), {mem['seconds']:.0f} s  "
            f"[goal <= 2 GB: {'met' if mem['peak_rss_kib'] * 1024 <= 2e9 else 'NOT met'}]"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"end_to_end": e2e, "fast_vs_reference": cmp, "memory": mem}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
