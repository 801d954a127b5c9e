"""Table 1 as text: layout, means over common pairs, the paper's printed table, comparison to the best baseline."""

from __future__ import annotations

import pytest

from bamf_lib.evaluation.table1 import METRICS
from bamf_lib.evaluation.tables import compare_to_best, format_table, paper_result


def test_format_table_layout(score_result):
    text = format_table(score_result())
    lines = text.splitlines()
    assert lines[0] == "| Metric | base | ours | ours-w/o |"
    mi = next(line for line in lines if line.startswith("| Q_MI"))
    assert "1.1000 (1)" in mi and "**1.3667** (1)" in mi
    assert "9.0000 |" in mi and "9.0000 (" not in mi  # no wins for a non-competitor
    assert "base 2" in text and "2 pairs" in text


def test_format_table_common_means_average_the_same_pairs(score_result):
    result = score_result()
    text = format_table(result, means="common")
    assert "**1.1000** (1)" in text and "2 of 3 pairs" in text
    with pytest.raises(ValueError, match="means"):
        format_table(result, means="all")


def test_format_table_marks_methods_without_results(score_result, score_row):
    table = {"a": {"p": score_row(1, 1, 1, 1)}, "b": {"p": None}}
    text = format_table(score_result(table, compete=("a",)))
    assert "| n/a |" in text


def test_paper_table_as_printed_is_consistent():
    result = paper_result()
    for k in ("Q_MI", "Q_G", "Q_CB"):  # the printed Q_Y counts sum to 25 over 24 pairs (see PAPER_TABLE1)
        assert sum(w[k] for w in result.wins.values() if w is not None) <= 24
    for k in METRICS:
        assert max(result.means, key=lambda m: result.means[m][k]) == "Ours"
    assert result.wins["Ours w/o"] is None
    assert "**1.2002** (23)" in format_table(result) and "| 1.2000 |" in format_table(result)


def test_compare_to_best_uses_common_pairs_and_per_pair_margins(score_result):
    cmp = compare_to_best(score_result(), "ours", ["base"])
    mi = cmp["Q_MI"]
    assert mi["pairs"] == ["p1", "p2"]
    assert mi["mean"] == pytest.approx(1.05) and mi["best"] == "base" and mi["best_mean"] == pytest.approx(1.1)
    assert mi["beats_mean"] is False
    assert mi["margin"] == pytest.approx({"p1": 0.1, "p2": -0.2})
    assert mi["beats_pairs"] == 1 and mi["wins"] == 1 and mi["top_wins"] == 1 and mi["most_wins"] is True
    assert cmp["Q_G"]["beats_mean"] is True and cmp["Q_G"]["beats_pairs"] == 1  # tie on p1 is no win
    assert compare_to_best(score_result(), "ours-w/o", ["base"])["Q_MI"]["wins"] is None
    with pytest.raises(ValueError, match="method"):
        compare_to_best(score_result(), "nobody")
    with pytest.raises(ValueError, match="baselines"):
        compare_to_best(score_result(), "ours", ["nobody"])


@pytest.mark.requires_data("published")
def test_survey_ranking_places_a_method_among_the_18():
    from bamf_lib.evaluation.published import toolbox_scores
    from bamf_lib.evaluation.summary import EvaluationResult
    from bamf_lib.evaluation.table1 import pair_set
    from bamf_lib.evaluation.tables import survey_ranking

    names = [p.name for p in pair_set("survey30")]
    best = {"Q_MI": 9.0, "Q_G": 9.0, "Q_Y": 9.0, "Q_CB": 9.0}
    result = EvaluationResult(names, ["bamf"], {"bamf": {n: best for n in names}}, {}, {}, {}, [], [])
    rows = survey_ranking(result)
    assert len(rows) == 19 and rows[0]["method"] == "bamf" and rows[0]["rank"] == {k: 1 for k in best}
    # a published method's mean is its 30 toolbox scores' mean (20 colour, then 10 grayscale)
    cnn = next(r for r in rows if r["method"] == "cnn")
    expected = (toolbox_scores("color")["cnn"]["Q_G"].sum() + toolbox_scores("grayscale")["cnn"]["Q_G"].sum()) / 30
    assert cnn["Q_G"] == pytest.approx(expected)
    assert cnn["rank"]["Q_G"] >= 2
    with pytest.raises(ValueError, match="survey30"):
        survey_ranking(
            EvaluationResult(names[:3], ["bamf"], {"bamf": {n: best for n in names[:3]}}, {}, {}, {}, [], [])
        )


def test_format_table_methods_as_rows_is_the_transpose(score_result):
    text = format_table(score_result(), methods_as_rows=True)
    lines = text.splitlines()
    assert lines[0] == "| Method | Q_MI | Q_G | Q_Y | Q_CB |"
    ours = next(line for line in lines if line.startswith("| ours |"))
    assert ours.split(" | ")[1] == "**1.3667** (1)"
    assert next(line for line in lines if line.startswith("| ours-w/o |")).count("9.0000") == 4
    assert text.split("\n\n")[1] == format_table(score_result()).split("\n\n")[1]  # the same notes


def test_with_scores_replaces_one_column_and_recounts_the_wins():
    """EvaluationResult.with_scores: the other result's column in place of one method's, means and
    wins recomputed over the same pairs; a method or pair the other result lacks is refused."""
    from bamf_lib.evaluation.summary import EvaluationResult, summarize

    def result(scores):
        pairs = list(next(iter(scores.values())))
        return EvaluationResult(pairs, list(scores), scores, *summarize(scores)[:3], list(scores), pairs)

    base = result({"b": {"p": {"Q_MI": 1.0}, "q": {"Q_MI": 1.0}}, "m": {"p": {"Q_MI": 0.5}, "q": {"Q_MI": 0.5}}})
    other = result({"m": {"p": {"Q_MI": 2.0}, "q": {"Q_MI": 0.0}}})
    new = base.with_scores("m", other, label="both")
    assert new.means["m"]["Q_MI"] == 1.0 and new.wins["m"]["Q_MI"] == 1 and new.wins["b"]["Q_MI"] == 1
    assert base.means["m"]["Q_MI"] == 0.5 and base.wins["b"]["Q_MI"] == 2  # the original is untouched
    assert new.scores["b"] == base.scores["b"] and new.label == "both"
    with pytest.raises(ValueError, match="method of both"):
        base.with_scores("x", other)
    with pytest.raises(ValueError, match="no 'm' score"):
        base.with_scores("m", result({"m": {"p": {"Q_MI": 2.0}}}))
