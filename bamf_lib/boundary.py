"""Focused/defocused-boundary (FDB) classification and boundary refinement (paper steps 2-3).

The initial network is least reliable where a patch straddles the boundary between the
focused and the defocused region.  Those pixels are found by smoothing the score map
with a ``k x k`` box window: far from the boundary the window sees one consistent
answer and the mean stays near 0 or 1; near it the mean falls between ``tau`` and
``1 - tau``.  The boundary network, trained only on boundary patches, re-scores just
those pixels.

The paper gives no values for ``k`` and ``tau``.  The defaults in
:class:`bamf_lib.config.FDBConfig` were chosen with :func:`tune_fdb` (the rule of
:func:`select_fdb`) on synthetic pairs with known decision maps from
:func:`bamf_lib.groundtruth.groundtruth_set` (held-out images, never the Lytro or
classic test pairs); chapter 5 repeats the computation live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

__all__ = ["smooth_scores", "near_boundary", "refine", "select_fdb", "tune_fdb"]


def _check_score(score: np.ndarray, name: str = "score") -> np.ndarray:
    score = np.asarray(score)
    if score.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) score map, got shape {score.shape}")
    return score.astype(np.float32, copy=False)


def _check_k(k: int) -> int:
    if int(k) != k or k < 1 or k % 2 == 0:
        raise ValueError(f"k must be an odd positive window size, got {k!r}")
    return int(k)


def smooth_scores(score: np.ndarray, k: int = 15) -> np.ndarray:
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

    Example
    -------
    >>> float(smooth_scores(np.ones((8, 8)), 3).min())
    1.0
    """
    score = _check_score(score)
    k = _check_k(k)
    return cv2.blur(score, (k, k), borderType=cv2.BORDER_REFLECT)


def near_boundary(score: np.ndarray, k: int = 15, tau: float = 0.05) -> np.ndarray:
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

    Example
    -------
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
    k: int = 15,
    tau: float = 0.05,
    path: str = "fast",
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Replace the scores near the FDB by the boundary network's scores.

    Parameters
    ----------
    score : ndarray, shape (H, W)
        Initial score map from the initial network.
    a, b : ndarray of float32, shape (H, W)
        The gray sources in [0, 1] that produced ``score``.
    boundary_model : torch.nn.Module
        The boundary network (same interface as the initial one).
    k, tau : int, float
        FDB window and margin (see :func:`near_boundary`).
    path, device : str
        Passed to :func:`bamf_lib.scoring.score_masked`.

    Returns
    -------
    refined : ndarray of float32, shape (H, W)
        ``score`` with the near-FDB pixels re-scored.
    mask : ndarray of bool, shape (H, W)
        The pixels that were re-scored.
    """
    from bamf_lib import scoring

    score = _check_score(score)
    if np.shape(a) != score.shape or np.shape(b) != score.shape:
        raise ValueError(f"a {np.shape(a)} and b {np.shape(b)} must have the score map's shape {score.shape}")
    mask = near_boundary(score, k, tau)
    refined = score.copy()
    if mask.any():
        rescored = scoring.score_masked(boundary_model, a, b, mask, path=path, device=device)
        refined[mask] = rescored[mask]
    return refined, mask


def select_fdb(
    scores: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    *,
    ks: Iterable[int] = (5, 9, 15, 21, 31),
    taus: Iterable[float] = (0.01, 0.05, 0.1, 0.2, 0.3),
    coverage: float = 0.9,
) -> dict:
    """Choose ``(k, tau)`` on validation pairs with known decision maps.

    The band must catch the pixels the initial network gets wrong (its binarised score
    disagrees with the truth) while staying small, since every pixel in it costs a
    boundary-network evaluation.  Among the grid points whose band holds at least
    ``coverage`` of the wrong pixels (pooled over all pairs), the one with the smallest
    band wins; if none reaches ``coverage``, the one with the highest coverage wins.

    Parameters
    ----------
    scores : sequence of ndarray (H, W)
        Initial score maps of validation pairs.
    truths : sequence of ndarray (H, W)
        Their true decision maps (1 where source A is focused).
    ks, taus : iterables
        The grid to search.
    coverage : float
        Required fraction of wrong pixels inside the band.

    Returns
    -------
    dict
        ``{"k", "tau", "coverage", "band_fraction", "grid": [per-point dicts]}``.
    """
    if len(scores) != len(truths) or not scores:
        raise ValueError(f"need as many truths as scores (>0), got {len(scores)} and {len(truths)}")
    wrong = [(np.asarray(s) > 0.5) != (np.asarray(t) > 0.5) for s, t in zip(scores, truths)]
    n_wrong = max(1, sum(int(w.sum()) for w in wrong))
    n_pixels = sum(w.size for w in wrong)
    grid = []
    for k in ks:
        for tau in taus:
            masks = [near_boundary(s, k, tau) for s in scores]
            caught = sum(int((m & w).sum()) for m, w in zip(masks, wrong))
            grid.append({
                "k": int(k), "tau": float(tau),
                "coverage": caught / n_wrong,
                "band_fraction": sum(int(m.sum()) for m in masks) / n_pixels,
            })
    ok = [g for g in grid if g["coverage"] >= coverage]
    best = min(ok, key=lambda g: g["band_fraction"]) if ok else max(grid, key=lambda g: g["coverage"])
    return {**best, "grid": grid}


def tune_fdb(initial_model, pairs, *, path: str = "fast", device: str = "cpu", **grid) -> dict:
    """Score synthetic pairs with the initial net and choose ``(k, tau)`` with :func:`select_fdb`.

    Parameters
    ----------
    initial_model : torch.nn.Module
        The initial network.
    pairs : sequence
        Items with uint8 gray ``a``, ``b`` and bool ``truth`` (True where A is focused),
        e.g. :func:`bamf_lib.groundtruth.groundtruth_set` (never the real test pairs).
    path, device : str
        Passed to :func:`bamf_lib.scoring.score_map`.
    **grid
        ``ks``, ``taus`` and ``coverage`` for :func:`select_fdb`.

    Returns
    -------
    dict
        :func:`select_fdb`'s result plus ``error_rate``, the initial net's pixel error.
    """
    from bamf_lib import scoring
    from bamf_lib.io import to_float_gray

    scores = [scoring.score_map(initial_model, to_float_gray(p.a), to_float_gray(p.b), path=path, device=device)
              for p in pairs]
    truths = [np.asarray(p.truth, bool) for p in pairs]
    result = select_fdb(scores, truths, **grid)
    wrong = sum(int(((s > 0.5) != t).sum()) for s, t in zip(scores, truths))
    result["error_rate"] = wrong / sum(t.size for t in truths)
    return result
