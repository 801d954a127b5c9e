"""Means and win counts of a score table, and the result of a Table-1 evaluation.

A score table is ``scores[method][pair] -> {metric: value}`` (``None`` where a method has
no result for a pair); :func:`summarize` gives each method's means and the number of pairs
on which it beats every other competing method (:func:`bamf_lib.evaluation.table1.evaluate` fills
the table; :mod:`bamf_lib.evaluation.tables` prints it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["METRICS", "EvaluationResult", "summarize"]

METRICS: tuple[str, ...] = ("Q_MI", "Q_G", "Q_Y", "Q_CB")
ScoreTable = Mapping[str, Mapping[str, Mapping[str, float] | None]]


@dataclass
class EvaluationResult:
    """Scores of every method on every pair, with means and win counts.

    ``scores[method][pair]`` is ``{"Q_MI": ..., ...}`` or ``None`` (n/a);
    ``means[method][metric]`` is over the ``n_pairs[method]`` pairs that have scores
    (NaN when none); ``wins[method][metric]`` counts the ``win_pairs`` on which the method
    beats every other competing method strictly, ``None`` for methods outside ``compete``.
    """

    pairs: list[str]
    methods: list[str]
    scores: dict[str, dict[str, dict[str, float] | None]]
    means: dict[str, dict[str, float]]
    n_pairs: dict[str, int]
    wins: dict[str, dict[str, int] | None]
    compete: list[str]
    win_pairs: list[str]
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    label: str = ""
    wins_on: str = "common"

    def common_pairs(self) -> list[str]:
        """Pairs on which every method has a result."""
        return [p for p in self.pairs if all(self.scores[m].get(p) is not None for m in self.methods)]

    def common_means(self) -> dict[str, dict[str, float]]:
        """Means over :meth:`common_pairs` only, so that every column averages the same pairs."""
        common = self.common_pairs()
        sub = {m: {p: self.scores[m][p] for p in common} for m in self.methods}
        return summarize(sub, pairs=common)[0] if common else {m: {} for m in self.methods}

    def with_scores(self, method: str, other: EvaluationResult, label: str = "") -> EvaluationResult:
        """This table with ``method``'s column replaced by ``other``'s ``method`` column (the same
        pairs), means and wins recomputed: e.g. Table 1 with bamf run another way, without scoring
        the baselines again.

        Examples
        --------
        >>> s = {"b": {"p": {"Q_MI": 1.0}}, "m": {"p": {"Q_MI": 0.5}}}
        >>> r = EvaluationResult(["p"], ["b", "m"], s, *summarize(s)[:3], ["b", "m"], ["p"])
        >>> t = {"m": {"p": {"Q_MI": 2.0}}}
        >>> o = EvaluationResult(["p"], ["m"], t, *summarize(t)[:3], ["m"], ["p"])
        >>> r.with_scores("m", o).wins["m"]["Q_MI"], r.wins["m"]["Q_MI"]
        (1, 0)
        """
        if method not in self.methods or method not in other.methods:
            raise ValueError(f"{method!r} must be a method of both results")
        missing = [p for p in self.pairs if p not in other.scores[method]]
        if missing:
            raise ValueError(f"the other result has no {method!r} score for {missing[:3]}")
        scores = {m: dict(self.scores[m]) for m in self.methods}
        scores[method] = {p: other.scores[method][p] for p in self.pairs}
        timed = other.seconds.get(method, {})
        seconds = {**self.seconds, method: {p: timed[p] for p in self.pairs if p in timed}}
        means, n_pairs, wins, win_pairs = summarize(
            scores, pairs=self.pairs, compete=self.compete, wins_on=self.wins_on
        )
        return EvaluationResult(
            list(self.pairs),
            list(self.methods),
            scores,
            means,
            n_pairs,
            wins,
            list(self.compete),
            win_pairs,
            seconds,
            label or self.label,
            self.wins_on,
        )

    def to_json(self) -> dict:
        """A JSON-serialisable dict (n/a and NaN become ``null``)."""

        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        common = self.common_means()

        return {
            "label": self.label,
            "pairs": self.pairs,
            "metrics": list(METRICS),
            "compete": self.compete,
            "win_pairs": self.win_pairs,
            "wins_on": self.wins_on,
            "common_pairs": self.common_pairs(),
            "methods": {
                m: {
                    "mean": {k: clean(v) for k, v in self.means[m].items()},
                    "mean_common": {k: clean(v) for k, v in common[m].items()},
                    "n_pairs": self.n_pairs[m],
                    "wins": self.wins[m],
                    "per_pair": self.scores[m],
                    "seconds": self.seconds.get(m, {}),
                }
                for m in self.methods
            },
        }


def summarize(
    scores: ScoreTable,
    *,
    pairs: Sequence[str] | None = None,
    compete: Iterable[str] | None = None,
    wins_on: str = "common",
) -> tuple[dict[str, dict[str, float]], dict[str, int], dict[str, dict[str, int] | None], list[str]]:
    """Means and win counts of a score table ``scores[method][pair] -> {metric: value} | None``.

    Parameters
    ----------
    scores : mapping
        Per-method, per-pair metric dicts; ``None`` marks a pair the method has no result for.
    pairs : sequence of str, optional
        Pair order (default: the first method's keys).
    compete : iterable of str, optional
        Methods that take part in win counting (default: all). A method wins a pair on a
        metric when its score is strictly larger than every other competing method's.
    wins_on : {"common", "available"}
        ``"common"``: count wins only on pairs that every competing method has scores
        for, so every count is over the same pairs; ``"available"``: on every pair,
        among the competing methods that have scores there.

    Returns
    -------
    means, n_pairs, wins, win_pairs

    Examples
    --------
    >>> s = {"x": {"p": {"Q_MI": 1.0}}, "y": {"p": {"Q_MI": 0.5}}}
    >>> summarize(s)[2]["x"]["Q_MI"]
    1
    """
    if wins_on not in ("common", "available"):
        raise ValueError(f"wins_on must be 'common' or 'available', got {wins_on!r}")
    methods = list(scores)
    if not methods:
        raise ValueError("scores is empty")
    pairs = list(pairs) if pairs is not None else list(scores[methods[0]])
    compete = list(methods if compete is None else compete)
    unknown = [m for m in compete if m not in scores]
    if unknown:
        raise ValueError(f"compete names methods without scores: {unknown}")
    metrics = [k for k in METRICS if any(scores[m].get(p) and k in scores[m][p] for m in methods for p in pairs)]

    means, n_pairs = {}, {}
    for m in methods:
        rows = [scores[m][p] for p in pairs if scores[m].get(p) is not None]
        n_pairs[m] = len(rows)
        means[m] = {k: float(np.mean([r[k] for r in rows])) if rows else math.nan for k in metrics}

    if wins_on == "common":
        win_pairs = [p for p in pairs if all(scores[m].get(p) is not None for m in compete)]
    else:
        win_pairs = list(pairs)
    wins: dict[str, dict[str, int] | None] = {m: None for m in methods}
    for m in compete:
        wins[m] = dict.fromkeys(metrics, 0)
    for p in win_pairs:
        present = [m for m in compete if scores[m].get(p) is not None]
        if len(present) < 2:
            continue
        for k in metrics:
            values = np.array([scores[m][p][k] for m in present])
            best = values.max()
            if np.count_nonzero(values == best) == 1:
                wins[present[int(values.argmax())]][k] += 1
    return means, n_pairs, wins, win_pairs
