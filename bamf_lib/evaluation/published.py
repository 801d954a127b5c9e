"""Our metrics beside the survey toolbox's published per-image scores.

The Liu et al. 2020 survey publishes, for 18 methods on its 20 Lytro and 10 grayscale
pairs, the toolbox's scores (``published/Q_<kind>.mat``) and, for six methods, the fused
images.  :func:`compare_published` scores those images with :mod:`bamf_lib.evaluation.metrics` and
sets each value beside the toolbox's; :func:`error_summary` condenses the differences
(``tests/test_metrics.py`` and the metrics chapter assert them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bamf_lib.data import datasets
from bamf_lib.data.registry import (  # Q's layout, which the registry's CSV export shares
    TOOLBOX_METHODS,
    TOOLBOX_METRICS,
)
from bamf_lib.evaluation.metrics import all_metrics

__all__ = [
    "TOOLBOX_METHODS",
    "TOOLBOX_METRICS",
    "METRIC_COLUMNS",
    "PUBLISHED_PAIRS",
    "toolbox_scores",
    "compare_published",
    "error_summary",
]

METRIC_COLUMNS = {"Q_MI": "QMI", "Q_G": "QG", "Q_Y": "QY", "Q_CB": "QCB"}  # ours -> toolbox/csv
PUBLISHED_PAIRS = {"color": 20, "grayscale": 10}


def toolbox_scores(kind: str) -> dict[str, dict[str, np.ndarray]]:
    """The survey toolbox's full-precision per-image scores, ``{method: {"Q_MI": (n,), ...}}``.

    Read (hash-checked, via :mod:`bamf_lib.data.datasets`) from ``published/Q_<kind>.mat``,
    ``kind`` being ``"color"`` (20 Lytro pairs) or ``"grayscale"`` (10 pairs); entry ``i``
    is pair ``i + 1``; keys are the 18 survey methods' folder names (``"gff"``, ``"cnn"``...).
    """
    from scipy.io import loadmat

    if kind not in PUBLISHED_PAIRS:
        raise ValueError(f"kind must be one of {sorted(PUBLISHED_PAIRS)}, got {kind!r}")
    q = loadmat(datasets.path(f"published/Q_{kind}.mat"))["Q"]
    return {
        m: {name: q[i, TOOLBOX_METRICS.index(col)].astype(np.float64) for name, col in METRIC_COLUMNS.items()}
        for i, m in enumerate(TOOLBOX_METHODS)
    }


def compare_published(
    *,
    kinds: Sequence[str] = ("color", "grayscale"),
    methods: Sequence[str] = ("nsct", "sr", "nsct-sr", "gff", "dsift", "cnn"),
    indices: Mapping[str, Sequence[int]] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Score the survey's published fused images and set them beside the toolbox's scores.

    Parameters
    ----------
    kinds : sequence of {"color", "grayscale"}
    methods : sequence of str
        Folders under ``published/<kind>/`` (default: the six with images).
    indices : mapping, optional
        ``{kind: pair numbers}``; default all pairs (20 colour, 10 grayscale).
    progress : bool
        Show a progress bar over the pairs.

    Returns
    -------
    list of dict
        One record per (kind, method, index, metric): ``kind, method, index, metric,
        ours, published, abs_error``. Data come from ``BAMF_DATA_DIR`` (or the registry).
    """
    from tqdm.auto import tqdm

    jobs = [(k, i) for k in kinds for i in (indices or {}).get(k, range(1, PUBLISHED_PAIRS[k] + 1))]
    reference = {k: toolbox_scores(k) for k in kinds}
    records = []
    for kind, index in tqdm(jobs, desc="published pairs", disable=not progress):
        a, b = datasets.lytro_pair(index) if kind == "color" else datasets.grayscale_pair(index)
        for method in methods:
            ours = all_metrics(a, b, datasets.published_fused(method, kind, index))
            for name, value in ours.items():
                ref = float(reference[kind][method][name][index - 1])
                records.append(dict(kind=kind, method=method, index=index, metric=name,
                                    ours=value, published=ref, abs_error=abs(value - ref)))  # fmt: skip
    return records


def error_summary(records: Sequence[Mapping], *, tol: float = 1e-4) -> dict[str, dict[str, float]]:
    """Per metric: ``n``, ``max`` and ``mean`` absolute error, and ``within`` (count below ``tol``)."""
    out = {}
    for name in METRIC_COLUMNS:
        err = np.array([r["abs_error"] for r in records if r["metric"] == name])
        if err.size:
            out[name] = {"n": int(err.size), "max": float(err.max()), "mean": float(err.mean()),
                         "within": int((err < tol).sum())}  # fmt: skip
    return out
