"""The peers a focus-stacking benchmark runs as whole processes: ``bamf fuse``, Hugin's
``align_image_stack`` + ``enfuse`` (the classic free pipeline, with exactly issue 25's flags)
and ``openfocus`` (PyPI, StackMFF-V3; in its own venv, ``OPENFOCUS`` or ``/tmp/ofvenv``).

Each runner returns ``(seconds, peak MB, output path)``; peak memory is the largest resident
set of the tool's processes (``/usr/bin/time -f %M``, per process; the classic pipeline's two
processes run one after the other, so its peak is the larger of the two).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bamf_lib.evaluation import peers

ROOT = Path(__file__).resolve().parents[1]
ENFUSE_FLAGS = list(peers.ENFUSE_FLAGS)


def _timed(cmd: list[str], env=None) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, peak resident MB)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
    rss = [int(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("MAXRSS ")]
    return dt, (rss[-1] / 1024 if rss else float("nan"))


have_classic = peers.have_classic


def openfocus_bin() -> str | None:
    for cand in (os.environ.get("OPENFOCUS"), "/tmp/ofvenv/bin/openfocus"):
        if cand and Path(cand).is_file():
            return cand
    return None


def run_bamf(frames: list[str], out: Path, *extra: str) -> tuple[float, float, Path]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    dt, mb = _timed(
        [
            sys.executable,
            "-m",
            "bamf_lib.cli",
            "fuse",
            *frames,
            "-o",
            str(out),
            "--force",
            "-q",
            *extra,
        ],
        env,
    )
    return dt, mb, out


def run_classic(frames: list[str], out: Path, work: Path) -> tuple[float, float, Path]:
    """:func:`bamf_lib.evaluation.peers.run_classic`, each of its two processes timed; its output
    is ``work/enfused.tif`` (``out`` is not used: enfuse writes TIFF)."""
    stats = []

    def timed(cmd, **kw):
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], **kw)
        rss = [int(line.split()[1]) for line in (p.stderr or "").splitlines() if line.startswith("MAXRSS ")]
        stats.append((time.perf_counter() - t0, rss[-1] / 1024 if rss else float("nan")))
        return p

    tif = peers.run_classic(frames, Path(work) / "enfused.tif", work, run=timed)
    return sum(t for t, _ in stats), max(m for _, m in stats), tif


def run_openfocus(frames: list[str], out: Path, work: Path) -> tuple[float, float, Path]:
    """openfocus's command line on a folder holding the frames (links): StackMFF-V3 on the CPU after
    openfocus's own registration (``--align openfocus``)."""
    exe = openfocus_bin()
    if exe is None:
        raise FileNotFoundError("openfocus is not installed (OPENFOCUS or /tmp/ofvenv/bin/openfocus)")
    src = work / "of_in"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for i, f in enumerate(frames):
        os.symlink(os.path.abspath(f), src / f"{i:03d}{Path(f).suffix}")
    dt, mb = _timed(
        [exe, "--input", str(src), "-o", str(out), "--method", "stackmffv3", "--align", "openfocus", "--cpu"]
    )
    return dt, mb, out


def read_rgb(path: Path):
    """An output file as RGB uint8 (:func:`bamf_lib.evaluation.peers.read_output`)."""
    return peers.read_output(path)
