"""The real-stack benchmark's results as the book shows them.

``benchmarks/bench_stacks.py --json FILE`` writes ``{"meta": {...}, "rows": [...]}``: one row a
stack with, for each tool that ran (``bamf``, ``bamf-fast``, ``classic``, ``openfocus``), its
whole-process seconds, peak memory and share of cells left soft.  :func:`read_stack_results`
reads it; :func:`stack_results_table` makes the Markdown table the chapter "Real focus stacks"
displays; :func:`provenance_line` says which run made it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

__all__ = ["TOOL_NAMES", "read_stack_results", "stack_results_table", "provenance_line"]

#: how the book names each benchmarked tool
TOOL_NAMES = {
    "bamf": "bamf",
    "bamf-fast": "bamf --scale 0.5",
    "classic": "align_image_stack + enfuse",
    "openfocus": "openfocus (StackMFF-V3)",
}


def read_stack_results(path: str | Path) -> dict:
    """The benchmark's JSON (``meta`` and ``rows``; an older file that is a bare list of rows gets
    an empty ``meta``).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    """
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        data = {"meta": {}, "rows": data}
    return data


def stack_results_table(results: dict) -> str:
    """A Markdown table: a row a stack and tool (seconds, ratio to the classic pipeline's, peak
    memory, cells left soft), then the mean soft-cell share of each tool.

    >>> r = {"rows": [{"stack": "s", "frames": 3, "mp": 1.0,
    ...       "bamf": {"seconds": 2.0, "peak_mb": 10, "soft": 0.0},
    ...       "classic": {"seconds": 1.0, "peak_mb": 5, "soft": 0.5}}]}
    >>> print(stack_results_table(r).splitlines()[2])
    | s (3 x 1.0 MP) | bamf | 2.0 | 2.00x | 10 | 0.00 |
    """
    rows = results["rows"]
    tools = [t for t in TOOL_NAMES if any(t in r for r in rows)]
    lines = [
        "| stack | tool | seconds | / classic | peak MB | cells left soft |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for t in tools:
            if t not in r:
                continue
            v = r[t]
            ratio = f"{v['seconds'] / r['classic']['seconds']:.2f}x" if "classic" in r else "-"
            lines.append(
                f"| {r['stack']} ({r['frames']} x {r['mp']:.1f} MP) | {TOOL_NAMES[t]} | {v['seconds']:.1f} | "
                f"{ratio} | {v['peak_mb']:.0f} | {v['soft']:.2f} |"
            )
    for t in tools:
        vals = [r[t]["soft"] for r in rows if t in r]
        lines.append(f"| mean over {len(vals)} | {TOOL_NAMES[t]} | | | | {statistics.mean(vals):.3f} |")
    return "\n".join(lines)


def provenance_line(results: dict, path: str | Path) -> str:
    """Which run made the table: the file, its command, date, load and CPUs (what ``meta`` holds)."""
    meta = results.get("meta", {})
    parts = [f"`{Path(path).name}`"]
    if meta.get("command"):
        parts.append(f"written by `{meta['command']}`")
    if meta.get("date"):
        parts.append(f"on {meta['date']}")
    if meta.get("cpus"):
        parts.append(f"{meta['cpus']} CPUs")
    if "load_average_at_start" in meta:
        parts.append(f"load average {meta['load_average_at_start']} at the start")
    return ", ".join(parts)
