"""Registering a hand-held focus stack: every source warped onto the first before fusing.

Hand-held stacks move between shots.  :func:`align_sources` estimates an affine warp per source
with OpenCV's ECC (enhanced correlation coefficient), coarse to fine on a Gaussian pyramid, and
warps the source onto the first; ``fuse(align=True)`` and ``bamf fuse --align`` call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from bamf_lib.colour import to_float_gray

__all__ = ["align_sources"]


def _ecc_affine(ref: np.ndarray, mov: np.ndarray, levels: int) -> np.ndarray:
    """Affine warp (2 x 3, inverse map) taking ``mov`` onto ``ref``, coarse to fine.

    The coarsest level estimates a translation only and no level goes below 128 pixels:
    affine ECC on tiny images drifts to wild warps.  A level whose result strays far
    from a rigid-ish warp is ignored.
    """
    refs, movs = [ref], [mov]
    while len(refs) < levels and min(refs[-1].shape) >= 256:
        refs.append(cv2.pyrDown(refs[-1]))
        movs.append(cv2.pyrDown(movs[-1]))
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    for level in range(len(refs) - 1, -1, -1):
        motion = cv2.MOTION_TRANSLATION if level == len(refs) - 1 and level else cv2.MOTION_AFFINE
        try:
            _, new = cv2.findTransformECC(refs[level], movs[level], warp.copy(), motion, criteria, None, 5)
            if np.abs(new[:, :2] - np.eye(2)).max() < 0.2:
                warp = new
        except cv2.error:
            pass  # ECC did not converge at this level: keep the coarser estimate
        if level:
            warp[:, 2] *= 2.0
    return warp


def align_sources(sources: Sequence[np.ndarray], *, levels: int = 4) -> list[np.ndarray]:
    """Register every source to the first with ECC (affine), coarse to fine.

    Parameters
    ----------
    sources : sequence of uint8 ndarray
        Gray or RGB images of one size.
    levels : int
        Pyramid levels (each halves the size); the coarse levels make large shifts cheap.

    Returns
    -------
    list of ndarray
        The first source unchanged, the others warped onto it (borders mirrored).
    """
    sources = list(sources)
    ref = to_float_gray(sources[0])
    out = [sources[0]]
    h, w = ref.shape
    for src in sources[1:]:
        warp = _ecc_affine(ref, to_float_gray(src), levels)
        out.append(
            cv2.warpAffine(
                src, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
            )
        )
    return out
