"""A no-reference score of a fused focus stack: the share of cells left soft (issue 25).

No truth exists for a real stack.  But the sharpest frame at a place says how much detail the
stack holds there, and a fusion should keep it.  :func:`soft_cell_share` registers every frame
onto the output (OpenCV ECC, homography), measures in each cell of a 12 x 12 grid the mean
absolute Laplacian of Gaussian (sigma 2 px: a band that defocus removes but resampling barely
touches) of the output and of every registered frame, and, over the cells that every frame
covers and where focus matters (sharpest frame >= 1.5 x the softest), returns the share of
cells where the output keeps less than 0.8 of the sharpest frame's.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["soft_cell_share", "cell_log_energy", "register_onto"]

_SIDE = 1024  # frames are registered on copies of at most this longer side


def _gray(image: np.ndarray) -> np.ndarray:
    im = np.asarray(image)
    scale = 65535.0 if im.dtype == np.uint16 else 255.0
    if im.ndim == 3:
        im = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
    return im.astype(np.float32) / scale


def cell_log_energy(
    gray: np.ndarray, grid: int = 12, sigma: float = 2.0, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean |LoG| (sigma px) of ``gray`` in each cell of a ``grid`` x ``grid`` partition, and
    whether ``valid`` (default: everywhere) covers each cell entirely.

    >>> e, ok = cell_log_energy(np.zeros((48, 48), np.float32), grid=4)
    >>> e.shape, bool(ok.all()), float(e.max())
    ((4, 4), True, 0.0)
    """
    g = np.asarray(gray, np.float32)
    log = np.abs(cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), sigma), cv2.CV_32F))
    h, w = g.shape
    ys, xs = np.linspace(0, h, grid + 1).astype(int), np.linspace(0, w, grid + 1).astype(int)
    energy, covered = np.zeros((grid, grid)), np.ones((grid, grid), bool)
    for i in range(grid):
        for j in range(grid):
            energy[i, j] = float(log[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].mean())
            if valid is not None:
                covered[i, j] = bool(valid[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].all())
    return energy, covered


def _reduce(g: np.ndarray, s: float) -> np.ndarray:
    if s >= 1.0:
        return g
    return cv2.resize(
        g,
        (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s))),
        interpolation=cv2.INTER_AREA,
    )


def register_onto(frame_gray: np.ndarray, out_gray: np.ndarray) -> np.ndarray:
    """Homography (3 x 3, output pixel -> frame pixel) registering a frame onto the output:
    the offset by template matching on reduced copies, then ECC (homography) there."""
    s = min(1.0, _SIDE / max(frame_gray.shape))
    f, o = _reduce(frame_gray, s), _reduce(out_gray, s)
    init = np.eye(3, dtype=np.float32)
    if o.shape[0] <= f.shape[0] and o.shape[1] <= f.shape[1] and o.shape != f.shape:
        # the output is a crop of the frames' field: start from where it fits best
        m = 0.9  # match the central part, so a few per cent of magnification still fits
        dy, dx = int(o.shape[0] * (1 - m) / 2), int(o.shape[1] * (1 - m) / 2)
        res = cv2.matchTemplate(
            f, o[dy : o.shape[0] - dy, dx : o.shape[1] - dx], cv2.TM_CCOEFF_NORMED
        )
        _, _, _, (x, y) = cv2.minMaxLoc(res)
        init[0, 2], init[1, 2] = x - dx, y - dy
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    fb, ob = cv2.GaussianBlur(f, (0, 0), 1.5), cv2.GaussianBlur(o, (0, 0), 1.5)
    try:
        _, init = cv2.findTransformECC(ob, fb, init, cv2.MOTION_HOMOGRAPHY, crit, None, 1)
    except cv2.error:
        pass  # keep the template-matching offset
    down = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
    return np.linalg.inv(down) @ init.astype(np.float64) @ down


def soft_cell_share(
    output: np.ndarray,
    frames: Sequence[np.ndarray],
    *,
    grid: int = 12,
    sigma: float = 2.0,
    focus_ratio: float = 1.5,
    soft_ratio: float = 0.8,
) -> dict:
    """Share of the cells where focus matters in which ``output`` keeps less than ``soft_ratio``
    of the sharpest registered frame's LoG energy.

    Parameters
    ----------
    output : ndarray
        The fused image (any geometry near the frames': it is the grid's frame of reference).
    frames : sequence of ndarray
        The stack's frames (a lazy sequence is read one frame at a time).
    grid, sigma, focus_ratio, soft_ratio
        Issue 25's definition: 12 x 12 cells, LoG sigma 2 px, cells where the sharpest frame has
        >= 1.5 x the softest's energy, output < 0.8 x the sharpest's counts as soft.

    Returns
    -------
    dict
        ``share`` (NaN when no cell qualifies), ``cells`` (qualifying cells), ``soft`` (soft
        cells), ``ratio`` (grid x grid array: output / sharpest energy).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sharp = (rng.random((96, 96)) * 255).astype(np.uint8)
    >>> soft = cv2.GaussianBlur(sharp, (0, 0), 3)
    >>> share = lambda out: soft_cell_share(out, [sharp, soft], grid=4)["share"]
    >>> share(sharp), share(soft)
    (0.0, 1.0)
    """
    out_gray = _gray(output)
    h, w = out_gray.shape
    out_energy, _ = cell_log_energy(out_gray, grid, sigma)
    best, worst, covered = None, None, np.ones((grid, grid), bool)
    for frame in frames:
        g = _gray(frame)
        warp = register_onto(g, out_gray)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        reg = cv2.warpPerspective(g, warp, (w, h), flags=flags)
        inside = (
            cv2.warpPerspective(
                np.ones(g.shape, np.uint8),
                warp,
                (w, h),
                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            )
            > 0
        )
        energy, cov = cell_log_energy(reg, grid, sigma, inside)
        covered &= cov
        best = energy if best is None else np.maximum(best, energy)
        worst = energy if worst is None else np.minimum(worst, energy)
    ratio = out_energy / np.maximum(best, 1e-12)
    matters = covered & (best >= focus_ratio * worst) & (best > 0)
    soft = matters & (ratio < soft_ratio)
    n = int(matters.sum())
    return {
        "share": float(soft.sum() / n) if n else float("nan"),
        "cells": n,
        "soft": int(soft.sum()),
        "ratio": ratio,
    }
