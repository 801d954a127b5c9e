"""The book's comparison tables and labels: one method against the best baseline, on common pairs.

* :func:`pair_label` gives each test pair the one name the book uses for it (``lytro-05``,
  never the survey's ``c_05``).
* :func:`versus_best` sets a method against the best baseline per metric over the pairs
  all of them have, with the difference and whether it is ahead, behind or tied.
* :func:`verdict_table` and :func:`common_table` print those as Markdown tables, differences
  to 5 decimals and ties marked.

The scores come from :func:`bamf_lib.evaluation.evaluate`; :func:`bamf_lib.tables.compare_to_best`
does the pairing.
"""

from __future__ import annotations

from collections.abc import Sequence

from bamf_lib.evaluation.tables import compare_to_best

__all__ = ["TIE", "pair_label", "versus_best", "status_of", "verdict_table", "common_table", "detail_spread",
           "result_from_json"]

#: a difference smaller than this prints as +0.00000 at 5 decimals: a tie
TIE = 5e-6


def pair_label(name: str) -> str:
    """The book's name for a test pair: Lytro pairs are ``lytro-NN`` (the survey's ``c_NN``).

    Examples
    --------
    >>> pair_label("c_05"), pair_label("g_01"), pair_label("clock")
    ('lytro-05', 'g_01', 'clock')
    """
    if name.startswith("c_") and name[2:].isdigit():
        return f"lytro-{name[2:]}"
    return name


def status_of(difference: float, tie: float = TIE) -> str:
    """"ahead", "behind" or "tie" (``|difference| < tie``).

    Examples
    --------
    >>> status_of(0.001), status_of(-2e-6), status_of(-0.01)
    ('ahead', 'tie', 'behind')
    """
    if abs(difference) < tie:
        return "tie"
    return "ahead" if difference > 0 else "behind"


def versus_best(result, method: str = "bamf", baselines: Sequence[str] | None = None) -> dict[str, dict]:
    """``method`` against the best baseline per metric, all means over the same (common) pairs.

    Returns
    -------
    dict
        ``metric -> {"n_pairs", "mean", "best", "best_mean", "difference", "status", "wins",
        "top_wins"}``; ``status`` is :func:`status_of` the difference.
    """
    cmp = compare_to_best(result, method, baselines)
    out = {}
    for k, c in cmp.items():
        diff = c["mean"] - c["best_mean"]
        out[k] = {"n_pairs": len(c["pairs"]), "mean": c["mean"], "best": c["best"], "best_mean": c["best_mean"],
                  "difference": diff, "status": status_of(diff), "wins": c["wins"], "top_wins": c["top_wins"]}
    return out


def _signed(x: float) -> str:
    return "+0.00000" if abs(x) < TIE else f"{x:+.5f}"


def verdict_table(sets: dict[str, dict[str, dict]], method: str = "bamf", extra_rows: Sequence[str] = ()) -> str:
    """One row per metric, one column per pair set: ``method``'s mean against the best
    baseline's, the difference (5 decimals) and the outcome, ties marked; ``extra_rows`` (of
    as many columns) are appended as they are.

    Examples
    --------
    >>> row = {"Q_MI": {"n_pairs": 2, "mean": 1.0, "best": "GF", "best_mean": 0.999998, "difference": 2e-6,
    ...        "status": "tie"}}
    >>> print(verdict_table({"s": row}).splitlines()[2])
    | Q_MI | 1.00000 vs GF 1.00000: +0.00000, tie |
    """
    names = list(sets)
    head = "| metric | " + " | ".join(f"{n}: {method} vs the best baseline ({next(iter(sets[n].values()))['n_pairs']} "
                                     "pairs)" for n in names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    for k in sets[names[0]]:
        cells = [f"{r['mean']:.5f} vs {r['best']} {r['best_mean']:.5f}: {_signed(r['difference'])}, {r['status']}"
                 for r in (sets[n][k] for n in names)]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, *extra_rows])


def common_table(result, method: str = "bamf", baselines: Sequence[str] | None = None, digits: int = 4) -> str:
    """Table 1's layout over the pairs every method has: methods as rows, ``mean (wins)`` per
    metric, the best baseline mean bold, then a row with ``method`` minus the best baseline to
    5 decimals and ties marked.
    """
    common = result.common_pairs()
    means = result.common_means()
    vs = versus_best(result, method, baselines)
    metrics = list(vs)
    rows = []
    for m in result.methods:
        cells = []
        for k in metrics:
            v = means[m][k]
            text = f"{v:.{digits}f}"
            if m == vs[k]["best"]:
                text = f"**{text}**"
            if result.wins.get(m) is not None:
                text += f" ({result.wins[m][k]})"
            cells.append(text)
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    diff = f"| {method} − best baseline | " + " | ".join(
        f"{_signed(vs[k]['difference'])}" + (" (tie)" if vs[k]["status"] == "tie" else "") for k in metrics) + " |"
    head = ["| method | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    note = (f"Means over the {len(common)} pairs that every method has; (wins): pairs on which a method beats every "
            f"other of ({', '.join(result.compete)}) strictly; bold: the best baseline.")
    return "\n".join(head + rows + [diff, "", note])


def detail_spread(images: Sequence, sigma: float = 2.0):
    """Where a set of fused images differ in *detail*: the spread across them of each image's
    local high-pass energy (gray, a difference of Gaussians).  Unlike the spread of the raw
    grey levels, a flat area whose brightness differs from method to method scores low.

    Returns a float32 map of the images' shape (gray).
    """
    import cv2
    import numpy as np

    from bamf_lib.colour import rgb2gray

    stack = []
    for img in images:
        g = rgb2gray(np.asarray(img)).astype(np.float32)
        high = g - cv2.GaussianBlur(g, (0, 0), sigma)
        stack.append(cv2.GaussianBlur(np.abs(high), (0, 0), 2 * sigma))
    return np.std(np.stack(stack), axis=0).astype(np.float32)


def result_from_json(data: dict):
    """An :class:`~bamf_lib.evaluation.EvaluationResult` back from its ``to_json()`` dict (how
    chapter 9 hands its measurements to the appendix without fusing every pair again)."""
    from bamf_lib.evaluation.table1 import EvaluationResult

    methods = list(data["methods"])
    m = data["methods"]
    nan = float("nan")
    return EvaluationResult(
        pairs=list(data["pairs"]), methods=methods,
        scores={k: dict(v["per_pair"]) for k, v in m.items()},
        means={k: {x: (nan if y is None else y) for x, y in v["mean"].items()} for k, v in m.items()},
        n_pairs={k: v["n_pairs"] for k, v in m.items()}, wins={k: v["wins"] for k, v in m.items()},
        compete=list(data["compete"]), win_pairs=list(data["win_pairs"]),
        seconds={k: dict(v["seconds"]) for k, v in m.items() if v["seconds"]}, label=data.get("label", ""),
        wins_on=data.get("wins_on", "common"))
