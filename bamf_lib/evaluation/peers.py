"""The classic free focus-stacking pipeline, as a photographer runs it: Hugin's
``align_image_stack -m`` (registration with magnification) then ``enfuse`` with the hard-mask
contrast selection of issue 25::

    align_image_stack -m -a PREFIX frames...
    enfuse --exposure-weight=0 --saturation-weight=0 --contrast-weight=1 --hard-mask \\
           --contrast-window-size=5 -o out.tif PREFIX*.tif

Both are Debian packages (``apt-get install hugin-tools enfuse``).  :func:`run_classic` runs them
as processes and returns the output; :func:`read_output` reads it as RGB uint8 (enfuse writes a
TIFF with an alpha channel, 8 or 16 bits).  The benchmarks time and measure them
(``benchmarks/stack_peers.py``); the book shows their result beside bamf's.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from bamf_lib.io import to_8bit

__all__ = ["ENFUSE_FLAGS", "CLASSIC_TOOLS", "have_classic", "classic_commands", "run_classic", "read_output"]

#: issue 25's enfuse flags: contrast only, one frame a pixel (hard mask), a 5 px window
ENFUSE_FLAGS = (
    "--exposure-weight=0",
    "--saturation-weight=0",
    "--contrast-weight=1",
    "--hard-mask",
    "--contrast-window-size=5",
)
#: the programs the classic pipeline needs
CLASSIC_TOOLS = ("align_image_stack", "enfuse")


def have_classic() -> bool:
    """Whether ``align_image_stack`` and ``enfuse`` are on the PATH."""
    return all(shutil.which(t) for t in CLASSIC_TOOLS)


def classic_commands(frames: list[str], out: str | Path, work: str | Path) -> list[list[str]]:
    """The two command lines (the second's inputs are globbed after the first has run)."""
    prefix = str(Path(work) / "aligned_")
    return [
        ["align_image_stack", "-m", "-a", prefix, *map(str, frames)],
        ["enfuse", *ENFUSE_FLAGS, "-o", str(out), prefix + "*.tif"],
    ]


def run_classic(frames: list[str], out: str | Path, work: str | Path, run=subprocess.run) -> Path:
    """Fuse ``frames`` (paths, focus order) with the classic pipeline into ``out`` (a TIFF),
    using ``work`` for the aligned frames; ``run`` runs one command (``subprocess.run``'s
    signature; the benchmarks pass a timed one).

    Raises
    ------
    FileNotFoundError
        If a tool is missing (naming it and the Debian package).
    RuntimeError
        If a tool fails (with the end of its error output).
    """
    missing = [t for t in CLASSIC_TOOLS if shutil.which(t) is None]
    if missing:
        raise FileNotFoundError(
            f"{' and '.join(missing)} not found: install the Debian packages hugin-tools and enfuse "
            "(apt-get install hugin-tools enfuse)"
        )
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    align, enfuse = classic_commands(frames, out, work)
    for old in glob.glob(str(work / "aligned_*")):
        os.remove(old)
    _check(run(align, capture_output=True, text=True), "align_image_stack")
    aligned = sorted(glob.glob(enfuse[-1]))
    if not aligned:
        raise RuntimeError(f"align_image_stack wrote no aligned frames into {work}")
    _check(run(enfuse[:-1] + aligned, capture_output=True, text=True), "enfuse")
    return Path(out)


def _check(proc, name: str) -> None:
    if proc.returncode:
        tail = " ".join((proc.stderr or "").split())[-400:]
        raise RuntimeError(f"{name} failed (exit {proc.returncode}): {tail}")


def read_output(path: str | Path) -> np.ndarray:
    """An output file as RGB uint8 (16 bits rounded down to 8, alpha dropped)."""
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None:
        raise ValueError(f"cannot read {path}")
    im = to_8bit(im)
    if im.ndim == 3:
        im = cv2.cvtColor(im[..., :3], cv2.COLOR_BGR2RGB)
    return im
