"""A no-reference score of a fused *real* stack, the share of cells left soft (issue 25): the
sharpest frame at a place says how much detail the stack holds there, and a fusion should keep
it.  :func:`soft_cell_share` registers every frame onto the output (OpenCV ECC, homography),
measures in each cell of a 12 x 12 grid the mean absolute Laplacian of Gaussian (sigma 2 px: a
band that defocus removes but resampling barely touches) of the output and of every registered
frame, and, over the cells that every frame covers and where focus matters (sharpest frame >=
1.5 x the softest), returns the share of cells where the output keeps less than 0.8 of the
sharpest frame's.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from bamf_lib.fusion.stack_align import full_size_warp, shrink

__all__ = ["cell_log_energy", "gray_unit", "register_onto", "soft_cell_share", "warp_onto"]

_SIDE = 1024  # frames are registered on copies of at most this longer side


def gray_unit(image: np.ndarray) -> np.ndarray:
    """``image`` (8- or 16-bit, grey or RGB) as float32 grey in [0, 1]."""
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


def warp_onto(frame_gray: np.ndarray, warp: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``frame_gray`` warped onto an output of ``shape`` by ``warp`` (output pixel -> frame pixel),
    and where it lies inside the frame.  Outside, the frame's edge pixels are repeated: a constant
    fill would put a step at the frame's border whose Laplacian reaches into the cells beside it
    and reads as detail the output lacks.

    >>> flat = np.full((40, 40), 0.5, np.float32)
    >>> reg, inside = warp_onto(flat, np.array([[1, 0, 5], [0, 1, 0], [0, 0, 1.0]]), (40, 40))
    >>> bool(inside[:, :35].all()), bool(inside[:, 36:].any()), float(np.abs(reg - 0.5).max())
    (True, False, 0.0)
    """
    h, w = shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    reg = cv2.warpPerspective(frame_gray, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    ones = np.ones(frame_gray.shape, np.uint8)
    inside = cv2.warpPerspective(ones, warp, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
    return reg, inside


def register_onto(frame_gray: np.ndarray, out_gray: np.ndarray) -> np.ndarray:
    """Homography (3 x 3, output pixel -> frame pixel) registering a frame onto the output:
    the offset by template matching on reduced copies, then ECC (homography) there."""
    s = min(1.0, _SIDE / max(frame_gray.shape))
    f, o = shrink(frame_gray, s), shrink(out_gray, s)
    init = np.eye(3, dtype=np.float32)
    if o.shape[0] <= f.shape[0] and o.shape[1] <= f.shape[1] and o.shape != f.shape:
        # the output is a crop of the frames' field: start from where it fits best
        m = 0.9  # match the central part, so a few per cent of magnification still fits
        dy, dx = int(o.shape[0] * (1 - m) / 2), int(o.shape[1] * (1 - m) / 2)
        res = cv2.matchTemplate(f, o[dy : o.shape[0] - dy, dx : o.shape[1] - dx], cv2.TM_CCOEFF_NORMED)
        _, _, _, (x, y) = cv2.minMaxLoc(res)
        init[0, 2], init[1, 2] = x - dx, y - dy
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    fb, ob = cv2.GaussianBlur(f, (0, 0), 1.5), cv2.GaussianBlur(o, (0, 0), 1.5)
    start = _correlation(ob, fb, init)
    try:
        cc, warp = cv2.findTransformECC(ob, fb, init.copy(), cv2.MOTION_HOMOGRAPHY, crit, None, 1)
    except cv2.error:
        cc = -np.inf  # keep the template-matching offset
    if cc >= start:  # ECC can wander off on a frame with little structure: keep the better start
        init = warp
    return full_size_warp(init, s)


def _correlation(out: np.ndarray, frame: np.ndarray, warp: np.ndarray) -> float:
    """ECC's criterion (zero-mean normalised correlation) of ``frame`` warped by ``warp`` onto ``out``."""
    moved = cv2.warpPerspective(frame, warp, out.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return float(cv2.computeECC(out, moved))


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
    out_gray = gray_unit(output)
    h, w = out_gray.shape
    out_energy, _ = cell_log_energy(out_gray, grid, sigma)
    best, worst, covered = None, None, np.ones((grid, grid), bool)
    for frame in frames:
        g = gray_unit(frame)
        reg, inside = warp_onto(g, register_onto(g, out_gray), (h, w))
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
