"""Where a batch runs: in this process (``--engine local``, the default) or on Dask.

* ``local``: :func:`bamf_lib.fusion.batch.run_batch`, a stack per core in threads of this process.
* ``dask``: :func:`run_dask`, one task per stack on a ``dask.distributed`` cluster: without a
  scheduler address, a :class:`~distributed.LocalCluster` sized to this machine (a worker
  process per core, one thread each, on the loopback interface; its dashboard address is
  printed); with one (``tcp://host:8786``), the cluster behind it, which may be a laptop's, an
  HPC queue's (dask-jobqueue) or Kubernetes' (dask-kubernetes).

Both engines call the same per-stack function and fill the same
:class:`~bamf_lib.fusion.batch.BatchReport`: finished outputs are skipped before anything is submitted,
a bad stack is reported at the end with its reason, every output is written atomically by the
worker that fused it.  Tasks get paths, not pixels: every worker must see the inputs and outputs
at the same paths (a shared filesystem), which one small task checks before the batch is
submitted.  A worker that dies mid-batch is replaced and its stacks run again elsewhere (the
scheduler's ``distributed.scheduler.allowed-failures``, 3 by default, bounds how many workers one
stack may kill); a stack that raises an unexpected error is retried ``retries`` times.

:func:`map_dask` runs any picklable function over items the same way, for ``bamf evaluate``.
Dask is imported only here, inside the functions, and only for the dask engine
(``pip install 'bamf[dask]'``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bamf_lib.fusion.batch import BatchReport, Stack, plan_batch

__all__ = ["ENGINES", "check_workers", "dask_client", "map_dask", "run_dask"]

ENGINES = ("local", "dask")
#: seconds to wait for a scheduler's first worker, and for the access check to come back
WORKER_TIMEOUT = 120


def _import_distributed():
    try:
        import distributed
    except ModuleNotFoundError as exc:
        if exc.name not in ("dask", "distributed"):
            raise
        raise ValueError("--engine dask needs dask and distributed: pip install 'bamf[dask]'") from None
    return distributed


def _cores() -> int:
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, *, n_workers: int | None = None, quiet: bool = False) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler``, or to a new ``LocalCluster``.

    The local cluster has ``n_workers`` worker processes (default one per core) of one thread
    each, listens on 127.0.0.1 only, and is shut down, workers and all, when the block ends, by
    an error or Ctrl-C too.  Its dashboard address is printed on stderr unless ``quiet``.
    """
    distributed = _import_distributed()
    if scheduler is not None:
        if n_workers is not None:
            raise ValueError("--jobs sizes the local cluster; with --scheduler the cluster is sized already")
        with distributed.Client(scheduler, timeout="30s") as client:
            yield client
        return
    if n_workers is not None and n_workers < 1:
        raise ValueError(f"--jobs must be at least 1, got {n_workers}")
    with distributed.LocalCluster(
        n_workers=n_workers or _cores(),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    ) as cluster:
        if not quiet:
            print(
                f"bamf: local Dask cluster of {len(cluster.workers)} workers; dashboard at {cluster.dashboard_link}",
                file=sys.stderr,
            )
        with distributed.Client(cluster) as client:
            yield client


def check_workers(client: Any, check: Callable[[], object], what: str) -> None:
    """Run ``check`` on one worker before a batch; a worker that cannot (the inputs are not on
    its filesystem, say) stops the batch with one line, before anything is submitted."""
    where = client.scheduler.address
    try:
        client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
    except TimeoutError:
        raise TimeoutError(f"no worker joined the Dask scheduler at {where} in {WORKER_TIMEOUT} s") from None
    try:
        client.submit(check, pure=False, key=f"bamf-check-{uuid.uuid4().hex}").result(timeout=WORKER_TIMEOUT)
    except Exception as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise FileNotFoundError(
            f"the Dask workers of {where} cannot use {what} ({why}); every worker must "
            f"see the inputs and outputs at the same paths (a shared filesystem; "
            f"fsspec URLs are not supported)"
        ) from None


def _registered(client: Any, plugin: Any | None) -> contextlib.AbstractContextManager:
    """Register a worker plugin for the block; unregister it after (on a shared cluster a plugin
    would otherwise outlive this batch and run in every worker that joins later)."""
    if plugin is None:
        return contextlib.nullcontext()
    name = f"bamf-{type(plugin).__name__}-{uuid.uuid4().hex[:8]}"
    client.register_plugin(plugin, name=name)

    def unregister() -> None:
        with contextlib.suppress(Exception):  # a cluster already closing forgets it anyway
            client.unregister_worker_plugin(name)

    stack = contextlib.ExitStack()
    stack.callback(unregister)
    return stack


def _absolute(stack: Stack) -> Stack:
    """The stack with absolute paths: a worker's working folder is not this process's."""
    return Stack(tuple(p.absolute() for p in stack.sources), stack.output.absolute(), stack.name)


def run_dask(
    stacks: Sequence[Stack],
    fuse_one: Callable[[Stack], object],
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    debug: bool = False,
    plugin: Any | None = None,
    retries: int = 2,
    quiet: bool = False,
) -> BatchReport:
    """Fuse each stack in a Dask task; what :func:`bamf_lib.fusion.batch.run_batch` does, on a cluster.

    Parameters
    ----------
    stacks : sequence of Stack
    fuse_one : callable
        Fuses one stack and writes its output atomically; raises on failure.  It must pickle
        (a module-level function or a :func:`functools.partial` of one) and is run by
        :func:`bamf_lib.fusion.dask_worker.run_stack`.
    scheduler : str, optional
        A scheduler's address; default a new local cluster of ``n_workers`` (:func:`dask_client`).
    force : bool
        Replace outputs that exist.
    progress : bool
        One progress bar over the stacks, as they complete.
    debug : bool
        Re-raise the first failure with its (remote) traceback; no retries.
    plugin : distributed.WorkerPlugin, optional
        Registered for the batch, e.g. :class:`bamf_lib.fusion.dask_worker.PreloadNets`.
    retries : int
        Further tries of a stack that raised an unexpected error (bad input fails at once).

    Returns
    -------
    BatchReport
        In the order of ``stacks``, with the seconds of each stack fused.
    """
    report, todo = plan_batch(stacks, force)
    if not todo:
        return report.in_order(stacks)
    _import_distributed()
    from bamf_lib.fusion.dask_worker import check_access, run_stack

    tasks = [_absolute(s) for s in todo]
    # the check reads an input this process can read (a missing one is that stack's failure)
    first = next((s for s in tasks if s.sources and s.sources[0].is_file()), None)
    with dask_client(scheduler, n_workers=n_workers, quiet=quiet) as client:
        if first is not None:
            check_workers(
                client,
                functools.partial(check_access, str(first.sources[0]), str(first.output.parent)),
                str(first.sources[0]),
            )
        with _registered(client, plugin):
            task = functools.partial(run_stack, fuse_one=fuse_one, force=force, catch=not debug)
            for stack, outcome in _as_completed(
                client,
                task,
                tasks,
                todo,
                retries=0 if debug else retries,
                debug=debug,
                bar=_bar(len(stacks), len(stacks) - len(todo), "stacks", progress),
            ):
                if isinstance(outcome, BaseException):
                    report.failed.append((stack, outcome))
                else:
                    report.fused.append(stack)
                    if outcome is not None:
                        report.seconds[stack.name] = outcome
    return report.in_order(stacks)


def map_dask(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    desc: str = "items",
    check: Callable[[], object] | None = None,
    what: str = "the inputs",
    plugin: Any | None = None,
    retries: int = 2,
    quiet: bool = False,
) -> list[Any]:
    """``[fn(item) for item in items]``, one Dask task per item; the first error is raised
    (with its remote traceback) once the other tasks are cancelled.  ``check`` runs on one
    worker first (:func:`check_workers`)."""
    if not items:
        return []
    _import_distributed()
    results: dict[int, Any] = {}
    with dask_client(scheduler, n_workers=n_workers, quiet=quiet) as client:
        if check is not None:
            check_workers(client, check, what)
        with _registered(client, plugin):
            for index, result in _as_completed(
                client,
                fn,
                list(items),
                list(range(len(items))),
                retries=retries,
                debug=True,
                bar=_bar(len(items), 0, desc, progress),
            ):
                results[index] = result
    return [results[i] for i in range(len(items))]


def _bar(total: int, initial: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=desc.rstrip("s"),
        disable=not progress,
        file=sys.stderr,
    )


def _as_completed(
    client: Any, task: Callable, args: list, labels: list, *, retries: int, debug: bool, bar
) -> Iterator[tuple[Any, Any]]:
    """Submit ``task(arg)`` for each arg; yield ``(label, result)`` as they complete, a task that
    failed for good (retries spent, or its stack killed too many workers) as ``(label, exception)``
    or, with ``debug``, raised.  Ctrl-C or an error cancels what has not run."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    keys = [f"bamf-{getattr(task, 'func', task).__name__}-{token}-{i}" for i in range(len(args))]
    futures = client.map(task, args, key=keys, retries=retries, pure=False)
    label_of = dict(zip((f.key for f in futures), labels))
    failed = 0
    try:
        with bar:
            for future in as_completed(futures):
                if future.status == "error":
                    if debug:
                        future.result()  # raises it, with the worker's traceback
                    outcome = future.exception()
                else:
                    outcome = future.result()
                failed += isinstance(outcome, BaseException)
                yield label_of[future.key], outcome
                bar.update()
                bar.set_postfix(failed=failed, refresh=False)
    finally:  # Ctrl-C, SIGTERM, --debug or a caller that stopped early: nothing new starts
        client.cancel(futures)
