"""Helpers for the figures the chapters share.

* :func:`difference_map` computes the paper's Fig. 5 maps (fused image against one source).
"""

from __future__ import annotations

import numpy as np

from bamf_lib.io import rgb2gray

__all__ = ["difference_map"]


def difference_map(fused: np.ndarray, source: np.ndarray, *, lam: float = 10.0) -> np.ndarray:
    """The paper's Fig. 5 map ``DM = 255 - lam |F - S|`` on gray images, clipped to 0..255.

    Both images are made gray first (MATLAB ``rgb2gray``), as the paper's maps are gray
    before their pseudo-colour. With a jet-like colour map, 255 (red) marks pixels the fused
    image copied from ``source`` and low values (blue) pixels where it differs, i.e. taken
    from the other source where ``source`` is blurred.

    Parameters
    ----------
    fused, source : ndarray, uint8, (H, W) or (H, W, 3), one shape
    lam : float
        Gain on the absolute difference (paper: 10).

    Returns
    -------
    ndarray, float32, (H, W), values in [0, 255]

    Examples
    --------
    >>> f = np.array([[10, 20]], np.uint8); s = np.array([[10, 0]], np.uint8)
    >>> difference_map(f, s).tolist()
    [[255.0, 55.0]]
    """
    fused, source = np.asarray(fused), np.asarray(source)
    if fused.shape != source.shape:
        raise ValueError(f"fused {fused.shape} and source {source.shape} must have one shape")
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    diff = np.abs(rgb2gray(fused).astype(np.float32) - rgb2gray(source).astype(np.float32))
    return np.clip(255.0 - lam * diff, 0.0, 255.0).astype(np.float32)
