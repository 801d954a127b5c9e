"""The ``bamf fuse`` command: one stack (``SOURCES -o OUTPUT``) or many (``--batch DIR``,
``--list FILE``; :mod:`bamf_lib.fusion.batch`).

The networks are resolved here, once per command (:func:`bamf_lib.fusion.scorers.load_scorer`),
and every stack is fused with the same two scorers; under ``--engine dask`` each worker resolves
them once (:mod:`bamf_lib.fusion.dask_worker`).

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

from bamf_lib.fusion import pipeline, scorers
from bamf_lib.fusion.batch import BatchReport, Stack, run_batch, stacks_for
from bamf_lib.io import check_sources, is_16bit, read_image, write_image
from bamf_lib.runtime import onnx

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
        raise PermissionError(
            f"{option}: cannot write in {folder} ({exc.strerror}); choose a writable folder for {option}"
        ) from None


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
            raise ValueError(
                f"{option} {path} is the input {source}; write the result to another file "
                f"(--force never replaces an input)"
            )
    if out.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    if out.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"cannot tell the image format from the suffix of {path} (use e.g. .png, .jpg, .tif)")
    _check_writable(out.parent, option)


def _scorers(args: argparse.Namespace) -> dict:
    """The initial and boundary scorers the command's options name, loaded once."""
    load = dict(device=args.device, backend=args.backend, path=args.path)
    return {net: scorers.load_scorer(net, args.weights, **load) for net in ("initial", "boundary")}


def _resolve(nets, args: argparse.Namespace) -> dict:
    """``nets`` (a dict of scorers, or a callable returning one), each scoring both orders of a
    pair under ``--swap-average``."""
    nets = nets() if callable(nets) else nets
    if getattr(args, "swap_average", False):
        return {net: scorers.SwapAveraged(s) for net, s in nets.items()}
    return nets


def _fuse_stack(
    args: argparse.Namespace,
    nets: dict,
    source_paths: list,
    output: str | Path,
    decision_map: str | None = None,
    progress: bool = True,
    exclusive: threading.Lock | None = None,
) -> str:
    """Fuse one stack with ``nets`` (:func:`_scorers`, or a callable returning them) and write it
    (and its decision map); returns the line to report.

    ``exclusive``: in a batch fusing stacks side by side, a stack of over ``_PROGRESS_PIXELS``
    takes this lock and all the cores, so that large stacks fuse one at a time (memory).  A stack
    that gets the lock after the batch was interrupted stops before its first tile (the worker's
    stop event, :func:`bamf_lib.runtime.onnx.set_stop`)."""
    out = Path(output)
    if len(source_paths) > pipeline.MAX_SOURCES:
        raise ValueError(
            f"{len(source_paths)} sources, more than the {pipeline.MAX_SOURCES} one decision map can index; "
            f"fuse them in groups, then fuse the groups' results"
        )
    _check_output(str(output), args.force, source_paths)
    _check_output(decision_map, args.force, source_paths, "--decision-map")
    if decision_map and _same_file(Path(decision_map), out):
        raise ValueError(f"--decision-map and -o name the same file {out}")
    scale = getattr(args, "scale", 1.0)
    if not 0 < scale <= 1:
        raise ValueError(f"--scale must be in (0, 1], got {scale}")
    if scale != 1 and len(source_paths) < 3:
        raise ValueError(
            "--scale is for stacks of more than two frames (a pair is decided at full size, as the paper does)"
        )
    if _stack_path(args, source_paths):
        return _fuse_frames(args, nets, source_paths, out, decision_map, progress, exclusive)
    sources = check_sources(
        [read_image(p, max_pixels=args.max_pixels) for p in source_paths], names=[str(p) for p in source_paths]
    )
    nets = _resolve(nets, args)

    large = sources[0].shape[0] * sources[0].shape[1] >= _PROGRESS_PIXELS
    with contextlib.ExitStack() as alone:
        if large and exclusive is not None:
            alone.enter_context(exclusive)
            alone.enter_context(onnx.threads(None))
        result = pipeline.fuse(
            sources,
            path=args.path,
            device=args.device,
            align=bool(args.align),
            progress=large and progress,
            initial=nets["initial"],
            boundary=nets["boundary"],
        )
    # both images are ready before either is written, so a failure leaves no output
    write_image(out, result.fused, overwrite=args.force)
    if decision_map:
        dm = (result.decision_map.astype("uint16") * (255 // (len(sources) - 1))).astype("uint8")
        write_image(decision_map, dm, overwrite=args.force)
    total = sum(result.timings.values())
    return f"wrote {out} ({result.fused.shape[1]}x{result.fused.shape[0]}) in {total:.2f} s"


def _stack_path(args: argparse.Namespace, source_paths: list) -> bool:
    """Whether a stack takes :func:`bamf_lib.fusion.stack.fuse_stack` (more than two frames,
    alignment, a depth map or 16-bit frames) rather than the pair path, which stays as it was."""
    if len(source_paths) > 2 or args.align or getattr(args, "depth_map", None):
        return True
    for p in map(Path, source_paths):
        try:
            if p.is_file() and is_16bit(p):
                return True
        except Exception:  # unreadable: read_image says why, on the pair path
            pass
    return False


def _fuse_frames(
    args: argparse.Namespace,
    nets,
    source_paths: list,
    out: Path,
    decision_map: str | None,
    progress: bool,
    exclusive: threading.Lock | None,
) -> str:
    """A focus stack: frames read as needed at full depth, aligned unless ``--no-align``, one
    joint decision with ``nets``; the reference frame's EXIF and ICC profile go to the output."""
    from PIL import Image

    from bamf_lib.fusion.stack import fuse_stack
    from bamf_lib.io import LazyFrames, depth_preview, read_metadata, write_frame

    n = len(source_paths)
    depth_map = getattr(args, "depth_map", None)
    reference = getattr(args, "reference", 0)
    verbose = getattr(args, "verbose", False)
    preview = None if depth_map is None else Path(depth_map).with_name(Path(depth_map).stem + "-preview.png")
    for extra, option in ((depth_map, "--depth-map"), (preview and str(preview), "--depth-map preview")):
        _check_output(extra, args.force, source_paths, option)
        if extra and _same_file(Path(extra), out):
            raise ValueError(f"{option} and -o name the same file {out}")
    if not -n <= reference < n:
        raise ValueError(f"--reference {reference}: the stack has {n} frames (0..{n - 1}, or -1 for the last)")
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
        raise ValueError(
            "frames differ in size: " + "; ".join(f"{w}x{h}: {', '.join(ps[:3])}" for (w, h), ps in sizes.items())
        )
    ((w, h),) = sizes
    nets = _resolve(nets, args)
    align = args.align if args.align is not None else n > 2
    large = w * h >= _PROGRESS_PIXELS
    with contextlib.ExitStack() as alone:
        if large and exclusive is not None:
            alone.enter_context(exclusive)
            alone.enter_context(onnx.threads(None))
        result = fuse_stack(
            LazyFrames(source_paths, args.max_pixels),
            align=align,
            reference=reference,
            initial=nets["initial"],
            boundary=nets["boundary"],
            device=args.device,
            progress=large and progress,
            scale=getattr(args, "scale", 1.0),
        )
    meta = read_metadata(source_paths[reference])
    write_frame(out, result.fused, overwrite=args.force, **meta)
    if decision_map:
        dm = (result.index.astype("uint16") * (255 // (n - 1))).astype("uint8")
        write_frame(decision_map, dm, overwrite=args.force)
    if depth_map:
        write_frame(depth_map, result.index, overwrite=args.force)
        write_frame(preview, depth_preview(result.index, n), overwrite=args.force)
    if verbose and result.alignment is not None:
        al = result.alignment
        y0, y1, x0, x1 = al.crop
        print(
            f"aligned {n} frames to frame {al.reference}: residual {max(al.residuals):.2f} px at most "
            f"(mean {sum(al.residuals) / len(al.residuals):.2f} px over neighbour pairs); common area "
            f"{x1 - x0}x{y1 - y0} at ({x0}, {y0})",
            file=sys.stderr,
        )
    if verbose:
        print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()), file=sys.stderr)
    total = sum(result.timings.values())
    return f"wrote {out} ({result.fused.shape[1]}x{result.fused.shape[0]}, {n} frames) in {total:.2f} s"


def cmd_fuse(args: argparse.Namespace) -> int:
    """``bamf fuse``: one stack, or many with ``--batch`` / ``--list``; returns the exit status."""
    if args.scheduler and args.engine != "dask":
        raise ValueError("--scheduler names a Dask scheduler; add --engine dask")
    if args.batch or args.list:
        return _cmd_fuse_batch(args)
    if not args.sources or args.output is None:
        raise ValueError("name the source images and -o OUTPUT (or many stacks: --batch DIR, --list FILE)")
    if args.engine != "local" or args.scheduler:
        raise ValueError("--engine and --scheduler are for many stacks (--batch DIR, --list FILE)")
    if args.jobs is not None:
        raise ValueError("--jobs is for many stacks (--batch DIR, --list FILE); one stack already uses every core")
    # the outputs and inputs are checked before the networks load
    line = _fuse_stack(
        args, functools.partial(_scorers, args), args.sources, args.output, args.decision_map, progress=not args.quiet
    )
    if not args.quiet:
        print(line, file=sys.stderr)
    return 0


def _batch_jobs(args: argparse.Namespace, nets: dict) -> int:
    """Stacks a batch fuses at once: ``--jobs``, by default one per core up to 4; 1 where the
    networks do not run on ONNX Runtime (torch and CUDA use their own threads)."""
    onnx = all(n.backend == "onnx" for n in nets.values())
    return (args.jobs or min(os.cpu_count() or 1, 4)) if onnx else 1


def _worker_setup(threads: int, stop: threading.Event) -> None:
    """A batch worker thread: the networks on ``threads`` threads, stopping between tiles on ``stop``."""
    onnx.set_threads(threads)
    onnx.set_stop(stop)


def _fuse_listed(args: argparse.Namespace, nets, stack: Stack, exclusive: threading.Lock | None = None) -> None:
    """Fuse one stack of a batch with ``nets`` (as :func:`_fuse_stack` takes them): what each
    engine, local or Dask, calls per stack."""
    _fuse_stack(args, nets, list(stack.sources), stack.output, progress=False, exclusive=exclusive)


def _fuse_batch_dask(args: argparse.Namespace, stacks: list[Stack]) -> BatchReport:
    """``--engine dask``: the batch on a Dask cluster (:func:`bamf_lib.fusion.engines.run_dask`).
    Each worker resolves the scorers once (:class:`~bamf_lib.fusion.dask_worker.PreloadNets`);
    the tasks get the options ``_fuse_stack`` reads, with a --weights folder made absolute."""
    from bamf_lib.fusion.dask_worker import PreloadNets, worker_scorers
    from bamf_lib.fusion.engines import run_dask

    weights = args.weights
    if weights and Path(weights).is_dir():
        weights = str(Path(weights).absolute())
    load = dict(weights=weights, device=args.device, backend=args.backend, path=args.path)
    options = argparse.Namespace(
        force=args.force,
        max_pixels=args.max_pixels,
        path=args.path,
        device=args.device,
        align=args.align,
        reference=args.reference,
        scale=args.scale,
        swap_average=args.swap_average,
    )
    return run_dask(
        stacks,
        functools.partial(_fuse_listed, options, functools.partial(worker_scorers, **load)),
        scheduler=args.scheduler,
        n_workers=args.jobs,
        force=args.force,
        progress=not args.quiet,
        debug=args.debug,
        plugin=PreloadNets(**load),
        quiet=args.quiet,
    )


def _cmd_fuse_batch(args: argparse.Namespace) -> int:
    """``bamf fuse --batch DIR [-o OUTDIR]`` or ``--list FILE``: many stacks, one process
    (``--engine local``) or a Dask cluster (``--engine dask``)."""
    if args.sources or args.decision_map:
        raise ValueError("--batch and --list name the stacks themselves; give no source images or --decision-map")
    if getattr(args, "depth_map", None):
        raise ValueError("--depth-map names one file, for one stack; fuse a stack alone to get its depth map")
    stacks = stacks_for(batch=args.batch, list_file=args.list, output=args.output, suffix=args.suffix)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.engine == "dask":
        try:
            report = _fuse_batch_dask(args, stacks)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(
                "interrupted; the cluster is shut down, the stacks fused are kept, the "
                "others left nothing; run again to go on (finished stacks are skipped)"
            ) from None
        return _report_batch(stacks, report)
    nets = _scorers(args)
    jobs, setup, lock, stop = _batch_jobs(args, nets), None, threading.Lock(), threading.Event()
    if jobs > 1:
        setup = functools.partial(_worker_setup, max(1, (os.cpu_count() or 1) // jobs), stop)
    fused = []

    def fuse_one(stack):
        _fuse_listed(args, nets, stack, lock)
        fused.append(stack)

    try:
        report = run_batch(
            stacks,
            fuse_one,
            force=args.force,
            progress=not args.quiet,
            debug=args.debug,
            jobs=jobs,
            setup=setup,
            stop=stop,
        )
    except KeyboardInterrupt:
        n = len(fused)
        raise KeyboardInterrupt(
            f"interrupted; {n} stack{'s' if n != 1 else ''} fused in this run "
            f"{'are' if n != 1 else 'is'} kept, the others left nothing; run again to go on "
            f"(finished stacks are skipped)"
        ) from None
    return _report_batch(stacks, report)


def _report_batch(stacks: list[Stack], report: BatchReport) -> int:
    """Print the failures with their reasons, the per-stack seconds and the counts; the exit status."""
    for stack, exc in report.failed:
        print(f"bamf fuse: failed {stack.name} (-> {stack.output}): {one_line(exc)}", file=sys.stderr)
    if report.seconds:
        print(f"bamf fuse: {report.timing()}", file=sys.stderr)
    print(f"bamf fuse: {len(stacks)} stacks: {report.summary()}", file=sys.stderr)
    return report.exit_status()


def one_line(exc: BaseException) -> str:
    """An error message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
