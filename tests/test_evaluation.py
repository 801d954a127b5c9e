"""Table-1 machinery: pair sets, means and win counts, published results, the CLI."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import types
from pathlib import Path

import numpy as np
import pytest

from bamf_lib.cli.evaluate import evaluate_cli
from bamf_lib.evaluation import table1 as ev
from bamf_lib.evaluation.table1 import Pair, evaluate, pair_set, summarize
from bamf_lib.evaluation.tables import format_table
from bamf_lib.io import read_image

DATA = os.environ.get("BAMF_DATA_DIR")
needs_data = pytest.mark.requires_data("published")


def test_summarize_means_skip_missing_pairs(score_table):
    means, n_pairs, _, _ = summarize(score_table, compete=["base", "ours"])
    assert n_pairs == {"base": 2, "ours": 3, "ours-w/o": 3}
    assert means["base"]["Q_MI"] == pytest.approx(1.1)
    assert means["ours"]["Q_MI"] == pytest.approx((1.1 + 1.0 + 2.0) / 3)


def test_summarize_counts_strict_wins_on_common_pairs(score_table):
    _, _, wins, win_pairs = summarize(score_table, compete=["base", "ours"])
    assert win_pairs == ["p1", "p2"]
    # p1: ours wins MI, CB; tie on G (no win); base wins Y.  p2: base wins MI, CB; ours wins G, Y.
    assert wins["ours"] == {"Q_MI": 1, "Q_G": 1, "Q_Y": 1, "Q_CB": 1}
    assert wins["base"] == {"Q_MI": 1, "Q_G": 0, "Q_Y": 1, "Q_CB": 1}
    assert wins["ours-w/o"] is None  # outside the competition, like the paper's "w/o"


def test_summarize_available_counts_pairs_with_missing_methods(score_table):
    _, _, wins, win_pairs = summarize(score_table, compete=["base", "ours"], wins_on="available")
    assert win_pairs == ["p1", "p2", "p3"]
    # p3 has one competitor only: no contest, no win
    assert wins["ours"]["Q_MI"] == 1


def test_summarize_everyone_competes_by_default(score_table):
    _, _, wins, _ = summarize(score_table)
    assert wins["ours-w/o"] == {"Q_MI": 2, "Q_G": 2, "Q_Y": 2, "Q_CB": 2}
    assert wins["base"] == dict.fromkeys(ev.METRICS, 0)


def test_summarize_rejects_bad_arguments(score_table):
    with pytest.raises(ValueError, match="wins_on"):
        summarize(score_table, wins_on="some")
    with pytest.raises(ValueError, match="compete"):
        summarize(score_table, compete=["nobody"])


def test_common_means_average_the_same_pairs_for_every_method(score_result):
    result = score_result()
    assert result.common_pairs() == ["p1", "p2"]
    common = result.common_means()
    assert common["ours"]["Q_MI"] == pytest.approx(1.05) and common["base"]["Q_MI"] == pytest.approx(1.1)
    assert result.to_json()["methods"]["ours"]["mean_common"]["Q_MI"] == pytest.approx(1.05)


def test_pair_sets():
    assert len(pair_set("paper24")) == 24 and len(pair_set("survey30")) == 30
    paper = pair_set("paper24")
    assert [p.name for p in paper[:2]] == ["c_01", "c_02"]
    named = {p.name: p for p in paper}
    assert named["clock"].published is None and named["lab"].published == ("grayscale", 3)
    assert [p.name for p in pair_set("grayscale10")][-1] == "g_10"
    with pytest.raises(ValueError, match="pairs"):
        pair_set("paper25")


@needs_data
@pytest.mark.parametrize("name", sorted(ev.CLASSIC_IN_SURVEY))
def test_classic_pairs_given_published_results_are_the_survey_pairs(name):
    classic = ev.load_sources(ev._classic(name))
    survey = ev.load_sources(ev._grayscale(ev.CLASSIC_IN_SURVEY[name]))
    for c, s in zip(classic, survey):
        np.testing.assert_array_equal(c, s)


def _published_scores(kind: str, method: str, index: int) -> dict[str, float]:
    with open(Path(DATA) / "published" / f"scores_{kind}.csv") as fh:
        for row in csv.DictReader(fh):
            if row["method"] == method and int(row["image_index"]) == index:
                return {"Q_MI": float(row["QMI"]), "Q_G": float(row["QG"]), "Q_CB": float(row["QCB"])}
    raise KeyError((kind, method, index))


@needs_data
def test_evaluate_reads_published_results_and_marks_missing_ones():
    pairs = [p for p in pair_set("paper24") if p.name in ("c_02", "book")]
    result = evaluate(pairs, {"GF": "published:GF", "CNN": "published:cnn"}, progress=False)
    assert result.scores["GF"]["book"] is None and result.n_pairs == {"GF": 1, "CNN": 1}
    for method, folder in (("GF", "gff"), ("CNN", "cnn")):
        expected = _published_scores("color", folder, 2)
        for k, v in expected.items():
            assert result.scores[method]["c_02"][k] == pytest.approx(v, abs=1e-4)
    assert result.win_pairs == ["c_02"]
    assert "| n/a |" not in format_table(result)  # both have one pair: means exist


@needs_data
def test_evaluate_saves_fused_images_and_refuses_to_overwrite(score_row, tmp_path):
    pairs = [p for p in pair_set("grayscale10") if p.name == "g_10"]
    take_first = lambda sources: sources[0]  # noqa: E731
    fake_metrics = lambda a, b, f: score_row(float(np.mean(f)), 0.0, 0.0, 0.0)  # noqa: E731
    result = evaluate(pairs, {"bamf": take_first}, metric_fn=fake_metrics, save_fused=tmp_path, progress=False)
    saved = read_image(tmp_path / "g_10.png")
    np.testing.assert_array_equal(saved, ev.load_sources(pairs[0])[0])
    assert result.means["bamf"]["Q_MI"] == pytest.approx(saved.mean())
    with pytest.raises(FileExistsError):
        evaluate(pairs, {"bamf": take_first}, metric_fn=fake_metrics, save_fused=tmp_path, progress=False)


@needs_data
def test_evaluate_cli_prints_table_and_writes_json(tmp_path, monkeypatch, capsys):
    two = [p for p in pair_set("grayscale10") if p.name in ("g_05", "g_10")]
    monkeypatch.setattr(ev, "pair_set", lambda name: two)
    asked = []

    def methods(weights=None, path="fast", swap_average=False):
        asked.append(swap_average)
        return {"GF": "published:GF", "bamf": lambda s: s[1]}

    monkeypatch.setattr(ev, "default_methods", methods)
    out = tmp_path / "scores.json"
    args = argparse.Namespace(pairs="grayscale10", json_out=str(out), save_fused=str(tmp_path / "fused"))
    assert evaluate_cli(args) == 0
    assert "| Q_CB |" in capsys.readouterr().out
    both = argparse.Namespace(pairs="grayscale10", json_out=None, save_fused=None, swap_average=True)
    assert evaluate_cli(both) == 0 and asked == [False, True]  # --swap-average reaches bamf's method
    assert "both orders" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert set(data["methods"]) == {"GF", "bamf"} and data["pairs"] == ["g_05", "g_10"]
    gf = data["methods"]["GF"]
    assert set(gf["per_pair"]) == {"g_05", "g_10"} and set(gf["wins"]) == set(ev.METRICS)
    assert math.isclose(gf["mean"]["Q_G"], np.mean([gf["per_pair"][p]["Q_G"] for p in ("g_05", "g_10")]))
    assert sorted(os.listdir(tmp_path / "fused")) == ["g_05.png", "g_10.png"]
    with pytest.raises(FileExistsError):  # nothing is overwritten without being asked
        evaluate_cli(args)


def test_evaluate_rejects_unknown_methods_before_any_work(score_row):
    pair = Pair("x", ("nowhere/a.png", "nowhere/b.png"))  # never read: the check comes first
    for bad in ("gff", "published:XYZ", 3):
        with pytest.raises(ValueError, match="published:"):
            evaluate([pair], {"m": bad}, metric_fn=lambda a, b, f: score_row(0, 0, 0, 0), progress=False)


def test_default_methods_run_bamf_with_and_without_refinement(monkeypatch):
    import bamf_lib.fusion.pipeline

    calls = []

    def fake_fuse(sources, *, refine=True, path="fast", **kwargs):
        calls.append((refine, path))
        return types.SimpleNamespace(fused=sources[0])

    monkeypatch.setattr(bamf_lib.fusion.pipeline, "fuse", fake_fuse)
    methods = ev.default_methods(path="reference")
    assert list(methods)[:6] == ["NSCT", "SR", "NSCT-SR", "GF", "DSIFT", "CNN"]
    img = np.zeros((4, 4), np.uint8)
    methods["bamf-initial"]([img, img])
    methods["bamf"]([img, img])
    assert calls == [(False, "reference"), (True, "reference")]


def _fake_pairs(monkeypatch, names):
    """Pairs whose sources are made here (no data folder): constant images of value i."""
    monkeypatch.setattr(ev, "load_sources", lambda pair: [np.full((8, 8), int(pair.name[1:]), np.uint8)] * 2)
    return [Pair(n, ("a", "b")) for n in names]


def test_evaluate_reuses_earlier_scores_instead_of_fusing_again(score_row, monkeypatch):
    calls = []

    def method(sources):
        calls.append(int(sources[0][0, 0]))
        return sources[0]

    metric = lambda a, b, f: score_row(float(f[0, 0]), 0.0, 0.0, 0.0)  # noqa: E731
    first = evaluate(_fake_pairs(monkeypatch, ["p1", "p2"]), {"m": method}, metric_fn=metric, progress=False)
    assert calls == [1, 2]
    second = evaluate(
        _fake_pairs(monkeypatch, ["p2", "p3"]), {"m": method}, metric_fn=metric, progress=False, reuse=first
    )
    assert calls == [1, 2, 3]  # p2 came from the earlier result
    assert second.scores["m"]["p2"] == first.scores["m"]["p2"] and second.scores["m"]["p3"]["Q_MI"] == 3.0
    assert second.seconds["m"]["p2"] == first.seconds["m"]["p2"]
    assert second.means["m"]["Q_MI"] == pytest.approx(2.5)
    # a method the earlier result lacks forces the pair to be computed
    evaluate(
        _fake_pairs(monkeypatch, ["p2"]), {"m": method, "n": method}, metric_fn=metric, progress=False, reuse=first
    )
    assert calls == [1, 2, 3, 2, 2]
    with pytest.raises(ValueError, match="reuse"):
        evaluate(_fake_pairs(monkeypatch, ["p2"]), {"m": method}, metric_fn=metric, progress=False, reuse={"m": {}})


@needs_data
def test_run_methods_returns_each_methods_fused_image_or_none():
    clock, lab = [p for p in pair_set("paper24") if p.name in ("clock", "lab")]
    out = ev.run_methods(lab, {"GF": "published:GF", "first": lambda s: s[0]})
    np.testing.assert_array_equal(out["GF"], ev.datasets.published_fused("gff", "grayscale", 3))
    np.testing.assert_array_equal(out["first"], ev.load_sources(lab)[0])
    assert ev.run_methods(clock, {"GF": "published:GF"})["GF"] is None
    with pytest.raises(ValueError, match="published:"):
        ev.run_methods(clock, {"m": "gff"})
