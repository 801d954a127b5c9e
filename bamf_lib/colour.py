"""Colour maths as MATLAB does it: the fusion-metrics toolbox's gray conversion and rounding.

The published scores were computed in MATLAB, so the metrics convert colour images with
MATLAB's ``rgb2gray`` weights and round as its ``uint8`` does; the networks' input is the same
gray image as float32 in [0, 1] (:func:`to_float_gray`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["matlab_round", "matlab_uint8", "rgb2gray", "to_float_gray"]

# MATLAB rgb2gray weights (the fusion-metrics toolbox converts colour images with them)
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
_GRAY_BAND_PIXELS = 1 << 20  # rgb2gray converts this many pixels at a time


def matlab_round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, as MATLAB's ``round`` (numpy rounds half to even).

    Examples
    --------
    >>> matlab_round(np.array([-2.5, -0.5, 0.5, 1.5, 2.5])).tolist()
    [-3.0, -1.0, 1.0, 2.0, 3.0]
    """
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def matlab_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB ``uint8(x)``: round half away from zero, saturate to 0..255.

    Examples
    --------
    >>> matlab_uint8(np.array([-3.0, 0.5, 254.5, 300.0])).tolist()
    [0, 1, 255, 255]
    """
    return np.clip(matlab_round(x), 0, 255).astype(np.uint8)


def rgb2gray(image: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` on uint8: exact weights, round half away from zero.

    Gray images are returned unchanged.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgb2gray needs H x W or H x W x 3, got shape {image.shape}")
    # in bands of rows: the float64 copy of a whole 24 MP image would take 576 MB
    out = np.empty(image.shape[:2], np.uint8)
    rows = max(1, _GRAY_BAND_PIXELS // max(1, image.shape[1]))
    for y in range(0, image.shape[0], rows):
        out[y : y + rows] = matlab_uint8(image[y : y + rows].astype(np.float64) @ _RGB2GRAY)
    return out


def to_float_gray(image: np.ndarray) -> np.ndarray:
    """Gray float32 image in [0, 1], the networks' input."""
    return rgb2gray(image).astype(np.float32) / 255.0
