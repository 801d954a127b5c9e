"""Cutting labelled samples out of one source pair (paper section 3.1): patches, dense
regions, the boundary filter and the augmentation.

A patch's label is 1 where its centre pixel is focused in A (``alpha > 0.5``); the boundary
set keeps patches with at least ``min_fraction`` focused and defocused pixels.  The source
pairs themselves, and the streams over all of them, are :mod:`bamf_lib.data.synthesis`.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["label_map", "boundary_mask", "patches_from_pair", "IGNORE", "regions_from_pair", "augment"]


def label_map(alpha: np.ndarray) -> np.ndarray:
    """True where A is the focused source: ``alpha > 0.5`` (see the module notes)."""
    return np.asarray(alpha) > 0.5


def boundary_mask(alpha: np.ndarray, patch_size: int, min_fraction: float = 0.10) -> np.ndarray:
    """Patch centres whose ``patch_size`` window has >= ``min_fraction`` focused AND defocused pixels.

    Returns a bool array over the valid top-left corners, shape ``(H-P+1, W-P+1)``: entry
    ``(y, x)`` describes the patch ``[y:y+P, x:x+P]`` (centre ``(y+P//2, x+P//2)``).
    """
    if not 0.0 <= min_fraction <= 0.5:
        raise ValueError(f"min_fraction must lie in [0, 0.5], got {min_fraction}")
    p = int(patch_size)
    focused = label_map(alpha).astype(np.float64)
    integral = cv2.integral(focused)
    counts = integral[p:, p:] - integral[:-p, p:] - integral[p:, :-p] + integral[:-p, :-p]
    frac = counts / (p * p)
    eps = 1e-9  # counts are exact integers; guard the division
    return (frac >= min_fraction - eps) & (frac <= 1.0 - min_fraction + eps)


def patches_from_pair(
    a: np.ndarray,
    b: np.ndarray,
    alpha: np.ndarray,
    *,
    n: int,
    patch_size: int,
    rng: np.random.Generator,
    boundary_only: bool = False,
    boundary_min_fraction: float = 0.10,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``n`` patch pairs at uniform random positions; labels from the centre pixel.

    With ``boundary_only`` the positions are uniform over those whose patch holds at least
    ``boundary_min_fraction`` focused and defocused pixels: the paper's filter, sampled
    directly so each source pair still gives ``n`` patches (fewer if it has no such patch).

    Returns ``X`` (n, 2, P, P) of the dtype of ``a`` and ``y`` uint8 (n,).
    """
    p = int(patch_size)
    h, w = alpha.shape
    if h < p or w < p:
        raise ValueError(f"source pair {alpha.shape} is smaller than patch_size={p}")
    if boundary_only:
        allowed = np.flatnonzero(boundary_mask(alpha, p, boundary_min_fraction))
        if allowed.size == 0:
            return np.empty((0, 2, p, p), a.dtype), np.empty(0, np.uint8)
        flat = allowed[rng.integers(0, allowed.size, n)]
    else:
        flat = rng.integers(0, (h - p + 1) * (w - p + 1), n)
    ys, xs = np.divmod(flat, w - p + 1)
    x = np.stack([sliding_window_view(a, (p, p))[ys, xs], sliding_window_view(b, (p, p))[ys, xs]], axis=1)
    y = label_map(alpha[ys + p // 2, xs + p // 2]).astype(np.uint8)
    return x, y


IGNORE = 255  # label of a region position that is not a training patch (boundary set)


def regions_from_pair(
    a: np.ndarray,
    b: np.ndarray,
    alpha: np.ndarray,
    *,
    n: int,
    region: int,
    patch_size: int,
    rng: np.random.Generator,
    boundary_only: bool = False,
    boundary_min_fraction: float = 0.10,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``n`` ``region x region`` pairs with the label of every patch inside them.

    A region holds ``(region - P + 1)^2`` patches; label ``[y, x]`` belongs to the patch
    whose top-left corner is ``(y, x)`` in the region, exactly as :func:`patches_from_pair`
    labels it (its centre pixel's alpha > 0.5).  With ``boundary_only`` the regions are
    centred on random boundary patches, and the non-boundary patches are labelled
    :data:`IGNORE`.  Dense training (:meth:`bamf_lib.nets.models.FocusResNet.dense_logits`) learns
    from all of them in one pass.

    Returns ``X`` (n, 2, R, R) of the dtype of ``a`` and ``Y`` uint8 (n, R - P + 1, R - P + 1).
    """
    r, p = int(region), int(patch_size)
    h, w = alpha.shape
    if r < p or h < r or w < r:
        raise ValueError(f"need patch_size <= region <= the source pair's sides, got {p}, {r}, {alpha.shape}")
    labels = label_map(alpha[p // 2 : h - p + 1 + p // 2, p // 2 : w - p + 1 + p // 2]).astype(np.uint8)
    if boundary_only:
        inside = boundary_mask(alpha, p, boundary_min_fraction)
        labels = np.where(inside, labels, IGNORE).astype(np.uint8)
        allowed = np.flatnonzero(inside)
        if allowed.size == 0:
            return np.empty((0, 2, r, r), a.dtype), np.empty((0, r - p + 1, r - p + 1), np.uint8)
        cy, cx = np.divmod(allowed[rng.integers(0, allowed.size, n)], w - p + 1)
        ys = np.clip(cy - (r - p) // 2, 0, h - r)
        xs = np.clip(cx - (r - p) // 2, 0, w - r)
    else:
        ys, xs = np.divmod(rng.integers(0, (h - r + 1) * (w - r + 1), n), w - r + 1)
    x = np.stack([sliding_window_view(a, (r, r))[ys, xs], sliding_window_view(b, (r, r))[ys, xs]], axis=1)
    q = r - p + 1
    return x, sliding_window_view(labels, (q, q))[ys, xs].copy()


def augment(x: np.ndarray, y: np.ndarray, *, n_transforms: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Add channel-swapped copies (opposite label), then ``n_transforms`` rotations/flips of all.

    Transform order: identity, rot90, rot180, rot270, flip-up-down, flip-left-right, and (for 8)
    the two transposes.  Output length ``2 * n_transforms * len(x)``.
    """
    if n_transforms not in (1, 6, 8):
        raise ValueError(f"n_transforms must be 1, 6 or 8, got {n_transforms}")
    x = np.concatenate([x, x[:, ::-1]])
    y = np.concatenate([y, 1 - y])
    views = [
        x,
        np.rot90(x, 1, (2, 3)),
        np.rot90(x, 2, (2, 3)),
        np.rot90(x, 3, (2, 3)),
        x[:, :, ::-1],
        x[:, :, :, ::-1],
        x.transpose(0, 1, 3, 2),
        x[:, :, ::-1, ::-1].transpose(0, 1, 3, 2),
    ]
    views = views[:n_transforms]
    return np.concatenate(views), np.tile(y, len(views))
