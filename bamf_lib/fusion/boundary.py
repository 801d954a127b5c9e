"""Focused/defocused-boundary (FDB) classification and boundary refinement (paper steps 2-3).

The initial network is least reliable where a patch straddles the boundary between the
focused and the defocused region.  Those pixels are found by smoothing the score map
with a ``k x k`` box window: far from the boundary the window sees one consistent
answer and the mean stays near 0 or 1; near it the mean falls between ``tau`` and
``1 - tau``.  The boundary network, trained only on boundary patches, re-scores just
those pixels.

The paper gives no values for ``k`` and ``tau``, and the functions here take them as
arguments, with no defaults of their own: the one source of truth is the initial network's
weights (``metadata["fdb"]``), and :func:`fdb_for` is the one function that reads them (falling
back to :class:`bamf_lib.config.FDBConfig` for weights that carry none).  Those values are chosen
with :func:`tune_fdb` (the best-deciding rule of :func:`select_fdb`, both networks) on synthetic
pairs with known decision maps from :func:`bamf_lib.evaluation.groundtruth.groundtruth_set`
(held-out images, never the Lytro or classic test pairs), and stored by the one script that
tunes them, ``scripts/select_weights.py --store``; chapter 5 repeats the computation live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from bamf_lib.config import FDBConfig
from bamf_lib.fusion.scorers import as_scorer

__all__ = ["fdb_for", "smooth_scores", "near_boundary", "refine", "select_fdb", "tune_fdb"]


def fdb_for(initial) -> FDBConfig:
    """The FDB window and margin to use with the initial network ``initial`` (a scorer or a
    torch network): its weights' ``"fdb"`` metadata, where ``scripts/select_weights.py --store``
    writes the tuned values, else :class:`~bamf_lib.config.FDBConfig`'s defaults.

    This is the one reader of the stored values; :func:`bamf_lib.fuse` uses it unless given
    ``fdb``, and records what it used in ``FusionResult.fdb``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> fdb_for(SimpleNamespace(metadata={"fdb": {"k": 5, "tau": 0.2}}))
    FDBConfig(k=5, tau=0.2)
    >>> fdb_for(SimpleNamespace(metadata={})) == FDBConfig()
    True
    """
    tuned = (getattr(initial, "metadata", None) or {}).get("fdb")
    return FDBConfig(**tuned) if tuned else FDBConfig()


def _check_score(score: np.ndarray, name: str = "score") -> np.ndarray:
    score = np.asarray(score)
    if score.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) score map, got shape {score.shape}")
    return score.astype(np.float32, copy=False)


def _check_k(k: int) -> int:
    if int(k) != k or k < 1 or k % 2 == 0:
        raise ValueError(f"k must be an odd positive window size, got {k!r}")
    return int(k)


def smooth_scores(score: np.ndarray, k: int) -> np.ndarray:
    """Mean of the score map over a ``k x k`` box window (``S_bar`` in the paper).

    Parameters
    ----------
    score : ndarray, shape (H, W)
        Score map in [0, 1].
    k : int
        Odd window size in pixels.

    Returns
    -------
    ndarray of float32, shape (H, W)
        The box mean; borders are mirrored (``dcba|abcd``), so a uniform map stays uniform.

    Examples
    --------
    >>> float(smooth_scores(np.ones((8, 8)), 3).min())
    1.0
    """
    score = _check_score(score)
    k = _check_k(k)
    return cv2.blur(score, (k, k), borderType=cv2.BORDER_REFLECT)


def near_boundary(score: np.ndarray, k: int, tau: float) -> np.ndarray:
    """Pixels near the focused/defocused boundary: ``tau < S_bar < 1 - tau``.

    Parameters
    ----------
    score : ndarray, shape (H, W)
        Initial score map in [0, 1].
    k : int
        Odd box-window size for :func:`smooth_scores`.
    tau : float
        Margin in [0, 0.5); larger values give a narrower band.

    Returns
    -------
    ndarray of bool, shape (H, W)

    Examples
    --------
    >>> s = np.zeros((9, 9), np.float32); s[:, 5:] = 1
    >>> near_boundary(s, 3, 0.1)[0].nonzero()[0].tolist()
    [4, 5]
    """
    if not 0.0 <= tau < 0.5:
        raise ValueError(f"tau must lie in [0, 0.5), got {tau!r}")
    s_bar = smooth_scores(score, k)
    return (s_bar > tau) & (s_bar < 1.0 - tau)


def refine(
    score: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    boundary_model,
    *,
    k: int,
    tau: float,
    path: str = "fast",
    device: str = "cpu",
    optimized: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Replace the scores near the FDB by the boundary network's scores.

    Parameters
    ----------
    score : ndarray, shape (H, W)
        Initial score map from the initial network.
    a, b : ndarray of float32, shape (H, W)
        The gray sources in [0, 1] that produced ``score``.
    boundary_model : Scorer or torch.nn.Module
        The boundary network as a :class:`~bamf_lib.runtime.scorer.Scorer`, which scores the band
        the cheapest way its backend knows (:meth:`~bamf_lib.runtime.scorer.Scorer.score_masked`),
        or a torch network, scored on ``path`` and ``device``.
    k, tau : int, float
        FDB window and margin (see :func:`near_boundary`).
    path, device, optimized : str, str, bool
        How a torch ``boundary_model`` is scored (:class:`bamf_lib.nets.scorer.TorchScorer`);
        a scorer already carries its own.

    Returns
    -------
    refined : ndarray of float32, shape (H, W)
        ``score`` with the near-FDB pixels re-scored.
    mask : ndarray of bool, shape (H, W)
        The pixels that were re-scored.
    """
    score = _check_score(score)
    if np.shape(a) != score.shape or np.shape(b) != score.shape:
        raise ValueError(f"a {np.shape(a)} and b {np.shape(b)} must have the score map's shape {score.shape}")
    mask = near_boundary(score, k, tau)
    refined = score.copy()
    if mask.any():
        scorer = as_scorer(boundary_model, path=path, device=device, optimized=optimized)
        refined[mask] = scorer.score_masked(a, b, mask)[mask]
    return refined, mask


def select_fdb(
    scores: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    boundary_scores: Sequence[np.ndarray] | None = None,
    *,
    ks: Iterable[int] = (5, 9, 15, 21, 31),
    taus: Iterable[float] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4),
    coverage: float = 0.9,
    tolerance: float = 0.001,
) -> dict:
    """Choose ``(k, tau)`` on validation pairs with known decision maps.

    With ``boundary_scores`` (the boundary network's score at every pixel) the choice is
    the one that decides best: each grid point's refined map (boundary scores inside its
    band, initial scores outside) is post-processed (:func:`bamf_lib.fusion.postprocess.decision_map`
    with its defaults) and scored against the truth; among the points within ``tolerance``
    of the best pixel accuracy, the smallest band wins, since every band pixel costs a
    boundary-network evaluation.

    Without them, only the band itself is judged: among the points whose band holds at
    least ``coverage`` of the pixels the initial network gets wrong, the smallest band wins
    (or, if none does, the highest coverage).

    Parameters
    ----------
    scores : sequence of ndarray (H, W)
        Initial score maps of validation pairs.
    truths : sequence of ndarray (H, W)
        Their true decision maps (1 where source A is focused).
    boundary_scores : sequence of ndarray (H, W), optional
        The boundary network's scores of the same pairs, everywhere.
    ks, taus : iterables
        The grid to search.
    coverage : float
        Required fraction of wrong pixels inside the band (rule without boundary scores).
    tolerance : float
        Accuracy margin within which a smaller band is preferred.

    Returns
    -------
    dict
        ``{"k", "tau", "coverage", "band_fraction", "accuracy", "grid": [per-point dicts]}``
        (``accuracy`` only with ``boundary_scores``).
    """
    from bamf_lib.fusion.postprocess import decision_map

    if len(scores) != len(truths) or not scores:
        raise ValueError(f"need as many truths as scores (>0), got {len(scores)} and {len(truths)}")
    if boundary_scores is not None and len(boundary_scores) != len(scores):
        raise ValueError(f"need as many boundary_scores as scores, got {len(boundary_scores)} and {len(scores)}")
    truths = [np.asarray(t) > 0.5 for t in truths]
    wrong = [(np.asarray(s) > 0.5) != t for s, t in zip(scores, truths)]
    n_wrong = max(1, sum(int(w.sum()) for w in wrong))
    n_pixels = sum(w.size for w in wrong)
    grid = []
    for k in ks:
        for tau in taus:
            masks = [near_boundary(s, k, tau) for s in scores]
            point = {
                "k": int(k),
                "tau": float(tau),
                "coverage": sum(int((m & w).sum()) for m, w in zip(masks, wrong)) / n_wrong,
                "band_fraction": sum(int(m.sum()) for m in masks) / n_pixels,
            }
            if boundary_scores is not None:
                right = sum(
                    int((decision_map(np.where(m, sb, s)) == t).sum())
                    for m, s, sb, t in zip(masks, scores, boundary_scores, truths)
                )
                point["accuracy"] = right / n_pixels
            grid.append(point)
    if boundary_scores is not None:
        top = max(g["accuracy"] for g in grid)
        best = min((g for g in grid if g["accuracy"] >= top - tolerance), key=lambda g: g["band_fraction"])
    else:
        ok = [g for g in grid if g["coverage"] >= coverage]
        best = min(ok, key=lambda g: g["band_fraction"]) if ok else max(grid, key=lambda g: g["coverage"])
    return {**best, "grid": grid}


def tune_fdb(initial_model, pairs, boundary_model=None, *, path: str = "fast", device: str = "cpu", **grid) -> dict:
    """Score synthetic pairs with the networks and choose ``(k, tau)`` with :func:`select_fdb`.

    Parameters
    ----------
    initial_model : Scorer or torch.nn.Module
        The initial network (a torch network is scored on ``path`` and ``device``).
    pairs : sequence
        Items with uint8 gray ``a``, ``b`` and bool ``truth`` (True where A is focused),
        e.g. :func:`bamf_lib.evaluation.groundtruth.groundtruth_set` (never the real test pairs).
    boundary_model : Scorer or torch.nn.Module, optional
        The boundary network; with it the choice maximises the refined decision's accuracy.
    path, device : str
        How torch networks are scored (:class:`bamf_lib.nets.scorer.TorchScorer`).
    **grid
        ``ks``, ``taus``, ``coverage`` and ``tolerance`` for :func:`select_fdb`.

    Returns
    -------
    dict
        :func:`select_fdb`'s result plus ``error_rate``, the initial net's pixel error, and
        (with a boundary model) ``accuracy_initial``, the post-processed initial decision's
        accuracy without any refinement.
    """
    from bamf_lib.colour import to_float_gray
    from bamf_lib.fusion.postprocess import decision_map

    grays = [(to_float_gray(p.a), to_float_gray(p.b)) for p in pairs]
    initial = as_scorer(initial_model, path=path, device=device)
    scores = [initial.score_map(a, b) for a, b in grays]
    truths = [np.asarray(p.truth, bool) for p in pairs]
    # scoring the whole image once lets every grid point's band be cut from it
    boundary = None if boundary_model is None else as_scorer(boundary_model, path=path, device=device)
    bscores = None if boundary is None else [boundary.score_map(a, b) for a, b in grays]
    result = select_fdb(scores, truths, bscores, **grid)
    n_pixels = sum(t.size for t in truths)
    result["error_rate"] = sum(int(((s > 0.5) != t).sum()) for s, t in zip(scores, truths)) / n_pixels
    if bscores is not None:
        result["accuracy_initial"] = sum(int((decision_map(s) == t).sum()) for s, t in zip(scores, truths)) / n_pixels
    return result
