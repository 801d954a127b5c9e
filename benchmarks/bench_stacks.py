"""Real focus stacks (issue 25, item 5): each tool as a whole process, one right after the other
on each stack, with its time, peak memory and the share of cells it leaves soft.

Tools: ``bamf fuse FRAMES -o out.png`` (alignment on by default for more than two frames;
``bamf-fast``: the same with ``--scale 0.5``, not run unless named in ``--tools``),
Hugin's ``align_image_stack -m`` + ``enfuse`` with issue 25's flags (when installed) and
``openfocus`` (StackMFF-V3, when installed in its venv; ``--openfocus-max-mp`` skips it on large
stacks).  The soft-cell share is :func:`bamf_lib.evaluation.soft_cells.soft_cell_share` (12 x 12 cells,
every frame registered onto the output by ECC homography, mean |LoG| at sigma 2 px, cells where
the sharpest frame >= 1.5 x the softest; share where the output < 0.8 x the sharpest).

Run: ``BAMF_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_stacks.py [FOLDER ...]
[--out DIR] [--tools bamf bamf-fast classic openfocus] [--json OUT]``; without folders, the four
shared stacks (``$BAMF_DATA_DIR/stacks``).  The JSON holds ``{"meta": {command, date, load, ...},
"rows": [{"stack", "frames", "mp", TOOL: {"seconds", "peak_mb", "soft", "cells", "output"}}]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack_peers  # noqa: E402

from bamf_lib.evaluation.soft_cells import soft_cell_share  # noqa: E402
from bamf_lib.io import LazyFrames  # noqa: E402

_IMAGES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def _frames(folder: Path) -> list[str]:
    return [
        str(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in _IMAGES and not p.name.startswith("reference")
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", help="stack folders (frames in name order)")
    ap.add_argument("--out", help="folder for the outputs (default: a temporary one)")
    ap.add_argument("--tools", nargs="+", default=["bamf", "classic", "openfocus"])
    ap.add_argument("--openfocus-max-mp", type=float, default=2.0, help="skip openfocus above this size (MP)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    folders = [Path(f) for f in args.folders]
    if not folders:
        root = Path(os.environ.get("BAMF_DATA_DIR", "../shared/data")) / "stacks"
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    out_root = Path(args.out or tempfile.mkdtemp(prefix="bamf-stacks-"))
    load = os.getloadavg()[0]
    rows = []
    for folder in folders:
        frames = _frames(folder)
        from PIL import Image

        with Image.open(frames[0]) as im:
            mp = im.size[0] * im.size[1] / 1e6
        work = out_root / folder.name
        work.mkdir(parents=True, exist_ok=True)
        row = {"stack": folder.name, "frames": len(frames), "mp": mp}
        for tool in args.tools:
            try:
                if tool == "bamf":
                    sec, mb, out = stack_peers.run_bamf(frames, work / "bamf.png")
                elif tool == "bamf-fast":  # decided at half size
                    sec, mb, out = stack_peers.run_bamf(frames, work / "bamf-fast.png", "--scale", "0.5")
                elif tool == "classic":
                    if not stack_peers.have_classic():
                        continue
                    sec, mb, out = stack_peers.run_classic(frames, work / "enfuse.tif", work)
                elif tool == "openfocus":
                    if stack_peers.openfocus_bin() is None or mp > args.openfocus_max_mp:
                        continue
                    sec, mb, out = stack_peers.run_openfocus(frames, work / "openfocus.png", work)
                else:
                    raise ValueError(f"unknown tool {tool}")
            except Exception as exc:  # one tool failing on one stack is reported, the rest go on
                print(f"{tool} failed on {folder.name}: {exc}", file=sys.stderr)
                continue
            soft = soft_cell_share(stack_peers.read_rgb(out), LazyFrames(frames))
            row[tool] = {
                "seconds": sec,
                "peak_mb": mb,
                "soft": soft["share"],
                "cells": soft["cells"],
                "output": str(Path(out).relative_to(out_root)),  # relative: no machine paths
            }
            print(
                f"{folder.name:20s} {tool:9s} {sec:7.1f} s {mb:7.0f} MB  soft {soft['share']:.3f} "
                f"({soft['soft']}/{soft['cells']} cells)",
                flush=True,
            )
        rows.append(row)
    print(f"\nload average at start: {load:.2f}; outputs in {out_root}\n")
    names = {"classic": "align+enfuse"}
    tools = [t for t in args.tools if any(t in r for r in rows)]
    ours = [t for t in tools if t.startswith("bamf")]
    label = " / ".join(names.get(t, t) for t in tools)
    print(
        f"| stack | frames | s: {label} | " + " | ".join(f"{t} / classic time" for t in ours) + f" | peak MB: {label} "
        f"| cells left soft: {label} |"
    )
    print("|---|---|---|" + "---|" * len(ours) + "---|---|")
    get = lambda r, t, k, f: f.format(r[t][k]) if t in r else "-"  # noqa: E731
    for r in rows:
        ratios = [
            f"{r[t]['seconds'] / r['classic']['seconds']:.2f}x" if t in r and "classic" in r else "-" for t in ours
        ]
        print(
            f"| {r['stack']} | {r['frames']} x {r['mp']:.1f} MP | "
            + " / ".join(get(r, t, "seconds", "{:.1f}") for t in tools)
            + " | "
            + " | ".join(ratios)
            + " | "
            + " / ".join(get(r, t, "peak_mb", "{:.0f}") for t in tools)
            + " | "
            + " / ".join(get(r, t, "soft", "{:.2f}") for t in tools)
            + " |"
        )
    for t in tools:
        vals = [r[t]["soft"] for r in rows if t in r]
        print(f"mean soft-cell share, {t}: {statistics.mean(vals):.3f} over {len(vals)} stacks")
    if args.json:
        meta = {
            # the tools and stacks, not this machine's paths (the book prints it)
            "command": "benchmarks/bench_stacks.py "
            + " ".join([f.name for f in folders] if args.folders else [])
            + f" --tools {' '.join(args.tools)} --json {Path(args.json).name}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_at_start": round(load, 2),
            "cpus": os.cpu_count(),
            "tools": tools,
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
