"""The real-stack benchmark's table for the book."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bamf_lib.book.stacks import provenance_line, read_stack_results, stack_results_table

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "stacks.json"


def test_the_table_has_a_row_per_stack_and_tool_and_the_means(tmp_path):
    rows = [
        {
            "stack": "a",
            "frames": 3,
            "mp": 1.0,
            "bamf": {"seconds": 2.0, "peak_mb": 10, "soft": 0.1},
            "classic": {"seconds": 4.0, "peak_mb": 5, "soft": 0.3},
        },
        {"stack": "b", "frames": 5, "mp": 2.0, "bamf": {"seconds": 1.0, "peak_mb": 10, "soft": 0.0}},
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(rows))  # an old bare list of rows
    res = read_stack_results(path)
    assert res["meta"] == {}
    table = stack_results_table(res).splitlines()
    assert "| a (3 x 1.0 MP) | bamf | 2.0 | 0.50x | 10 | 0.10 |" in table
    assert "| b (5 x 2.0 MP) | bamf | 1.0 | - | 10 | 0.00 |" in table
    assert (
        "| mean over 2 | bamf | | | | 0.050 |" in table
        and "| mean over 1 | align_image_stack + enfuse | | | | 0.300 |" in table
    )
    assert provenance_line(res, path) == "`r.json`"


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_stack_results(tmp_path / "none.json")


@pytest.mark.skipif(not RESULTS.is_file(), reason="no committed benchmark results")
def test_the_committed_results_name_their_run():
    res = read_stack_results(RESULTS)
    assert res["meta"]["command"].startswith("benchmarks/bench_stacks.py") and len(res["rows"]) == 4
    assert "written by `benchmarks/bench_stacks.py" in provenance_line(res, RESULTS)
