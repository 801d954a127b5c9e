"""Table 1 as text: the paper's table as printed, this project's, and one method against the
best published baseline.

* :data:`PAPER_TABLE1` is the paper's Table 1 as printed;
* :func:`format_table` prints an :class:`~bamf_lib.evaluation.table1.EvaluationResult` in the
  Table-1 layout, ``mean (wins)``;
* :func:`paper_result` turns :data:`PAPER_TABLE1` into an ``EvaluationResult`` for it;
* :func:`compare_to_best` sets one method against the best published baseline, metric by
  metric and pair by pair.

The scores themselves come from :func:`bamf_lib.evaluation.table1.evaluate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bamf_lib.evaluation.table1 import METRICS, TABLE1_BASELINES, EvaluationResult, pair_set

__all__ = ["PAPER_TABLE1", "format_table", "paper_result", "compare_to_best", "survey_ranking"]

# The paper's Table 1 as printed: method -> metric -> (mean, wins or None). Its Q_Y win
# counts add up to 25 over 24 pairs (1 + 2 + 6 + 16), which "beats all others" cannot
# give: one of them is off in the paper itself.
PAPER_TABLE1: dict[str, dict[str, tuple[float, int | None]]] = {
    "NSCT": {"Q_MI": (0.9407, 0), "Q_G": (0.6789, 0), "Q_Y": (0.9549, 0), "Q_CB": (0.7423, 0)},
    "SR": {"Q_MI": (1.0807, 0), "Q_G": (0.6944, 0), "Q_Y": (0.9663, 0), "Q_CB": (0.7641, 0)},
    "NSCT-SR": {"Q_MI": (0.9651, 0), "Q_G": (0.6823, 0), "Q_Y": (0.9576, 0), "Q_CB": (0.7499, 0)},
    "GF": {"Q_MI": (1.1001, 0), "Q_G": (0.7104, 0), "Q_Y": (0.9775, 1), "Q_CB": (0.7848, 0)},
    "DSIFT": {"Q_MI": (1.1902, 1), "Q_G": (0.7162, 0), "Q_Y": (0.9841, 2), "Q_CB": (0.8005, 7)},
    "CNN": {"Q_MI": (1.1561, 0), "Q_G": (0.7155, 5), "Q_Y": (0.9851, 6), "Q_CB": (0.8000, 1)},
    "Ours w/o": {"Q_MI": (1.2000, None), "Q_G": (0.7187, None), "Q_Y": (0.9867, None), "Q_CB": (0.8028, None)},
    "Ours": {"Q_MI": (1.2002, 23), "Q_G": (0.7188, 18), "Q_Y": (0.9871, 16), "Q_CB": (0.8042, 16)},
}


def format_table(
    result: EvaluationResult,
    *,
    means: str = "available",
    digits: int = 4,
    markdown: bool = True,
    methods_as_rows: bool = False,
) -> str:
    """Table 1's layout: rows = metrics, columns = methods, cells ``mean (wins)``.

    Parameters
    ----------
    means : {"available", "common"}
        Average each method over every pair it has a result for, or only over the pairs
        all methods have (:meth:`EvaluationResult.common_pairs`).

    The best mean among the competing methods is bold (markdown). Notes under the table
    say how many pairs each mean and the win counts are over.
    """
    if means not in ("available", "common"):
        raise ValueError(f"means must be 'available' or 'common', got {means!r}")
    methods = result.methods
    table = result.means if means == "available" else result.common_means()
    metrics = [k for k in METRICS if any(k in table[m] for m in methods)]
    rows = []
    for k in metrics:
        competing = [table[m][k] for m in result.compete if not math.isnan(table[m].get(k, math.nan))]
        best = max(competing) if competing else None
        cells = []
        for m in methods:
            v = table[m].get(k, math.nan)
            if math.isnan(v):
                cells.append("n/a")
                continue
            text = f"{v:.{digits}f}"
            if markdown and m in result.compete and v == best:
                text = f"**{text}**"
            if result.wins[m] is not None:
                text += f" ({result.wins[m][k]})"
            cells.append(text)
        rows.append([k] + cells)
    header = ["Metric"] + methods
    if methods_as_rows:
        header = ["Method"] + [r[0] for r in rows]
        rows = [[m] + [r[1 + i] for r in rows] for i, m in enumerate(methods)]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    n_all, label = len(result.pairs), f" {result.label}" if result.label else ""
    partial = [f"{m} {result.n_pairs[m]}" for m in methods if result.n_pairs[m] != n_all]
    if means == "common":
        mean_note = (
            f"Means over the {len(result.common_pairs())} of {n_all} pairs{label} that every method has a result for."
        )
    elif partial:
        mean_note = f"Means over {n_all} pairs{label}, except where results exist on fewer (n/a elsewhere): {', '.join(partial)}."
    else:
        mean_note = f"Means over {n_all} pairs{label}."
    if result.wins_on == "common":
        over = f"counted over the {len(result.win_pairs)} pairs all of them have"
    else:
        over = f"counted over all {len(result.win_pairs)} pairs, among the methods with a result there"
    excluded = [m for m in methods if m not in result.compete]
    win_note = (
        f"(wins): pairs on which a method beats every other method in ({', '.join(result.compete)}) strictly, {over}"
        + (f"; no win count for {', '.join(excluded)}." if excluded else ".")
    )
    notes = [mean_note, win_note]
    return "\n".join(lines + [""] + notes)


def paper_result() -> EvaluationResult:
    """The paper's Table 1 as printed, as an :class:`EvaluationResult` for :func:`format_table`.

    Only means, win counts and pair names are filled in (the paper gives no per-pair scores).
    """
    pairs = [p.name for p in pair_set("paper24")]
    methods = list(PAPER_TABLE1)
    compete = [m for m in methods if PAPER_TABLE1[m]["Q_MI"][1] is not None]
    return EvaluationResult(
        pairs=pairs,
        methods=methods,
        scores={m: {} for m in methods},
        means={m: {k: v[0] for k, v in PAPER_TABLE1[m].items()} for m in methods},
        n_pairs=dict.fromkeys(methods, len(pairs)),
        wins={m: ({k: v[1] for k, v in PAPER_TABLE1[m].items()} if m in compete else None) for m in methods},
        compete=compete,
        win_pairs=pairs,
        label="(as printed in the paper, authors' own metric code)",
    )


def compare_to_best(
    result: EvaluationResult, method: str = "bamf", baselines: Sequence[str] | None = None
) -> dict[str, dict]:
    """Set ``method`` against the best of ``baselines``, metric by metric.

    Means are over the pairs on which ``method`` and every baseline have results, so that
    all of them average the same pairs.

    Parameters
    ----------
    result : EvaluationResult
    method : str
        The method under test.
    baselines : sequence of str, optional
        Default: the Table-1 baselines (:data:`bamf_lib.evaluation.table1.TABLE1_BASELINES`) present in ``result``.

    Returns
    -------
    dict
        ``metric -> {"pairs": [...], "mean": ours, "best": baseline name, "best_mean": its
        mean, "beats_mean": bool, "margin": {pair: ours - best baseline on that pair},
        "beats_pairs": how many pairs ours beats every baseline on, "wins": ours' Table-1 win
        count, "top_wins": the most wins of any other competing method and "most_wins":
        bool (ours' count is the largest, ties included)}``.
        ``wins``, ``top_wins`` and ``most_wins`` are None when ``method`` does not compete.

    Examples
    --------
    >>> from bamf_lib.evaluation.table1 import summarize
    >>> s = {"b": {"p": {"Q_MI": 1.0}}, "m": {"p": {"Q_MI": 1.5}}}
    >>> r = EvaluationResult(["p"], ["b", "m"], s, *summarize(s)[:3], ["b", "m"], ["p"])
    >>> compare_to_best(r, "m", ["b"])["Q_MI"]["beats_mean"]
    True
    """
    if method not in result.scores:
        raise ValueError(f"method {method!r} is not in the result's methods {result.methods}")
    baselines = [b for b in TABLE1_BASELINES if b in result.scores] if baselines is None else list(baselines)
    missing = [b for b in baselines if b not in result.scores]
    if not baselines or missing:
        raise ValueError(f"baselines must name methods of the result, got {baselines} (unknown: {missing})")
    group = [method, *baselines]
    pairs = [p for p in result.pairs if all(result.scores[m].get(p) is not None for m in group)]
    if not pairs:
        raise ValueError(f"no pair has results for all of {group}")
    metrics = [k for k in METRICS if all(k in result.scores[m][pairs[0]] for m in group)]
    out: dict[str, dict] = {}
    for k in metrics:
        ours = np.array([result.scores[method][p][k] for p in pairs])
        theirs = np.array([[result.scores[b][p][k] for p in pairs] for b in baselines])
        means = theirs.mean(axis=1)
        best = int(means.argmax())
        margin = ours - theirs.max(axis=0)
        wins = result.wins.get(method)
        others = [result.wins[m][k] for m in result.compete if m != method and result.wins.get(m)]
        top = max(others) if others else 0
        out[k] = {
            "pairs": pairs,
            "mean": float(ours.mean()),
            "best": baselines[best],
            "best_mean": float(means[best]),
            "beats_mean": bool(ours.mean() > means[best]),
            "margin": dict(zip(pairs, margin.tolist())),
            "beats_pairs": int((margin > 0).sum()),
            "wins": None if wins is None else wins[k],
            "top_wins": None if wins is None else top,
            "most_wins": None if wins is None else bool(wins[k] >= top),
        }
    return out


def survey_ranking(result: EvaluationResult, method: str = "bamf") -> list[dict]:
    """``method`` beside all 18 methods of the Liu et al. 2020 survey on its 30 pairs.

    The survey's methods are scored by its MATLAB toolbox (``published/Q_<kind>.mat``, read by
    :func:`bamf_lib.evaluation.published.toolbox_scores`); ``method``'s scores come from ``result`` (a
    ``survey30`` evaluation), computed by :mod:`bamf_lib.evaluation.metrics`, which reproduces the toolbox
    (chapter 8).  Returns one row per method, best Q_MI first: ``{"method", "Q_MI", ..., "rank"}``
    where ``rank[metric]`` is the method's place (1 = best) among the 19.
    """
    from bamf_lib.evaluation.published import METRIC_COLUMNS, toolbox_scores

    names = [p.name for p in pair_set("survey30")]
    missing = [n for n in names if result.scores.get(method, {}).get(n) is None]
    if missing:
        raise ValueError(f"{method!r} has no scores for {missing[:3]}...: evaluate it on survey30")
    colour, gray = toolbox_scores("color"), toolbox_scores("grayscale")
    rows = [
        {"method": m, **{k: float(np.mean(np.concatenate([colour[m][k], gray[m][k]]))) for k in METRIC_COLUMNS}}
        for m in colour
    ]
    rows.append(
        {"method": method, **{k: float(np.mean([result.scores[method][n][k] for n in names])) for k in METRIC_COLUMNS}}
    )
    for row in rows:
        row["rank"] = {k: 1 + sum(other[k] > row[k] for other in rows) for k in METRIC_COLUMNS}
    return sorted(rows, key=lambda r: -r["Q_MI"])
