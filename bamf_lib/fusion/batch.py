"""Many focus stacks in one ``bamf fuse`` call: finding the stacks, and fusing them one by one.

Two ways to name the stacks:

* a **folder of stacks** (``bamf fuse --batch DIR``): every subfolder of ``DIR`` holding
  images is one stack, its images in name order; ``DIR/<subfolder>`` is written to
  ``OUT/<subfolder><suffix>``;
* a **list file** (``bamf fuse --list FILE``): one stack per line, ``a.jpg b.jpg -> out.png``
  (shell quoting for names with spaces; ``#`` starts a comment; relative paths are
  relative to the list file's folder).

:func:`run_batch` fuses them in one process, so the networks are loaded once; it skips a
stack whose output exists (unless ``force``), goes on past a stack that fails, and returns
what happened to each, with the seconds each stack took.  :func:`plan_batch` is the part every
engine shares; :func:`bamf_lib.fusion.engines.run_dask` runs the same batch on a Dask cluster.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Stack", "BatchReport", "stacks_for", "stacks_in_folder", "stacks_in_list", "plan_batch", "run_batch"]


@dataclass(frozen=True)
class Stack:
    """One focus stack: its source images, the fused image to write, and a name for messages."""

    sources: tuple[Path, ...]
    output: Path
    name: str


@dataclass
class BatchReport:
    """What :func:`run_batch` did: stacks fused, skipped (output exists) and failed (with why)."""

    fused: list[Stack] = field(default_factory=list)
    skipped: list[Stack] = field(default_factory=list)
    failed: list[tuple[Stack, BaseException]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # stack name -> seconds to fuse it

    def timing(self) -> str:
        """Per-stack seconds of the fused stacks: median and slowest ("" when none was fused)."""
        if not self.seconds:
            return ""
        times = sorted(self.seconds.values())
        slowest = max(self.seconds, key=self.seconds.get)
        return (
            f"seconds a stack: median {times[len(times) // 2]:.2f}, slowest {times[-1]:.2f} "
            f"({slowest}), total {sum(times):.1f}"
        )

    def in_order(self, stacks: Sequence[Stack]) -> BatchReport:
        """Sort the lists in the order of ``stacks``, whatever order the stacks finished in."""
        order = {id(s): i for i, s in enumerate(stacks)}
        self.fused.sort(key=lambda s: order[id(s)])
        self.failed.sort(key=lambda f: order[id(f[0])])
        return self

    def summary(self) -> str:
        return (
            f"{len(self.fused)} fused, {len(self.skipped)} skipped (output exists; --force replaces it), "
            f"{len(self.failed)} failed"
        )

    def exit_status(self) -> int:
        """0 when no stack failed; 2 when every failure was bad input or a file problem; 1 otherwise (a bug)."""
        if not self.failed:
            return 0
        return 2 if all(isinstance(e, (ValueError, OSError)) for _, e in self.failed) else 1


def _is_image(path: Path) -> bool:
    from PIL import Image

    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in Image.registered_extensions()


def stacks_in_folder(folder: str | Path, out_dir: str | Path | None = None, suffix: str = ".png") -> list[Stack]:
    """One :class:`Stack` per subfolder of ``folder`` (hidden ones aside), in name order.

    Parameters
    ----------
    folder : path-like
        A folder of stack folders, e.g. ``shoot/`` holding ``shoot/bee/1.jpg, 2.jpg ...``.
    out_dir : path-like, optional
        Where the fused images go (default ``folder`` itself): ``out_dir/<subfolder><suffix>``.
    suffix : str
        Image format of the fused images, by suffix.

    Returns
    -------
    list of Stack
        A subfolder with fewer than two images is still listed (it fails when fused, with
        the reason), so that no stack is silently left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"--batch {folder} is not a folder of stack folders")
    out_dir = Path(out_dir) if out_dir is not None else folder
    if not suffix.startswith("."):
        suffix = "." + suffix
    stacks = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if out_dir.resolve() == sub.resolve():
            continue
        sources = tuple(sorted(p for p in sub.iterdir() if _is_image(p)))
        stacks.append(Stack(sources, out_dir / f"{sub.name}{suffix}", sub.name))
    if not stacks:
        raise ValueError(f"--batch {folder} has no subfolders; put each stack's images in a folder of its own")
    return stacks


def stacks_for(*, batch: str | None, list_file: str | None, output: str | None, suffix: str) -> list[Stack]:
    """The stacks ``bamf fuse --batch DIR [-o OUTDIR] [--suffix S]`` or ``--list FILE`` names."""
    if batch and list_file:
        raise ValueError("give --batch or --list, not both")
    if list_file:
        if output:
            raise ValueError("a --list file names each stack's output; drop -o")
        return stacks_in_list(list_file)
    if output and Path(output).exists() and not Path(output).is_dir():
        raise NotADirectoryError(f"-o {output}: with --batch, -o names the folder for the fused images")
    return stacks_in_folder(batch, output, suffix)


def stacks_in_list(list_file: str | Path) -> list[Stack]:
    """The stacks of a list file: ``source source ... -> output`` per line.

    Raises
    ------
    ValueError
        Naming the line of a malformed entry (no ``->``, no output, unbalanced quotes).
    """
    list_file = Path(list_file)
    base = list_file.parent
    stacks = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ValueError(f"{list_file}:{number}: {exc}") from None
        if not words:
            continue
        if words.count("->") != 1 or words[-1] == "->" or len(words) - words.index("->") != 2:
            raise ValueError(f"{list_file}:{number}: expected 'source source ... -> output', got {line.strip()!r}")
        arrow = words.index("->")
        sources = tuple(base / w for w in words[:arrow])
        stacks.append(Stack(sources, base / words[-1], f"line {number}"))
    if not stacks:
        raise ValueError(f"{list_file} names no stacks; write one 'a.jpg b.jpg -> fused.png' per line")
    return stacks


def plan_batch(stacks: Sequence[Stack], force: bool = False) -> tuple[BatchReport, list[Stack]]:
    """A report holding the stacks no engine fuses (an output named twice: failed; an output that
    exists, unless ``force``: skipped), and the stacks to fuse."""
    report = BatchReport()
    outputs = [s.output.resolve() for s in stacks]
    todo = []
    for stack, output in zip(stacks, outputs):
        if outputs.count(output) > 1:
            report.failed.append((stack, ValueError(f"{stack.output} is the output of more than one stack")))
        elif stack.output.exists() and not force:
            report.skipped.append(stack)
        else:
            todo.append(stack)
    return report, todo


def _timed(fuse_one: Callable[[Stack], None], stack: Stack) -> float:
    start = time.perf_counter()
    fuse_one(stack)
    return time.perf_counter() - start


def run_batch(
    stacks: Sequence[Stack],
    fuse_one: Callable[[Stack], None],
    *,
    force: bool = False,
    progress: bool = True,
    debug: bool = False,
    jobs: int = 1,
    setup: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> BatchReport:
    """Fuse each stack with ``fuse_one``; skip those whose output exists (unless ``force``),
    carry on past failures.

    Parameters
    ----------
    stacks : sequence of Stack
    fuse_one : callable
        Fuses one stack and writes its output; raises on failure.  With ``jobs > 1`` it is
        called from several threads at once.
    force : bool
        Replace outputs that exist.
    progress : bool
        One progress bar over the stacks.
    debug : bool
        Re-raise the first failure (with its traceback) instead of going on.
    jobs : int
        Stacks fused at once, each in a thread of its own: while one is read, decoded or written
        (single-threaded work), the others keep the cores busy.
    setup : callable, optional
        Run once in each worker thread first (``jobs > 1`` only).
    stop : threading.Event, optional
        Set when the batch is interrupted (Ctrl-C, SIGTERM, ``debug``), for ``fuse_one`` to give up
        early; the stacks being fused then end quickly and no new one starts.

    Returns
    -------
    BatchReport
        Its lists are in the order of ``stacks``, whatever order the stacks finished in.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm import tqdm

    report, todo = plan_batch(stacks, force)
    bar = tqdm(total=len(stacks), initial=len(stacks) - len(todo), desc="stacks", unit="stack", disable=not progress)

    def done(stack: Stack, exc: BaseException | None, seconds: float = 0.0) -> None:
        if exc is None:
            report.fused.append(stack)
            report.seconds[stack.name] = seconds
        elif debug:
            raise exc
        elif isinstance(exc, Exception):  # one bad stack must not stop the others; reported at the end
            report.failed.append((stack, exc))
        else:
            raise exc
        bar.update()
        bar.set_postfix(failed=len(report.failed), refresh=False)

    with bar:
        if jobs <= 1 or len(todo) < 2:
            for stack in todo:
                try:
                    seconds = _timed(fuse_one, stack)
                except Exception as exc:
                    done(stack, exc)
                else:
                    done(stack, None, seconds)
        else:
            pool = ThreadPoolExecutor(min(jobs, len(todo)), thread_name_prefix="bamf-stack", initializer=setup)
            try:
                futures = {pool.submit(_timed, fuse_one, stack): stack for stack in todo}
                for future in as_completed(futures):
                    exc = future.exception()
                    done(futures[future], exc, 0.0 if exc else future.result())
            except BaseException:  # Ctrl-C, SIGTERM or --debug: no new stack starts, the running ones stop early
                if stop is not None:
                    stop.set()
                raise
            finally:  # outputs are written atomically: a stack stopped before its write leaves nothing
                pool.shutdown(wait=True, cancel_futures=True)
    return report.in_order(stacks)
