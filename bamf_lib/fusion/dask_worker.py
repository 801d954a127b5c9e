"""What runs on a Dask worker for ``--engine dask`` (:mod:`bamf_lib.fusion.engines` submits it).

* :class:`PreloadNets`, a worker plugin: each worker resolves the initial and boundary scorers
  once, when it joins (and a worker that replaces a dead one too), through the one edge
  (:func:`bamf_lib.fusion.scorers.load_scorer`); the tasks then get the same
  :class:`~bamf_lib.runtime.scorer.Scorer` objects from :func:`worker_scorers`.
  On the default ONNX path a worker never imports torch.
* :func:`run_stack`, one task per stack: it is idempotent (a retry after its worker died finds
  the output written atomically, or writes the same bytes again), and returns the seconds it
  took, or the reason a stack is bad, so that a bad file fails once and is not retried.
* :func:`check_access`, the one small task run before a batch: can a worker read the first
  input and write the output folder?

Only the dask engine imports this module.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

try:
    from distributed import WorkerPlugin
except ModuleNotFoundError:  # importable without dask (doctest collection); the engine needs it
    WorkerPlugin = object

from bamf_lib.fusion import scorers
from bamf_lib.fusion.batch import Stack
from bamf_lib.runtime.onnx import threads
from bamf_lib.runtime.scorer import Scorer

__all__ = ["DETERMINISTIC", "PreloadNets", "check_access", "run_stack", "worker_scorers"]

# failures that a second try cannot mend (bad input, a missing or unwritable file): reported at
# once; any other exception (an I/O hiccup of a network filesystem, memory) is retried by Dask
DETERMINISTIC = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


_LOADED: dict[tuple, dict[str, Scorer]] = {}  # this worker process's scorers, by load options
_LOADING = threading.Lock()


def worker_scorers(
    weights: str | None = None, device: str = "auto", backend: str = "auto", path: str = "fast"
) -> dict[str, Scorer]:
    """The initial and boundary scorers of these options, resolved once per worker process
    (:func:`bamf_lib.fusion.scorers.load_scorer`); what a task's ``_fuse_stack`` fuses with."""
    key = (weights, device, backend, path)
    with _LOADING:
        if key not in _LOADED:
            load = dict(device=device, backend=backend, path=path)
            _LOADED[key] = {net: scorers.load_scorer(net, weights, **load) for net in ("initial", "boundary")}
        return _LOADED[key]


class PreloadNets(WorkerPlugin):
    """Load the networks ``bamf fuse`` runs once per worker, as it starts.

    Parameters are those of :func:`worker_scorers`.  A network that cannot be loaded is left
    for the tasks, which then fail with the reason (as the local engine does).
    """

    def __init__(
        self,
        weights: str | None = None,
        device: str = "auto",
        backend: str = "auto",
        path: str = "fast",
    ) -> None:
        self.options = {"weights": weights, "device": device, "backend": backend, "path": path}

    def setup(self, worker) -> None:
        try:
            worker_scorers(**self.options)
        except (OSError, ValueError):  # no networks: every stack fails and says why
            return


def _sendable(exc: Exception) -> Exception:
    """``exc`` if it pickles (its type decides the exit status), else a RuntimeError saying it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def run_stack(
    stack: Stack, fuse_one: Callable[[Stack], object], force: bool = False, catch: bool = True
) -> float | None | Exception:
    """Fuse one stack on a worker: the seconds it took; None when its output already exists
    (an earlier try of this task, on a worker that died after writing it: the batch skipped the
    outputs that existed before it started); or, with ``catch``, the exception of a bad stack.

    The networks run on one thread: Dask gives each of a worker's threads one core.
    """
    if not force and stack.output.exists():
        return None
    start = time.perf_counter()
    try:
        with threads(1):
            fuse_one(stack)
    except DETERMINISTIC as exc:
        if not catch:
            raise
        return _sendable(exc)
    return time.perf_counter() - start


def check_access(first_input: str, output_folder: str) -> str:
    """Read a byte of ``first_input`` and check that ``output_folder`` (or the part of it that
    exists) is writable, on the worker that runs this; returns its host name."""
    with open(first_input, "rb") as f:
        f.read(1)
    folder = Path(output_folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write in {folder}")
    return socket.gethostname()
