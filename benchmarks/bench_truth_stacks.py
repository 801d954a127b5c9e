"""Focus stacks with an all-in-focus truth (issue 25, items 2 and 5): PSNR, decision accuracy
and halo error of the joint N-frame fusion, the sequential fusion it replaces, enfuse and
openfocus.

Stacks: :func:`bamf_lib.evaluation.stacks.truth_stack` (held-out Kodak photographs in depth steps
behind alpha-matting foregrounds, each layer sharp in one frame, focus breathing), 3-30 frames.
Methods:

* ``joint``: :func:`bamf_lib.fusion.stack.fuse_stack` as it ships (neighbour alignment, joint
  decision, exposure matched, contrast term of weight ``ENERGY_WEIGHT``);
* ``joint-net``: the same with the network alone (no exposure matching, no contrast term), and
  ``joint-net+x``, ``joint-net+e10``, ``joint-net+x+e30``...: each of the two added back (the ablation);
  ``+s0.5`` on either: decided on copies at half size (``scale``);
* ``sequential``: ``fuse(frames, align=True, stack="sequential")`` (ECC affine to the first frame,
  pairwise running fusion);
* ``enfuse``: ``align_image_stack -m`` + ``enfuse`` with issue 25's flags (when installed);
* ``openfocus``: StackMFF-V3 (when installed in its venv).

Every output is registered onto the truth (ECC affine) before it is scored, the same way for
every method.  Run: ``BAMF_DATA_DIR=../shared/data .venv/bin/python
benchmarks/bench_truth_stacks.py [--frames 3 5 8 12 20 30] [--seeds 2] [--exposure 0.01 --contrast 0.15]
[--soft] [--json OUT]``; ``--exposure``/``--contrast`` render the harder stacks (exposure drift, a
flat backdrop), ``--soft`` adds the real stacks' no-reference score.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack_peers  # noqa: E402

from bamf_lib.colour import to_float_gray  # noqa: E402
from bamf_lib.evaluation import stacks as stack_bench  # noqa: E402
from bamf_lib.fusion import pipeline as fusion  # noqa: E402
from bamf_lib.fusion import scorers  # noqa: E402
from bamf_lib.fusion import stack as stack_fusion  # noqa: E402
from bamf_lib.fusion.align import _ecc_affine  # noqa: E402
from bamf_lib.fusion.stack_align import align_stack, corner_error  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[3, 5, 8, 12, 20, 30])
    ap.add_argument("--seeds", type=int, default=2, help="stacks per frame count")
    ap.add_argument("--first-seed", type=int, default=2, help="seeds 0-1 chose MAX_STEPS and the area")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--sigma-max", type=float, default=6.0)
    ap.add_argument("--exposure", type=float, default=0.0, help="exposure drift a frame (truth_stack)")
    ap.add_argument("--contrast", type=float, default=1.0, help="background contrast (truth_stack)")
    ap.add_argument("--methods", nargs="+", default=["joint", "sequential", "enfuse", "openfocus"])
    ap.add_argument("--soft", action="store_true", help="also the share of cells left soft (as on real stacks)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    initial, boundary = scorers.load_scorer("initial"), scorers.load_scorer("boundary")
    rows, align_rows = [], []
    work = Path(tempfile.mkdtemp(prefix="bamf-truth-"))
    for n in args.frames:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            st = stack_bench.truth_stack(
                n, seed=seed, size=args.size, sigma_max=args.sigma_max, exposure=args.exposure, contrast=args.contrast
            )
            shape = st.frames[0].shape[:2]
            al = align_stack(st.frames)
            new_err = max(corner_error(al.warps[k], st.warps[k], shape) for k in range(n))
            ref = to_float_gray(st.frames[0])
            old_err = max(
                corner_error(
                    np.vstack([_ecc_affine(ref, to_float_gray(f), 4), [0, 0, 1]]),
                    w,
                    shape,
                )
                for f, w in zip(st.frames[1:], st.warps[1:])
            )
            align_rows.append(
                {
                    "frames": n,
                    "seed": seed,
                    "neighbour_px": new_err,
                    "to_first_px": old_err,
                    "residual_px": max(al.residuals),
                }
            )
            for method in args.methods:
                t0 = time.perf_counter()
                try:
                    if method.split("+")[0] in ("joint", "joint-net"):
                        # joint: fuse_stack's defaults; joint-net[+x][+e<W>]: the net alone, then with
                        # exposure matching (x) and the contrast term of weight W
                        opts = method.split("+")[1:]
                        kw = dict(scale=float(next((o[1:] for o in opts if o.startswith("s")), 1.0)))  # +s0.5
                        if method.startswith("joint-net"):
                            w = float(next((o[1:] for o in opts if o.startswith("e")), 0.0))
                            kw.update(energy_weight=w, match_exposure="x" in opts)
                        r = stack_fusion.fuse_stack(st.frames, initial=initial, boundary=boundary, **kw)
                        s = stack_bench.score_fused(r.fused, st, index=r.index, offset=r.alignment.crop[::2])
                    elif method == "sequential":
                        r = fusion.fuse(st.frames, align=True, initial=initial, boundary=boundary, stack="sequential")
                        s = stack_bench.score_fused(r.fused, st, index=r.decision_map, offset=(0, 0))
                    elif method in ("enfuse", "openfocus"):
                        if method == "enfuse" and not stack_peers.have_classic():
                            continue
                        if method == "openfocus" and stack_peers.openfocus_bin() is None:
                            continue
                        d = work / f"{n}-{seed}"
                        d.mkdir(exist_ok=True)
                        paths = []
                        for k, f in enumerate(st.frames):
                            paths.append(str(d / f"{k:02d}.png"))
                            cv2.imwrite(paths[-1], cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
                        run = stack_peers.run_classic if method == "enfuse" else stack_peers.run_openfocus
                        _, _, out = run(paths, d / f"{method}.png", d)
                        s = stack_bench.score_fused(stack_peers.read_rgb(out), st)
                    else:
                        raise ValueError(method)
                except Exception as exc:  # a peer failing on one stack is reported, not fatal
                    print(f"{method} failed on {st.name}: {exc}", file=sys.stderr)
                    continue
                seconds = time.perf_counter() - t0
                if args.soft:
                    out = (
                        r.fused
                        if method.split("+")[0] in ("joint", "joint-net", "sequential")
                        else stack_peers.read_rgb(out)
                    )
                    s["soft"] = stack_bench.soft_cell_share(out, st.frames)["share"]
                s.update(method=method, frames=n, seed=seed, seconds=seconds)
                rows.append(s)
                acc = f" acc {s['accuracy']:.3f} (+-1: {s['accuracy_1']:.3f})" if "accuracy" in s else ""
                acc += f" soft {s['soft']:.3f}" if "soft" in s else ""
                print(
                    f"{st.name:50s} {method:10s} PSNR {s['psnr']:6.2f} "
                    f"halo RMSE {s['halo_rmse']:6.2f}"
                    f"{acc} {s['seconds']:.1f} s",
                    flush=True,
                )
    print(
        "\nalignment, largest corner error over the frames (px): "
        f"neighbour chain mean {statistics.mean(r['neighbour_px'] for r in align_rows):.3f} "
        f"max {max(r['neighbour_px'] for r in align_rows):.3f}; "
        f"to the first (today) mean {statistics.mean(r['to_first_px'] for r in align_rows):.3f} "
        f"max {max(r['to_first_px'] for r in align_rows):.3f}"
    )
    print(
        "\n| method | stacks | PSNR dB | halo RMSE (6 px band) | decision accuracy (exact / +-1 frame) "
        "| cells left soft |"
    )
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        rs = [r for r in rows if r["method"] == method]
        if not rs:
            continue
        acc = (
            " / ".join(f"{statistics.mean(r[k] for r in rs):.3f}" for k in ("accuracy", "accuracy_1"))
            if "accuracy" in rs[0]
            else "-"
        )
        print(
            f"| {method} | {len(rs)} | {statistics.mean(r['psnr'] for r in rs):.2f} | "
            f"{statistics.mean(r['halo_rmse'] for r in rs):.2f} | {acc} | "
            + (
                f"{statistics.mean(r['soft'] for r in rs if r['soft'] == r['soft']):.3f} |"
                if "soft" in rs[0]
                else "- |"
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "alignment": align_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
