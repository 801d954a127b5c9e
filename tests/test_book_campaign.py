"""The campaign's curves for chapter 3: read from the committed logs, drawn per session."""

from __future__ import annotations

import json

import pytest

from bamf_lib.book.campaign import campaign_curves, campaign_figure


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _epoch(e, run, loss):
    return {"epoch": e, "loss": loss, "acc": 0.9, "val_acc": 0.8, "steps": 200, "seconds": 1.0, "run": run}


def test_curves_split_sessions_and_the_shipped_row(tmp_path):
    _write(tmp_path / "camera-initial.log.jsonl", [_epoch(1, "s1", 0.5), _epoch(2, "s1", 0.4), _epoch(3, "s2", 0.3)])
    _write(tmp_path / "camera-boundary.log.jsonl", [_epoch(1, "s1", 0.6)])
    shipped = {"nets": "shipped", "refined": {"mean": 0.93, "worst": 0.64}}
    cand = {"nets": "campaign", "epoch_initial": 3, "epoch_boundary": 1, "refined": {"mean": 0.98, "worst": 0.9}}
    _write(tmp_path / "validation.jsonl", [shipped, cand])
    c = campaign_curves(tmp_path)
    assert c["runs"] == ["s1", "s2"] and c["shipped"] == shipped and c["validation"] == [cand]
    assert [r["epoch"] for r in c["initial"]] == [1, 2, 3]
    fig = campaign_figure(c, total_epochs=40)
    lines = fig.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[0.5, 0.4], [0.3]]  # one line a session
    val = fig.axes[2].get_lines()[0]
    assert list(val.get_xdata()) == [3] and list(val.get_ydata()) == [0.98]


def test_a_folder_without_logs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no campaign logs"):
        campaign_curves(tmp_path)
