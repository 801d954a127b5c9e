"""The ``bamf fuse`` command: one stack (``SOURCES -o OUTPUT``) or many (``--batch DIR``,
``--list FILE``; :mod:`bamf_lib.batch`).

Every output is checked before any work (a folder, an input, an existing file without
``--force``, an unknown format, an unwritable folder), so bad input fails in one line with
nothing written.  A batch fuses a stack per core at once on ONNX Runtime (``--jobs``), each on
one thread, which gives the same images bit for bit; a stack of over 1 MP takes all the cores,
one at a time, which bounds the memory.  :mod:`bamf_lib.cli` parses the arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["cmd_fuse", "one_line"]


# pixels from which ``bamf fuse`` shows a progress bar (about a 1000 x 1000 image)
_PROGRESS_PIXELS = 1_000_000


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    return False


def _check_writable(folder: Path, option: str) -> None:
    """Refuse an output folder that cannot take a new file, before any work."""
    while not folder.exists() and folder != folder.parent:  # atomic_write creates the missing part
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{option}: {folder} is not a folder; choose another {option} path")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PermissionError(f"{option}: cannot write in {folder} ({exc.strerror}); "
                              f"choose a writable folder for {option}") from None


def _check_output(path: str | None, force: bool, inputs: list[str] = (), option: str = "-o") -> None:
    """Refuse an output before any work: a folder, one of the inputs (even with --force), existing
    (without --force), of unknown format, or in a folder that cannot be written."""
    from PIL import Image

    if path is None:
        return
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; name the image file to write, e.g. {out / 'fused.png'}")
    for source in inputs:
        if _same_file(out, Path(source)):
            raise ValueError(f"{option} {path} is the input {source}; write the result to another file "
                             f"(--force never replaces an input)")
    if out.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    if out.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"cannot tell the image format from the suffix of {path} (use e.g. .png, .jpg, .tif)")
    _check_writable(out.parent, option)


def _fuse_stack(args: argparse.Namespace, source_paths: list, output: str | Path, decision_map: str | None = None,
                progress: bool = True, exclusive: threading.Lock | None = None) -> str:
    """Fuse one stack and write it (and its decision map); returns the line to report.

    ``exclusive``: in a batch fusing stacks side by side, a stack of over ``_PROGRESS_PIXELS``
    takes this lock and all the cores, so that large stacks fuse one at a time (memory).  A stack
    that gets the lock after the batch was interrupted stops before its first tile (the worker's
    stop event, :func:`bamf_lib.onnxnet.set_stop`)."""
    from bamf_lib.io import check_sources, read_image, write_image

    from bamf_lib.fusion import MAX_SOURCES, fuse

    out = Path(output)
    if len(source_paths) > MAX_SOURCES:
        raise ValueError(f"{len(source_paths)} sources, more than the {MAX_SOURCES} one decision map can index; "
                         f"fuse them in groups, then fuse the groups' results")
    _check_output(str(output), args.force, source_paths)
    _check_output(decision_map, args.force, source_paths, "--decision-map")
    if decision_map and _same_file(Path(decision_map), out):
        raise ValueError(f"--decision-map and -o name the same file {out}")
    if _stack_path(args, source_paths, decision_map):
        return _fuse_frames(args, source_paths, out, decision_map, progress, exclusive)
    sources = check_sources([read_image(p, max_pixels=args.max_pixels) for p in source_paths],
                            names=[str(p) for p in source_paths])

    large = sources[0].shape[0] * sources[0].shape[1] >= _PROGRESS_PIXELS
    with contextlib.ExitStack() as alone:
        if large and exclusive is not None:
            from bamf_lib.onnxnet import threads

            alone.enter_context(exclusive)
            alone.enter_context(threads(None))
        result = fuse(sources, path=args.path, device=args.device, align=bool(args.align), progress=large and progress,
                      weights=args.weights, backend=args.backend)
    # both images are ready before either is written, so a failure leaves no output
    write_image(out, result.fused, overwrite=args.force)
    if decision_map:
        dm = (result.decision_map.astype("uint16") * (255 // (len(sources) - 1))).astype("uint8")
        write_image(decision_map, dm, overwrite=args.force)
    total = sum(result.timings.values())
    return f"wrote {out} ({result.fused.shape[1]}x{result.fused.shape[0]}) in {total:.2f} s"


def _stack_path(args: argparse.Namespace, source_paths: list, decision_map: str | None) -> bool:
    """Whether a stack takes :func:`bamf_lib.stack_fusion.fuse_stack` (more than two frames,
    alignment, a depth map or 16-bit frames) rather than today's pair path, which stays as it was."""
    from bamf_lib.stack_io import _is_16bit

    if len(source_paths) > 2 or args.align or getattr(args, "depth_map", None):
        return True
    for p in map(Path, source_paths):
        try:
            if p.is_file() and _is_16bit(p):
                return True
        except Exception:  # unreadable: read_image says why, on the pair path
            pass
    return False


def _fuse_frames(args: argparse.Namespace, source_paths: list, out: Path, decision_map: str | None,
                 progress: bool, exclusive: threading.Lock | None) -> str:
    """A focus stack: frames read as needed at full depth, aligned unless ``--no-align``, one
    joint decision; the reference frame's EXIF and ICC profile go to the output."""
    from PIL import Image

    from bamf_lib.io import read_image
    from bamf_lib.stack_fusion import fuse_stack
    from bamf_lib.stack_io import LazyFrames, depth_preview, read_metadata, write_frame

    n = len(source_paths)
    depth_map = getattr(args, "depth_map", None)
    preview = None if depth_map is None else Path(depth_map).with_name(Path(depth_map).stem + "-preview.png")
    for extra, option in ((depth_map, "--depth-map"), (preview and str(preview), "--depth-map preview")):
        _check_output(extra, args.force, source_paths, option)
        if extra and _same_file(Path(extra), out):
            raise ValueError(f"{option} and -o name the same file {out}")
    if not -n <= args.reference < n:
        raise ValueError(f"--reference {args.reference}: the stack has {n} frames (0..{n - 1}, or -1 for the last)")
    sizes = {}
    for p in source_paths:  # sizes from the headers, before any frame is decoded
        if not Path(p).is_file():
            read_image(p)  # raises the documented error (missing file, a folder)
        try:
            with Image.open(p) as im:
                sizes.setdefault(im.size, []).append(str(p))
        except Exception:
            read_image(p, max_pixels=args.max_pixels)  # raises the documented one-line error
            raise
    if len(sizes) > 1:
        raise ValueError("frames differ in size: " + "; ".join(f"{w}x{h}: {', '.join(ps[:3])}"
                                                            for (w, h), ps in sizes.items()))
    (w, h), = sizes
    align = args.align if args.align is not None else n > 2
    large = w * h >= _PROGRESS_PIXELS
    with contextlib.ExitStack() as alone:
        if large and exclusive is not None:
            from bamf_lib.onnxnet import threads

            alone.enter_context(exclusive)
            alone.enter_context(threads(None))
        result = fuse_stack(LazyFrames(source_paths, args.max_pixels), align=align, reference=args.reference,
                            weights=args.weights, backend=args.backend, device=args.device,
                            progress=large and progress)
    meta = read_metadata(source_paths[args.reference])
    write_frame(out, result.fused, overwrite=args.force, **meta)
    if decision_map:
        dm = (result.index.astype("uint16") * (255 // (n - 1))).astype("uint8")
        write_frame(decision_map, dm, overwrite=args.force)
    if depth_map:
        write_frame(depth_map, result.index, overwrite=args.force)
        write_frame(preview, depth_preview(result.index, n), overwrite=args.force)
    if getattr(args, "verbose", False) and result.alignment is not None:
        al = result.alignment
        y0, y1, x0, x1 = al.crop
        print(f"aligned {n} frames to frame {al.reference}: residual {max(al.residuals):.2f} px at most "
              f"(mean {sum(al.residuals) / len(al.residuals):.2f} px over neighbour pairs); common area "
              f"{x1 - x0}x{y1 - y0} at ({x0}, {y0})", file=sys.stderr)
    if getattr(args, "verbose", False):
        print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()), file=sys.stderr)
    total = sum(result.timings.values())
    return f"wrote {out} ({result.fused.shape[1]}x{result.fused.shape[0]}, {n} frames) in {total:.2f} s"


def cmd_fuse(args: argparse.Namespace) -> int:
    """``bamf fuse``: one stack, or many with ``--batch`` / ``--list``; returns the exit status."""
    if args.batch or args.list:
        return _cmd_fuse_batch(args)
    if not args.sources or args.output is None:
        raise ValueError("name the source images and -o OUTPUT (or many stacks: --batch DIR, --list FILE)")
    if args.jobs is not None:
        raise ValueError("--jobs is for many stacks (--batch DIR, --list FILE); one stack already uses every core")
    line = _fuse_stack(args, args.sources, args.output, args.decision_map, progress=not args.quiet)
    if not args.quiet:
        print(line, file=sys.stderr)
    return 0


def _batch_jobs(args: argparse.Namespace) -> int:
    """Stacks a batch fuses at once: ``--jobs``, by default one per core up to 4; 1 where the
    networks do not run on ONNX Runtime (torch and CUDA use their own threads)."""
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    from bamf_lib.fusion import load_net
    from bamf_lib.onnxnet import OnnxNet

    try:
        onnx = isinstance(load_net("initial", args.weights, device=args.device, backend=args.backend, path=args.path),
                          OnnxNet)
    except (OSError, ValueError):  # no networks: every stack fails and says why
        onnx = False
    return (args.jobs or min(os.cpu_count() or 1, 4)) if onnx else 1


def _worker_setup(threads: int, stop: threading.Event) -> None:
    """A batch worker thread: the networks on ``threads`` threads, stopping between tiles on ``stop``."""
    from bamf_lib.onnxnet import set_stop, set_threads

    set_threads(threads)
    set_stop(stop)


def _cmd_fuse_batch(args: argparse.Namespace) -> int:
    """``bamf fuse --batch DIR [-o OUTDIR]`` or ``--list FILE``: many stacks, one process."""
    from bamf_lib.batch import run_batch, stacks_for

    if args.sources or args.decision_map:
        raise ValueError("--batch and --list name the stacks themselves; give no source images or --decision-map")
    stacks = stacks_for(batch=args.batch, list_file=args.list, output=args.output, suffix=args.suffix)
    jobs, setup, lock, stop = _batch_jobs(args), None, threading.Lock(), threading.Event()
    if jobs > 1:
        setup = functools.partial(_worker_setup, max(1, (os.cpu_count() or 1) // jobs), stop)
    fused = []

    def fuse_one(stack):
        _fuse_stack(args, list(stack.sources), stack.output, progress=False, exclusive=lock)
        fused.append(stack)

    try:
        report = run_batch(stacks, fuse_one, force=args.force, progress=not args.quiet, debug=args.debug, jobs=jobs,
                           setup=setup, stop=stop)
    except KeyboardInterrupt:
        n = len(fused)
        raise KeyboardInterrupt(f"interrupted; {n} stack{'s' if n != 1 else ''} fused in this run "
                                f"{'are' if n != 1 else 'is'} kept, the others left nothing; run again to go on "
                                f"(finished stacks are skipped)") from None
    for stack, exc in report.failed:
        print(f"bamf fuse: failed {stack.name} (-> {stack.output}): {one_line(exc)}", file=sys.stderr)
    print(f"bamf fuse: {len(stacks)} stacks: {report.summary()}", file=sys.stderr)
    return report.exit_status()


def one_line(exc: BaseException) -> str:
    """An error message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
