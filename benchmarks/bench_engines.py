"""``bamf fuse --batch`` on the local engine and on Dask: the engine's overhead and its scaling.

A benchmark, not a test: it prints a table.  The batch is 100 Lytro-sized stacks (the 20 Lytro
pairs, 520 x 520, five times over, as folders of symlinks), fused to PNG, in this process with
:func:`bamf_lib.cli.main`, interleaved in one run so that the machine's load (shared, with a
training at nice 19) weighs on every row alike:

1. ``--engine local`` (the default: a stack per core, ``--jobs 2`` on 2 cores);
2. ``--engine dask`` on a 2-worker ``LocalCluster`` (one thread each), started beforehand and
   passed as ``--scheduler`` so that its start-up is timed apart (and printed);
3. the same on a 1-worker ``LocalCluster``: tasks/s from 1 to 2 workers;
4. ``--engine dask`` with no scheduler (the command a user types: its own local cluster, start-up
   and shutdown included), with ``--repeats`` > 1 or ``--end-to-end``;
5. the scheduler's own cost per task: 2,000 empty tasks on the 2-worker cluster.

Every engine's outputs are compared byte for byte with the local engine's.  From the figures it
prints what a 10-node cluster should give: per-stack cost (core-seconds) against the
scheduler's per-task overhead.

Run: ``BAMF_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_engines.py [--stacks 100]
[--repeats 1] [--end-to-end]``.
"""

from __future__ import annotations

import argparse
import filecmp
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

from bamf_lib.cli import main
from bamf_lib.data.datasets import LYTRO_INDICES
from bamf_lib.data.datasets import path as data_path


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _make_batch(root: Path, n: int) -> Path:
    shoot = root / "shoot"
    for i in range(n):
        k = LYTRO_INDICES[i % len(LYTRO_INDICES)]
        stack = shoot / f"s{i:03d}"
        stack.mkdir(parents=True)
        for side in "AB":
            (stack / f"{side}.jpg").symlink_to(data_path(f"lytro/lytro-{k:02d}-{side}.jpg"))
    return shoot


def _fuse(shoot: Path, out: Path, *extra: str) -> float:
    start = time.perf_counter()
    rc = main(["fuse", "--batch", str(shoot), "-o", str(out), "-q", *extra])
    seconds = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"bamf fuse {' '.join(extra)} exited {rc}")
    return seconds


def _noop(i: int) -> int:
    return i


def main_bench(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="also time --engine dask with its own LocalCluster (start-up included)",
    )
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the clusters' closing chatter

    cores = len(os.sched_getaffinity(0))
    print(
        f"{platform.node()}: {cores} cores, {platform.processor() or platform.machine()}, "
        f"load {_load()} at start; {args.stacks} stacks of 520 x 520 pairs"
    )
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        tmp = Path(tmp)
        shoot = _make_batch(tmp, args.stacks)
        clusters, startup = {}, {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            clusters[workers] = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            startup[workers] = time.perf_counter() - t0
        try:
            reference = None
            for repeat in range(args.repeats):
                runs = [("local, --jobs 2", ["--jobs", "2"])]
                runs += [
                    (
                        f"dask, {w}-worker LocalCluster",
                        ["--engine", "dask", "--scheduler", clusters[w].scheduler_address],
                    )
                    for w in (2, 1)
                ]
                if args.end_to_end or args.repeats > 1:
                    runs.append(("dask, own LocalCluster (start-up incl.)", ["--engine", "dask"]))
                for index, (name, extra) in enumerate(runs):
                    out = tmp / f"out-{repeat}-{index}"
                    rows.setdefault(name, []).append(_fuse(shoot, out, *extra))
                    if reference is None:
                        reference = out
                    else:
                        names = sorted(p.name for p in reference.iterdir())
                        same, diff, bad = filecmp.cmpfiles(reference, out, names, shallow=False)
                        assert len(same) == args.stacks and not diff and not bad, (name, diff, bad)
                    print(f"  {name}: {rows[name][-1]:.1f} s (load {_load()})", flush=True)
            with Client(clusters[2]) as client:
                n = 2000
                t0 = time.perf_counter()
                client.gather(client.map(_noop, range(n), pure=False))
                per_task = (time.perf_counter() - t0) / n
        finally:
            for cluster in clusters.values():
                cluster.close()

    best = {name: min(times) for name, times in rows.items()}
    local = best["local, --jobs 2"]
    print(f"\n| engine ({args.stacks} stacks, best of {args.repeats}) | seconds | stacks/s | vs local |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.1f} | {args.stacks / seconds:.2f} | {seconds / local:.2f}x |")
    one, two = best["dask, 1-worker LocalCluster"], best["dask, 2-worker LocalCluster"]
    print(
        f"\nscaling 1 -> 2 workers: {args.stacks / one:.2f} -> {args.stacks / two:.2f} stacks/s "
        f"({one / two:.2f}x on {cores} cores)"
    )
    print(f"LocalCluster start-up: {startup[1]:.1f} s (1 worker), {startup[2]:.1f} s (2 workers)")
    print(f"scheduler overhead: {per_task * 1e3:.2f} ms per empty task (2,000 on 2 workers)")
    core_seconds = one / args.stacks  # one worker, one thread: a stack's cost in core-seconds
    workers = 10 * cores
    print(
        f"\na stack costs {core_seconds:.2f} core-s here; "
        f"10 nodes of {cores} cores ({workers} workers) "
        f"should fuse about {workers / core_seconds:.0f} stacks/s, as long as the scheduler's "
        f"{per_task * 1e3:.1f} ms a task (a ceiling of {1 / per_task:.0f} tasks/s) and the shared "
        f"filesystem keep up; load {_load()} at the end"
    )


if __name__ == "__main__":
    main_bench()
