"""Registration of a focus-bracketed stack: magnification, shift and a little rotation.

A focus stack's frames differ by focus breathing (each frame a little magnified and shifted)
and by blur: the first and last frames differ most in blur, so registering every frame to
the first (:func:`bamf_lib.fusion.align.align_sources`) is weakest where it matters.  Here each frame
is registered to its *neighbour* (nearly the same blur), on lightly smoothed copies, with
OpenCV's ECC, coarse to fine on a reduced copy; the affine estimate is projected on a similarity
(scale, rotation, shift: what focus breathing does), and the neighbour warps are composed to
the reference frame.  The common area of all frames is cropped: no mirrored or invented
border.

Warps are 3 x 3 matrices that map *reference* pixel coordinates to *frame* coordinates (the
inverse map :func:`cv2.warpAffine` takes with ``WARP_INVERSE_MAP``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from bamf_lib.colour import rgb2gray

__all__ = ["StackAlignment", "align_stack", "band_pass", "pair_warp", "corner_error"]

#: longest side of the reduced copies the warps are estimated on
ALIGN_SIDE = 1024
_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)


@dataclass
class StackAlignment:
    """The warps of a stack onto its reference frame and the common area.

    Attributes
    ----------
    warps : list of ndarray (3, 3)
        Per frame, reference pixel coordinates -> that frame's coordinates (identity for the
        reference).
    crop : (y0, y1, x0, x1)
        The common area, in reference coordinates: every frame covers it.
    reference : int
        The frame whose geometry the aligned stack has.
    residuals : list of float
        Per neighbour pair (i, i + 1), the shift (full-size pixels) a translation-only ECC
        still finds between the two frames once warped: the registration's residual error.
    correlations : list of float
        Per neighbour pair, ECC's correlation coefficient of the smoothed frames.
    shape : (H, W)
        The frames' size.
    """

    warps: list
    crop: tuple
    reference: int
    residuals: list
    correlations: list
    shape: tuple

    @property
    def out_shape(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.crop
        return (y1 - y0, x1 - x0)

    def apply(self, frame: np.ndarray, index: int) -> np.ndarray:
        """Frame ``index`` warped onto the reference and cropped to the common area (the
        reference itself is only cropped, never resampled); dtype and channels kept."""
        y0, y1, x0, x1 = self.crop
        warp = np.asarray(self.warps[index], np.float64)
        if np.allclose(warp, np.eye(3), atol=1e-12):
            return np.ascontiguousarray(frame[y0:y1, x0:x1])
        shifted = warp @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1]])
        return cv2.warpAffine(
            frame,
            shifted[:2],
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )


def band_pass(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """The gray image smoothed by a Gaussian of ``sigma`` px, float32: what the warps are
    estimated on (it takes the noise and the finest detail, which the neighbouring frame's
    defocus may lack; measured on rendered stacks, it registers better than the raw frame
    or a difference of Gaussians).  ECC itself ignores gain and offset changes."""
    g = np.asarray(gray, np.float32)
    return cv2.GaussianBlur(g, (0, 0), sigma) if sigma > 0 else g


def _to_similarity(warp: np.ndarray) -> np.ndarray:
    """The similarity (scale, rotation, shift) nearest an affine 2 x 3 warp."""
    a, b, c, d = warp[0, 0], warp[0, 1], warp[1, 0], warp[1, 1]
    p, q = (a + d) / 2, (c - b) / 2
    out = warp.copy()
    out[:, :2] = [[p, -q], [q, p]]
    return out


def pair_warp(
    ref: np.ndarray,
    mov: np.ndarray,
    *,
    init: np.ndarray | None = None,
    motion: str = "similarity",
    min_side: int = 96,
) -> tuple[np.ndarray, float]:
    """Warp (2 x 3, ``ref`` coordinates -> ``mov`` coordinates) registering two smoothed
    gray float32 images of one size, coarse to fine with ECC.

    Parameters
    ----------
    ref, mov : ndarray of float32, shape (H, W)
    init : ndarray (2, 3), optional
        Starting estimate (for example the previous pair's); identity by default.
    motion : {"similarity", "affine", "translation"}
        "similarity" estimates an affine warp at each level and keeps its nearest similarity.
    min_side : int
        The coarsest pyramid level's shorter side.

    Returns
    -------
    warp : ndarray (2, 3) float32
    correlation : float
        ECC's correlation coefficient at the finest level (NaN if it did not converge).
    """
    if motion not in ("similarity", "affine", "translation"):
        raise ValueError(f"motion must be 'similarity', 'affine' or 'translation', got {motion!r}")
    refs, movs = [ref], [mov]
    while min(refs[-1].shape) >= 2 * min_side:
        refs.append(cv2.pyrDown(refs[-1]))
        movs.append(cv2.pyrDown(movs[-1]))
    warp = np.eye(2, 3, dtype=np.float32) if init is None else np.asarray(init, np.float32).copy()
    scale = 2.0 ** (len(refs) - 1)
    warp[:, 2] /= scale
    rho = float("nan")
    for level in range(len(refs) - 1, -1, -1):
        coarsest = level == len(refs) - 1 and level > 0
        ecc = cv2.MOTION_TRANSLATION if motion == "translation" or (coarsest and init is None) else cv2.MOTION_AFFINE
        try:
            rho, new = cv2.findTransformECC(refs[level], movs[level], warp.copy(), ecc, _CRITERIA, None, 1)
            if motion == "similarity" and ecc == cv2.MOTION_AFFINE:
                new = _to_similarity(new)
            if np.abs(new[:, :2] - np.eye(2)).max() < 0.15:  # focus breathing is a few per cent
                warp = new.astype(np.float32)
        except cv2.error:
            rho = float("nan")  # no convergence at this level: keep the coarser estimate
        if level:
            warp[:, 2] *= 2.0
    return warp, float(rho)


def _reduced(frame: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Gray float32 copy whose longer side is at most ``side``, and its scale factor."""
    gray = rgb2gray(frame) if frame.dtype == np.uint8 else _gray16(frame)
    s = min(1.0, side / max(gray.shape))
    g = gray.astype(np.float32) / (255.0 if gray.dtype == np.uint8 else 65535.0)
    return shrink(g, s), s


def shrink(gray: np.ndarray, s: float) -> np.ndarray:
    """``gray`` resized by the factor ``s`` (area averaging); itself when ``s >= 1``."""
    if s >= 1.0:
        return gray
    size = (max(1, round(gray.shape[1] * s)), max(1, round(gray.shape[0] * s)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _gray16(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim == 2:
        return f
    return (f.astype(np.float32) @ np.array([0.298936, 0.587043, 0.114021], np.float32)).astype(np.uint16)


def full_size_warp(warp: np.ndarray, s: float) -> np.ndarray:
    """A warp (2 x 3 or 3 x 3) of copies reduced by ``s`` as a 3 x 3 warp of full-size pixels."""
    m = np.asarray(warp, np.float64)
    if m.shape == (2, 3):
        m = np.vstack([m, [0, 0, 1]])
    if s == 1.0:
        return m
    # pixel centres: x_reduced = (x + 0.5) s - 0.5
    down = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
    return np.linalg.inv(down) @ m @ down


def _crop(warps: Sequence[np.ndarray], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The axis-aligned rectangle of reference pixels that every frame covers: pixels whose
    position in every frame lies between that frame's outermost pixel centres (so bilinear
    interpolation reads no border; an identity warp keeps the whole frame)."""
    h, w = shape
    x0, y0, x1, y1 = 0.0, 0.0, w - 1.0, h - 1.0
    centres = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float).T
    for warp in warps:
        # the frame's corner pixel centres on the reference
        tl, tr, br, bl = (np.linalg.inv(warp) @ centres)[:2].T
        x0, x1 = max(x0, tl[0], bl[0]), min(x1, tr[0], br[0])
        y0, y1 = max(y0, tl[1], tr[1]), min(y1, bl[1], br[1])
    eps = 1e-3  # sub-millipixel differences are float noise, not a border
    top, left = int(np.ceil(y0 - eps)), int(np.ceil(x0 - eps))
    bottom, right = int(np.floor(y1 + eps)) + 1, int(np.floor(x1 + eps)) + 1
    if bottom - top < 16 or right - left < 16:
        raise ValueError(
            f"the frames' common area is only {right - left}x{bottom - top} px: "
            f"the stack does not register (check the frames are of one scene)"
        )
    return (max(0, top), min(h, bottom), max(0, left), min(w, right))


def align_stack(
    frames: Sequence[np.ndarray],
    *,
    reference: int = 0,
    side: int = ALIGN_SIDE,
    motion: str = "similarity",
    sigma: float = 2.0,
) -> StackAlignment:
    """Register a focus stack: neighbour to neighbour, composed to ``reference``.

    Parameters
    ----------
    frames : sequence of ndarray
        Gray or RGB frames (uint8 or uint16) of one size in focus order; a lazy sequence (one
        that reads a frame on indexing) is read once, two frames at a time.
    reference : int
        The frame whose geometry the aligned stack takes (negative counts from the end).
    side : int
        Warps are estimated on copies reduced to at most this longer side.
    motion : {"similarity", "affine", "translation"}
    sigma : float
        Band-pass scale (:func:`band_pass`) on the reduced copies.

    Returns
    -------
    StackAlignment

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scene = cv2.GaussianBlur(rng.random((200, 200)).astype(np.float32), (0, 0), 2)
    >>> moved = np.roll(scene, 3, axis=1)
    >>> frames = [(scene * 255).astype(np.uint8), (moved * 255).astype(np.uint8)]
    >>> al = align_stack(frames)
    >>> round(float(al.warps[1][0, 2]))  # frame 1 is frame 0 moved 3 px to the right
    3
    """
    n = len(frames)
    if n < 1:
        raise ValueError("frames is empty")
    if not -n <= reference < n:
        raise ValueError(f"reference must index one of the {n} frames, got {reference}")
    reference %= n
    steps, rhos, residuals = [], [], []  # steps[i]: frame i coords -> frame i + 1 coords
    prev, s = _reduced(frames[0], side)
    shape = np.shape(frames[0])[:2]
    prev_bp = band_pass(prev, sigma)
    for i in range(1, n):
        cur, _ = _reduced(frames[i], side)
        if cur.shape != prev.shape:
            raise ValueError(f"frame {i} is {np.shape(frames[i])[:2]}, frame 0 {shape}: frames must share one size")
        cur_bp = band_pass(cur, sigma)
        # no start from the previous pair's warp: measured, it lets ECC settle in a wrong optimum
        warp, rho = pair_warp(prev_bp, cur_bp, motion=motion)
        # the residual: what a translation-only ECC still finds once the pair is warped
        back = cv2.warpAffine(
            cur_bp,
            warp,
            prev_bp.shape[::-1],
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        left, _ = pair_warp(prev_bp, back, motion="translation")
        residuals.append(float(np.hypot(*left[:, 2])) / s)
        steps.append(full_size_warp(warp, s))
        rhos.append(rho)
        prev_bp = cur_bp
    warps = [np.eye(3) for _ in range(n)]
    for j in range(reference + 1, n):
        warps[j] = steps[j - 1] @ warps[j - 1]
    for j in range(reference - 1, -1, -1):
        warps[j] = np.linalg.inv(steps[j]) @ warps[j + 1]
    return StackAlignment(warps, _crop(warps, shape), reference, residuals, rhos, tuple(shape))


def corner_error(estimated: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    """Largest distance (px) between where two warps send the image's corners."""
    h, w = shape
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float).T
    pe, pt = np.asarray(estimated) @ c, np.asarray(truth) @ c
    return float(np.max(np.hypot(*(pe[:2] / pe[2] - pt[:2] / pt[2]))))
