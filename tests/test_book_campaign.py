"""The campaign's curves for chapter 3: read from the committed logs, drawn per session."""

from __future__ import annotations

import json

import pytest

from bamf_lib.book.campaign import (
    blur_effect,
    campaign_curves,
    campaign_figure,
    fill_reading,
    fill_verdicts,
    rule_outcome,
    rule_verdict,
    scale_reading,
    scale_verdicts,
)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _epoch(e, run, loss):
    return {"epoch": e, "loss": loss, "acc": 0.9, "val_acc": 0.8, "steps": 200, "seconds": 1.0, "run": run}


def test_curves_split_sessions_and_the_shipped_row(tmp_path):
    _write(tmp_path / "camera-initial.log.jsonl", [_epoch(1, "s1", 0.5), _epoch(2, "s1", 0.4), _epoch(3, "s2", 0.3)])
    _write(tmp_path / "camera-boundary.log.jsonl", [_epoch(1, "s1", 0.6)])
    shipped = {"nets": "shipped", "refined": {"mean": 0.93, "worst": 0.64}}
    cand = {"nets": "campaign", "epoch_initial": 3, "epoch_boundary": 1, "refined": {"mean": 0.98, "worst": 0.9}}
    second = {**cand, "profile": "camera2"}  # another campaign's row, not this one's
    _write(tmp_path / "validation.jsonl", [shipped, cand, second])
    c = campaign_curves(tmp_path)
    assert c["runs"] == ["s1", "s2"] and c["shipped"] == shipped and c["validation"] == [cand]
    assert c["sessions"] == 2  # the boundary net's one run is not a third session
    assert [r["epoch"] for r in c["initial"]] == [1, 2, 3]
    fig = campaign_figure(c, total_epochs=40)
    lines = fig.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[0.5, 0.4], [0.3]]  # one line a session
    val = fig.axes[2].get_lines()[0]
    assert list(val.get_xdata()) == [3] and list(val.get_ydata()) == [0.98]


def test_a_folder_without_logs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no campaign logs"):
        campaign_curves(tmp_path)
    _write(tmp_path / "camera-initial.log.jsonl", [_epoch(1, "s1", 0.5)])
    with pytest.raises(FileNotFoundError, match="camera2-initial"):
        campaign_curves(tmp_path, profile="camera2")


def _candidate(passes, camera=0.99, embedded=0.93):
    return {
        "epoch_initial": 40,
        "epoch_boundary": 39,
        "swap_average": True,
        "camera": {"candidate": camera, "shipped": 0.933},
        "gaussian_kodak": {"candidate": 0.998, "shipped": 0.995},
        "gaussian_embedded": {"candidate": embedded, "shipped": 0.977},
        "rule": {
            "2_camera_beats_shipped": camera > 0.933,
            "3_gaussian_within_slack": passes,
            "gaussian_mean": {"candidate": 0.965, "shipped": 0.986},
        },
        "passes": passes,
    }


def test_the_verdict_reads_the_row_it_is_given():
    failed = rule_verdict(_candidate(False))
    assert "epochs 40 / 39" in failed and "`camera`" in blur_effect(_candidate(False)) and "both orders" in failed
    assert "0.990 against the shipped 0.933 (rule 2 holds)" in failed and "(rule 3 fails)" in failed
    assert "default is unchanged" in failed and "It passes" not in failed
    assert rule_verdict(_candidate(True)).endswith("It passes.")
    assert rule_verdict(None).startswith("No checkpoint has been put")


def test_the_blur_effect_gives_signed_differences_and_the_outcome():
    text = blur_effect(_candidate(False, camera=0.95, embedded=0.9))
    assert "0.950 vs the shipped 0.933 (+0.017)" in text and "embedded textures -0.077" in text
    assert "Kodak +0.003" in text and "does not ship" in text
    assert "passes the selection rule" in blur_effect(_candidate(True))
    assert "not measured" in blur_effect(None)


def test_the_outcome_names_the_campaign_and_is_empty_without_one():
    assert rule_outcome(_candidate(True)).endswith("pass the selection rule.")
    assert "`camera`" in rule_outcome(_candidate(False)) and "fail" in rule_outcome(_candidate(False))
    assert rule_outcome(None) == ""


def _ablation(nets, swap, two, tuning, embedded):
    return {"nets": nets, "swap_average": swap, "two_scale": two, "camera_tuning_seed1": tuning,
            "camera_seed2": 0.95, "gaussian_kodak": 0.99, "gaussian_embedded": embedded}  # fmt: skip


def test_two_scales_help_only_with_a_tuning_gain_and_no_large_loss_elsewhere():
    """The rule ablate_scale.py fixed before its run: a gain on the tuning set, at most 0.005
    lost on any other set; a setting with no two-scale row is not read."""
    rows = [
        _ablation("a", False, False, 0.90, 0.97),
        _ablation("a", False, True, 0.91, 0.966),  # tuning up, embedded -0.004: helps
        _ablation("a", True, False, 0.90, 0.97),
        _ablation("a", True, True, 0.91, 0.96),  # embedded -0.01: does not
        _ablation("b", False, False, 0.90, 0.80),
        _ablation("b", False, True, 0.899, 0.97),  # large gain elsewhere, tuning down: does not
        _ablation("c", False, False, 0.90, 0.80),  # no two-scale row
    ]
    verdicts = scale_verdicts(rows)
    assert [(v["nets"], v["swap_average"], v["helps"]) for v in verdicts] == [
        ("a", False, True),
        ("a", True, False),
        ("b", False, False),
    ]
    assert verdicts[2]["delta"]["gaussian_embedded"] == pytest.approx(0.17)
    text = scale_reading(rows)
    assert text.count("(helps)") == 1 and text.count("(does not help)") == 2 and "b in one order" in text


def _fill(nets, swap, margin, tuning, embedded):
    return {"nets": nets, "swap_average": swap, "fill_margin": margin, "camera_tuning_seed1": tuning,
            "camera_seed2": 0.95, "gaussian_kodak": 0.99, "gaussian_embedded": embedded}  # fmt: skip


def test_the_fill_margin_is_chosen_on_the_tuning_set_and_judged_elsewhere():
    """ablate_fill.py's rule: the best tuning-set margin (a tie keeps the smaller); it helps if
    above 0 and no other set loses more than 0.005 against margin 0."""
    rows = [
        _fill("a", False, 0.0, 0.90, 0.97),
        _fill("a", False, 0.1, 0.92, 0.968),  # chosen, embedded -0.002: helps
        _fill("a", False, 0.2, 0.91, 0.97),
        _fill("b", False, 0.0, 0.90, 0.97),
        _fill("b", False, 0.1, 0.92, 0.95),  # chosen, embedded -0.02: does not help
        _fill("c", True, 0.0, 0.90, 0.97),
        _fill("c", True, 0.1, 0.90, 0.99),  # a tie on tuning keeps 0: does not help
    ]
    verdicts = fill_verdicts(rows)
    assert [(v["nets"], v["margin"], v["helps"]) for v in verdicts] == [
        ("a", 0.1, True),
        ("b", 0.1, False),
        ("c", 0.0, False),
    ]
    assert verdicts[1]["delta"]["gaussian_embedded"] == pytest.approx(-0.02)
    text = fill_reading(rows)
    assert (
        text.count("; helps)") == 1
        and text.count("; does not help)") == 1
        and "c in both orders: margin 0, the paper" in text
    )
