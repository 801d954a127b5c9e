"""A small score table (three pairs, three methods) shared by the evaluation and table tests."""

from __future__ import annotations

from bamf_lib.evaluation.table1 import EvaluationResult, summarize


def _row(mi, g, y, cb):
    return {"Q_MI": mi, "Q_G": g, "Q_Y": y, "Q_CB": cb}


# three pairs; "base" has no result on p3; "ours-w/o" does not compete
TABLE = {
    "base": {"p1": _row(1.0, 0.5, 0.9, 0.7), "p2": _row(1.2, 0.6, 0.8, 0.7), "p3": None},
    "ours": {"p1": _row(1.1, 0.5, 0.8, 0.8), "p2": _row(1.0, 0.7, 0.9, 0.6), "p3": _row(2.0, 0.9, 0.9, 0.9)},
    "ours-w/o": {"p1": _row(9.0, 9.0, 9.0, 9.0), "p2": _row(9.0, 9.0, 9.0, 9.0), "p3": _row(9.0, 9.0, 9.0, 9.0)},
}


def _result(table=TABLE, compete=("base", "ours")):
    means, n_pairs, wins, win_pairs = summarize(table, compete=list(compete))
    return EvaluationResult(list(next(iter(table.values()))), list(table), dict(table), means, n_pairs, wins, list(compete), win_pairs)
