"""Whole-process figures of ``bamf fuse``, the way a photographer runs it, printed with their goals.

Every figure is a fresh ``bamf fuse`` process (``python -m bamf_lib.cli fuse ...``, the console
script's code), timed from start to exit, with its peak resident memory (``os.wait4``).  The
machine this project runs on is shared with training jobs, so each figure comes with the load
average, and the two paths are compared as a ratio within one run, interleaved:

1. One pair: lytro-05 (520 x 520), median of ``--repeats`` runs of the default path (ONNX
   Runtime, no torch) and of ``--backend torch`` (PyTorch's fast path, as before), alternating.
   Goal: <= 1.0 s.
2. Agreement (``--check-lytro``): ``bamf fuse`` (a process per pair, with ``--decision-map``)
   against ``fuse()`` in this process on all 20 Lytro pairs; goal: identical decision maps.  Then,
   in one process, ONNX Runtime against torch (another float32 implementation of the same nets):
   decision maps, which differ only at float32 ties, and the largest score difference (<= 1e-5).
3. A batch: 100 Lytro-sized stacks (the 20 pairs, five times, as symlinked folders) in one
   ``bamf fuse --batch`` call, default ``--jobs`` (a stack per core).  Goal: <= 20 s.
4. Large photos: lytro-05 upscaled (bicubic) to 24 MP (6000 x 4000) and 48 MP (8000 x 6000),
   written as JPEG (quality 95), fused to PNG.  Goals: 24 MP <= 20 s and <= 1.5 GB peak;
   48 MP <= 3 GB.  Tile side and ONNX Runtime threads are printed with them.
5. GPU, where torch sees a CUDA device: the compute of ``fuse()`` (scoring and refinement) on
   lytro-05 and on it at 24 MP.  Goals: <= 5 ms and <= 100 ms.

Run: ``BAMF_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_cli.py [--repeats 5]
[--check-lytro] [--skip-large] [--skip-batch] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bamf_lib.data.datasets import LYTRO_INDICES, lytro_pair
from bamf_lib.data.datasets import path as data_path

ROOT = Path(__file__).resolve().parent.parent


def _load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


# the child reports its own peak (VmHWM): a forked child's ru_maxrss starts at its parent's RSS
_CHILD = """
import atexit, sys
def peak():
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    sys.stderr.write(f"\\nbench-peak-kb {kb}\\n")
atexit.register(peak)
from bamf_lib.cli import main
sys.exit(main(["fuse", *sys.argv[1:]]))
"""


def run_bamf(*argv: str) -> dict:
    """One ``bamf fuse`` process: wall seconds, peak RSS (MB, 10^6 bytes), exit status, its stderr's last line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seconds = time.perf_counter() - t0
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    peak = [int(line.split()[1]) for line in lines if line.startswith("bench-peak-kb ")]
    said = [line for line in lines if not line.startswith("bench-peak-kb ")]
    return {
        "seconds": seconds,
        "peak_mb": peak[-1] * 1024 / 1e6 if peak else float("nan"),
        "rc": run.returncode,
        "said": said[-1] if said else "",
    }


def bench_pair(tmp: Path, repeats: int) -> dict:
    a, b = (str(data_path(f"lytro/lytro-05-{s}.jpg")) for s in "AB")
    paths = {"onnx": [], "torch": []}
    for backend in paths:  # one untimed run each: the page cache, not the code, is what it warms
        run_bamf(a, b, "-o", str(tmp / f"w-{backend}.png"), "--force", "--backend", backend, "-q")
    for _ in range(repeats):
        for backend, runs in paths.items():
            r = run_bamf(a, b, "-o", str(tmp / f"{backend}.png"), "--force", "--backend", backend)
            if r["rc"]:
                raise RuntimeError(f"bamf fuse --backend {backend} failed: {r['said']}")
            runs.append(r)
    out = {
        k: {
            "median_s": statistics.median(r["seconds"] for r in v),
            "min_s": min(r["seconds"] for r in v),
            "peak_mb": max(r["peak_mb"] for r in v),
            "said": v[-1]["said"],
        }
        for k, v in paths.items()
    }
    out["ratio"] = out["torch"]["median_s"] / out["onnx"]["median_s"]
    return out


def _float64_scores(sources, net: str = "initial") -> np.ndarray:
    """The shipped ``net``'s scores of a pair, computed in float64 (the plain network, no tiles)."""
    import copy

    import numpy as np
    import torch

    from bamf_lib.colour import to_float_gray
    from bamf_lib.nets.pretrained import load_pretrained
    from bamf_lib.nets.scoring import _pooled_logit_gap

    net = copy.deepcopy(load_pretrained(net)).double().eval()
    p = net.config.patch_size
    pair = np.stack([to_float_gray(s).astype(np.float64) for s in sources[:2]])
    pair = np.pad(pair, ((0, 0), (p // 2, p // 2 - 1), (p // 2, p // 2 - 1)), mode="reflect")
    with torch.no_grad():
        return torch.sigmoid(_pooled_logit_gap(net, net.features(torch.from_numpy(pair)[None])))[0, 0].numpy()


def check_lytro(tmp: Path) -> tuple[dict, dict]:
    """On all 20 Lytro pairs, ``fuse()`` in this process (default backend, ONNX Runtime) against
    (1) ``bamf fuse A B -o F --decision-map D`` in a fresh process per pair: decision maps and fused
    images, pixel for pixel; (2) torch's optimised and plain paths and a float64 evaluation."""
    import numpy as np

    from bamf_lib.fusion.pipeline import fuse
    from bamf_lib.io import read_image

    same_maps, same_fused = 0, 0
    initial, refined, band_pixels, same, same_plain, flips, tie = 0.0, 0.0, 0, [], [], 0, 0.0
    exact = {"onnx": 0.0, "torch": 0.0}  # initial scores against a float64 evaluation of the same net
    for n in LYTRO_INDICES:
        sources = list(lytro_pair(n))
        onnx, torch = fuse(sources), fuse(sources, backend="torch", device="cpu")
        a, b = (str(data_path(f"lytro/lytro-{n:02d}-{s}.jpg")) for s in "AB")
        out, dm = tmp / f"cli-{n}.png", tmp / f"cli-{n}-map.png"
        r = run_bamf(a, b, "-o", str(out), "--decision-map", str(dm), "--force", "-q")
        if r["rc"]:
            raise RuntimeError(f"bamf fuse lytro-{n:02d} failed: {r['said']}")
        same_maps += bool(np.array_equal(read_image(dm) == 255, onnx.decision_map == 1))
        same_fused += bool(np.array_equal(read_image(out), onnx.fused))
        plain = fuse(sources, backend="torch", device="cpu", optimized=False)
        same_plain.append(bool(np.array_equal(onnx.decision_map, plain.decision_map)))
        initial = max(initial, float(np.abs(onnx.score_map - torch.score_map).max()))
        f64 = _float64_scores(sources)
        for k, r in (("onnx", onnx), ("torch", torch)):
            exact[k] = max(exact[k], float(np.abs(r.score_map - f64).max()))
        both = onnx.near_boundary == torch.near_boundary  # a pixel on the band's edge (tau) may fall either way
        band_pixels += int((~both).sum())
        refined = max(refined, float(np.abs(onnx.refined_score_map - torch.refined_score_map)[both].max()))
        same.append(bool(np.array_equal(onnx.decision_map, torch.decision_map)))
        differ = onnx.decision_map != torch.decision_map
        flips += int(differ.sum())
        if differ.any():
            tie = max(tie, float(np.abs(torch.refined_score_map[differ] - 0.5).max()))
    cli = {"pairs": len(same), "identical_maps": same_maps, "identical_fused": same_fused}
    return cli, {
        "pairs": len(same),
        "identical": sum(same),
        "identical_to_plain": sum(same_plain),
        "pixels_differing": flips,
        "max_tie_distance": tie,
        "max_initial_difference": initial,
        "vs_float64": exact,
        "max_refined_difference": refined,
        "band_pixels_differing": band_pixels,
    }


def bench_batch(tmp: Path, copies: int = 5) -> dict:
    stacks = tmp / "stacks"
    for k in range(copies):
        for n in LYTRO_INDICES:
            folder = stacks / f"lytro-{n:02d}-{k}"
            folder.mkdir(parents=True)
            for s in "AB":
                (folder / f"{s}.jpg").symlink_to(data_path(f"lytro/lytro-{n:02d}-{s}.jpg").resolve())
    r = run_bamf("--batch", str(stacks), "-o", str(tmp / "fused"), "-q")
    r["stacks"] = copies * len(LYTRO_INDICES)
    r["written"] = len(list((tmp / "fused").glob("*.png")))
    return r


def bench_large(tmp: Path, size: tuple[int, int]) -> dict:
    files = []
    for s, image in zip("AB", lytro_pair(5)):
        big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        files.append(tmp / f"big-{size[0]}-{s}.jpg")
        cv2.imwrite(str(files[-1]), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    r = run_bamf(*map(str, files), "-o", str(tmp / f"big-{size[0]}.png"), "--force")
    for f in files:
        f.unlink()
    return r


def bench_gpu(repeats: int) -> dict | None:
    """Compute seconds of ``fuse()`` on CUDA (torch; scoring and refinement, each ending in a copy back
    to the host), median of ``repeats`` after one warm-up: lytro-05 and it upscaled to 24 MP.
    None without torch or a CUDA device."""
    try:
        import torch
    except ModuleNotFoundError:
        return None
    if not torch.cuda.is_available():
        return None
    from bamf_lib.fusion.pipeline import fuse

    out = {"device": torch.cuda.get_device_name(0)}
    pair = list(lytro_pair(5))
    for name, sources in (
        ("520x520", pair),
        ("24MP", [cv2.resize(s, (6000, 4000), interpolation=cv2.INTER_CUBIC) for s in pair]),
    ):
        runs = []
        for _ in range(repeats + 1):
            t = fuse(sources, device="cuda", backend="torch").timings
            runs.append(t["score"] + t["refine"])
        out[name] = statistics.median(runs[1:])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--check-lytro", action="store_true", help="also compare ONNX and torch on all 20 pairs")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--json", help="also write all figures here")
    args = parser.parse_args(argv)
    from bamf_lib.runtime.header import header_info
    from bamf_lib.runtime.locate import weights_path

    cfg, meta = header_info(weights_path("initial"))
    print(
        f"shipped weights: profile {meta.get('profile', '?')}, {cfg.version}-{cfg.depth} w{cfg.width} "
        f"P{cfg.patch_size} dilations {cfg.stage_dilations}; {os.cpu_count()} CPUs; no GPU used"
    )
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        tmp = Path(tmp)
        print(
            f"\n1. bamf fuse lytro-05-A.jpg lytro-05-B.jpg -o out.png, whole process, median of {args.repeats}, "
            f"ONNX Runtime and torch alternating  [{_load()} before]"
        )
        pair = figures["pair"] = bench_pair(tmp, args.repeats)
        for k in ("onnx", "torch"):
            v = pair[k]
            print(
                f"   {k:5s}: median {v['median_s']:.2f} s (min {v['min_s']:.2f}), peak {v['peak_mb']:.0f} MB; "
                f"{v['said']}"
            )
        print(
            f"   torch / onnx = {pair['ratio']:.2f}x  [goal <= 1.0 s: "
            f"{'met' if pair['onnx']['median_s'] <= 1.0 else 'NOT met'}]  [{_load()} after]"
        )
        if args.check_lytro:
            cli, agree = figures["cli_vs_in_process"], figures["agreement"] = check_lytro(tmp)
            print(
                f"\n2. bamf fuse (a process per pair, ONNX Runtime) against fuse() in process (default backend, "
                f"ONNX Runtime) on all {cli['pairs']} Lytro pairs: decision maps identical on {cli['identical_maps']}, "
                f"fused images on {cli['identical_fused']}  [goal: all identical: "
                f"{'met' if cli['identical_maps'] == cli['pairs'] else 'NOT met'}]"
            )
            print(
                f"   ONNX Runtime vs torch on all {agree['pairs']} Lytro pairs: decision maps identical to "
                f"torch's optimised (oneDNN) path on {agree['identical']}, to the plain network on "
                f"{agree['identical_to_plain']}; {agree['pixels_differing']} pixels differ from the optimised path, "
                f"each a float32 tie (|score - 0.5| <= {agree['max_tie_distance']:.1e}); max |score difference| {agree['max_initial_difference']:.1e} (initial net), "
                f"{agree['max_refined_difference']:.1e} (refined, where both bands agree); initial scores vs a "
                f"float64 evaluation: ONNX {agree['vs_float64']['onnx']:.1e}, torch {agree['vs_float64']['torch']:.1e}; "
                f"{agree['band_pixels_differing']} band pixels differ (smoothed score at tau within float32 "
                f"rounding)  [torch is another float32 implementation: identical but for float32 ties]"
            )
        if not args.skip_batch:
            batch = figures["batch"] = bench_batch(tmp)
            print(
                f"\n3. bamf fuse --batch (default --jobs: {min(os.cpu_count() or 1, 4)} stacks at once): "
                f"{batch['stacks']} Lytro-sized stacks in one process: {batch['seconds']:.1f} s "
                f"({batch['seconds'] / batch['stacks']:.2f} s a stack), peak {batch['peak_mb']:.0f} MB, "
                f"{batch['written']} written, exit {batch['rc']}  [goal <= 20 s: "
                f"{'met' if batch['seconds'] <= 20 else 'NOT met'}]  [{_load()}]"
            )
        if not args.skip_large:
            from bamf_lib.fusion.scorers import load_scorer

            tile = load_scorer("initial").tile
            print(
                f"\n4. large photos (lytro-05 upscaled), JPEG in, PNG out; tiles of up to {tile} x {tile} output "
                f"pixels, ONNX Runtime threads = {os.cpu_count()} (idle threads sleep)"
            )
            for size, goal_s, goal_gb in (((6000, 4000), 20, 1.5), ((8000, 6000), None, 3.0)):
                r = figures[f"{size[0]}x{size[1]}"] = bench_large(tmp, size)
                mp = size[0] * size[1] / 1e6
                time_goal = f"<= {goal_s} s: {'met' if r['seconds'] <= goal_s else 'NOT met'}, " if goal_s else ""
                print(
                    f"   {mp:.0f} MP: {r['seconds']:.1f} s whole process, peak {r['peak_mb'] / 1000:.2f} GB, exit "
                    f"{r['rc']}; {r['said']}  [goal {time_goal}<= {goal_gb} GB: "
                    f"{'met' if r['peak_mb'] / 1000 <= goal_gb else 'NOT met'}]  [{_load()}]"
                )
    gpu = figures["gpu"] = bench_gpu(args.repeats)
    if gpu is None:
        print(
            "\n5. GPU: no CUDA device here (or no torch): not measured  [goals <= 5 ms (520 x 520), <= 100 ms (24 MP)]"
        )
    else:
        print(
            f"\n5. GPU ({gpu['device']}, torch): compute of fuse(), median of {args.repeats}: 520 x 520 "
            f"{gpu['520x520'] * 1e3:.1f} ms [goal <= 5 ms: {'met' if gpu['520x520'] <= 0.005 else 'NOT met'}], "
            f"24 MP {gpu['24MP'] * 1e3:.0f} ms [goal <= 100 ms: {'met' if gpu['24MP'] <= 0.1 else 'NOT met'}]"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
