"""Post-processing of the refined score map into a decision map (paper step 4).

Binarise at 0.5, then clean up: connected regions of either class smaller than
``area_fraction * H * W`` are flipped to the surrounding class.  The area rule
(0.01 H W) is the one of the CNN fusion paper (Liu et al., 2017) that this paper
follows; no guided filter is applied.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from bamf_lib.config import PostprocessConfig

__all__ = ["binarize", "fill_uncertain", "remove_small_regions", "decision_map"]


def binarize(score: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Decision map ``D = score > threshold`` (True where source A is taken).

    Ties (``score == threshold``) go to source B.

    Examples
    --------
    >>> binarize(np.array([[0.2, 0.5, 0.8]])).tolist()
    [[False, False, True]]
    """
    score = np.asarray(score)
    if score.ndim != 2:
        raise ValueError(f"score must be a 2-D (H, W) map, got shape {score.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    return score > threshold


def fill_uncertain(score: np.ndarray, decision: np.ndarray, margin: float, threshold: float = 0.5) -> np.ndarray:
    """``decision`` with every pixel whose ``score`` lies within ``margin`` of ``threshold`` given
    the decision of the nearest pixel outside that margin (Euclidean distance).

    An option beyond the paper: where neither source has detail the network's score hovers near
    the threshold and its side is chance; the nearest sure decision is the better guess.  With
    ``margin`` 0, or no sure pixel anywhere, ``decision`` is returned unchanged (a copy).

    Examples
    --------
    >>> s = np.array([[0.9, 0.55, 0.52, 0.1]])
    >>> fill_uncertain(s, s > 0.5, margin=0.1).tolist()
    [[True, True, False, False]]
    """
    score, decision = np.asarray(score), np.asarray(decision, bool)
    if score.shape != decision.shape or score.ndim != 2:
        raise ValueError(f"score and decision must be 2-D maps of one shape, got {score.shape} and {decision.shape}")
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"fill_margin must lie in [0, 0.5), got {margin!r}")
    unsure = np.abs(score - threshold) < margin
    if margin == 0 or not unsure.any() or unsure.all():
        return decision.copy()
    nearest = ndimage.distance_transform_edt(unsure, return_distances=False, return_indices=True)
    return decision[tuple(nearest)]


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` without its 8-connected regions smaller than ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0 is the background of ``mask``
    return keep[labels]


def remove_small_regions(decision: np.ndarray, area_fraction: float = 0.01) -> np.ndarray:
    """Flip connected regions (either class) smaller than ``area_fraction * H * W``.

    Small regions of the A class are removed first, then small holes of the B class in
    the result are filled (MATLAB ``bwareaopen`` on ``D`` and then on ``1 - D``, with
    8-connectivity, as in the CNN paper's code).

    Parameters
    ----------
    decision : ndarray of bool or {0, 1}, shape (H, W)
    area_fraction : float
        In [0, 1); 0 leaves the map unchanged.

    Returns
    -------
    ndarray of bool, shape (H, W)

    Examples
    --------
    >>> d = np.zeros((20, 20), bool); d[5, 5] = True
    >>> bool(remove_small_regions(d, 0.01).any())
    False
    """
    decision = np.asarray(decision)
    if decision.ndim != 2:
        raise ValueError(f"decision must be a 2-D (H, W) map, got shape {decision.shape}")
    if not 0.0 <= area_fraction < 1.0:
        raise ValueError(f"area_fraction must lie in [0, 1), got {area_fraction!r}")
    decision = decision.astype(bool)
    min_area = int(np.ceil(area_fraction * decision.size))
    if min_area <= 1:
        return decision.copy()
    decision = _drop_small(decision, min_area)
    return ~_drop_small(~decision, min_area)


def decision_map(score: np.ndarray, cfg: PostprocessConfig = PostprocessConfig()) -> np.ndarray:
    """Binarise ``score``, fill its unsure pixels if ``cfg.fill_margin`` (off by default), and
    remove small regions, as ``cfg`` says.

    Returns
    -------
    ndarray of bool, shape (H, W)
        True where source A is taken.
    """
    decision = binarize(score, cfg.threshold)
    if cfg.fill_margin:
        decision = fill_uncertain(score, decision, cfg.fill_margin, cfg.threshold)
    return remove_small_regions(decision, cfg.area_fraction)
