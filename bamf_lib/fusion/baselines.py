"""Classical baselines: guided-filter fusion (GFF) and the published baseline results.

:func:`gff_fuse` is the guided-filtering fusion of Li, Kang and Hu, "Image Fusion With
Guided Filtering", IEEE TIP 22(7), 2013, with the paper's parameters, written to behave
like the authors' public MATLAB code (which the Liu et al. 2020 survey ran to produce its
published "GFF" results):

1. saliency: ``|Laplacian 3x3|`` of each source's gray image (MATLAB ``rgb2gray`` for
   colour), smoothed by an 11x11 Gaussian with sigma 5 (replicated borders);
2. initial weights: one-hot maps of the most salient source at every pixel (first
   source on ties);
3. weights refined by the guided filter of He et al. (box means over the part of the
   window inside the image), guided by each source's gray image: ``r1 = 45,
   eps1 = 0.3`` for the base layer and ``r2 = 7, eps2 = 1e-6`` for the detail layer;
   the refined maps are quantised to 8 bits (``uint8(W * 255)``), then normalised to sum
   to one across sources;
4. two-scale decomposition of every channel with a 31x31 average filter (replicated
   borders): base = mean, detail = image - base; the fused image is the weighted sum of
   bases plus the weighted sum of details, rounded to uint8.

:func:`gff_decision_map` reads a decision map out of GFF's weights (for the ground-truth
comparison with the networks' decision maps); GFF itself never makes a hard decision.

The survey's published results of the other baselines (NSCT, SR, NSCT-SR, DSIFT, CNN)
are read with :func:`bamf_lib.data.datasets.published_fused`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from bamf_lib.colour import matlab_uint8, rgb2gray
from bamf_lib.io import check_sources

__all__ = ["box_mean", "guided_filter", "gff_weights", "gff_fuse", "gff_decision_map"]

_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)


def box_mean(image: np.ndarray, r: int) -> np.ndarray:
    """Mean over the ``(2r+1) x (2r+1)`` window, counting only pixels inside the image.

    This is He et al.'s ``boxfilter(X, r) ./ boxfilter(ones, r)``: near the border the
    window is cut, not padded, so the mean is over fewer pixels.

    Parameters
    ----------
    image : ndarray, float, (H, W)
    r : int
        Window radius, ``r >= 0``.

    Returns
    -------
    ndarray, float64, (H, W)
    """
    if r < 0:
        raise ValueError(f"r must be >= 0, got {r}")
    x = np.asarray(image, dtype=np.float64)
    k = (2 * r + 1, 2 * r + 1)
    total = cv2.boxFilter(x, cv2.CV_64F, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(np.ones_like(x), cv2.CV_64F, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return total / count


def guided_filter(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Gray-guided filter of He, Sun and Tang (ECCV 2010), with box means.

    Parameters
    ----------
    guide : ndarray, float, (H, W)
        Guidance image.
    p : ndarray, float, (H, W)
        Image to filter.
    r : int
        Window radius.
    eps : float
        Regularisation (larger: smoother output).

    Returns
    -------
    ndarray, float64, (H, W)

    Examples
    --------
    >>> q = guided_filter(np.ones((8, 8)), np.eye(8), r=1, eps=1e-2)
    """
    guide = np.asarray(guide, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if guide.shape != p.shape or guide.ndim != 2:
        raise ValueError(f"guide and p must be 2-D of one shape, got {guide.shape} and {p.shape}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    mean_i = box_mean(guide, r)
    mean_p = box_mean(p, r)
    cov_ip = box_mean(guide * p, r) - mean_i * mean_p
    var_i = box_mean(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, r) * guide + box_mean(b, r)


def _normalise(w: np.ndarray) -> np.ndarray:
    """Add the reference's 1e-12 and divide by the sum over sources (axis 0)."""
    w = w + 1e-12
    return w / w.sum(axis=0, keepdims=True)


def gff_weights(
    grays: np.ndarray,
    *,
    gauss_size: int = 11,
    gauss_sigma: float = 5.0,
    r1: int = 45,
    eps1: float = 0.3,
    r2: int = 7,
    eps2: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Base- and detail-layer weight maps of GFF.

    Parameters
    ----------
    grays : ndarray, uint8, (N, H, W)
        Gray images of the N sources.
    gauss_size, gauss_sigma : saliency smoothing (paper: 11x11, sigma 5)
    r1, eps1 : guided filter for the base-layer weights (paper: 45, 0.3)
    r2, eps2 : guided filter for the detail-layer weights (paper: 7, 1e-6)

    Returns
    -------
    (w_base, w_detail) : float64 arrays (N, H, W), each summing to 1 over sources.
    """
    g = np.asarray(grays, dtype=np.float64) / 255.0
    gauss = cv2.getGaussianKernel(gauss_size, gauss_sigma, cv2.CV_64F)
    saliency = np.stack(
        [
            cv2.sepFilter2D(
                np.abs(cv2.filter2D(x, cv2.CV_64F, _LAPLACIAN, borderType=cv2.BORDER_REPLICATE)),
                cv2.CV_64F,
                gauss,
                gauss,
                borderType=cv2.BORDER_REPLICATE,
            )
            for x in g
        ]
    )
    saliency = _normalise(saliency)
    # argmax picks the first source on ties, like MATLAB's max
    winner = saliency.argmax(axis=0)
    initial = (winner[None] == np.arange(len(g))[:, None, None]).astype(np.float64)

    def refine(r: int, eps: float) -> np.ndarray:
        w = np.stack([guided_filter(gi, pi, r, eps) for gi, pi in zip(g, initial)])
        # 8-bit quantisation clips negatives and overshoots, as the reference code does
        return _normalise(matlab_uint8(w * 255.0).astype(np.float64) / 255.0)

    return refine(r1, eps1), refine(r2, eps2)


def gff_fuse(
    sources: Sequence[np.ndarray],
    *,
    base_size: int = 31,
    **weight_params,
) -> np.ndarray:
    """Fuse N >= 2 registered sources by guided-filtering fusion (Li, Kang and Hu 2013).

    Parameters
    ----------
    sources : sequence of ndarray, uint8, all (H, W) or all (H, W, 3)
    base_size : int
        Side of the average filter of the two-scale decomposition (paper: 31).
    **weight_params
        ``gauss_size``, ``gauss_sigma``, ``r1``, ``eps1``, ``r2``, ``eps2`` of
        :func:`gff_weights`, whose defaults are the paper's.

    Returns
    -------
    ndarray, uint8, the sources' shape.

    Examples
    --------
    >>> sharp = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    >>> blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    >>> a, b = sharp.copy(), blurred.copy()
    >>> a[:, 32:], b[:, 32:] = blurred[:, 32:], sharp[:, 32:]
    >>> fused = gff_fuse([a, b])
    >>> fused.shape, fused.dtype
    ((64, 64), dtype('uint8'))
    >>> bool(np.abs(fused.astype(int) - sharp).mean() < np.abs(blurred.astype(int) - sharp).mean())
    True
    """
    sources = check_sources(sources)
    if base_size < 1 or base_size % 2 == 0:
        raise ValueError(f"base_size must be a positive odd integer, got {base_size}")
    grays = np.stack([rgb2gray(s) for s in sources])
    w_base, w_detail = gff_weights(grays, **weight_params)
    colour = sources[0].ndim == 3
    fused = np.zeros(sources[0].shape, dtype=np.float64)
    for src, wb, wd in zip(sources, w_base, w_detail):
        x = src.astype(np.float64) / 255.0
        base = cv2.blur(x, (base_size, base_size), borderType=cv2.BORDER_REPLICATE)
        if colour:
            wb, wd = wb[..., None], wd[..., None]
        fused += base * wb + (x - base) * wd
    return matlab_uint8(fused * 255.0)


def gff_decision_map(sources: Sequence[np.ndarray], *, layer: str = "detail", **params) -> np.ndarray:
    """Where GFF leans on source A: its weight map for A above one half.

    GFF blends rather than selects, so this is the nearest thing it has to the paper's
    decision map ``D``. The detail-layer weights (guided filter ``r2 = 7``) follow the
    focus boundary closely; the base-layer ones (``r1 = 45``) are far smoother.

    Parameters
    ----------
    sources : sequence of two ndarray, uint8, (H, W) or (H, W, 3)
    layer : {"detail", "base"}
        Which of :func:`gff_weights`' maps to threshold.
    **params
        Passed to :func:`gff_weights` (``gauss_size``, ``r1``, ``eps2``, ...).

    Returns
    -------
    ndarray of bool, (H, W): True where source A's weight exceeds 0.5.

    Examples
    --------
    >>> a = np.zeros((16, 16), np.uint8); a[::2] = 255
    >>> bool(gff_decision_map([a, np.full_like(a, 128)]).all())
    True
    """
    sources = check_sources(sources)
    if len(sources) != 2:
        raise ValueError(f"sources must be a pair, got {len(sources)} images")
    if layer not in ("detail", "base"):
        raise ValueError(f"layer must be 'detail' or 'base', got {layer!r}")
    w_base, w_detail = gff_weights(np.stack([rgb2gray(s) for s in sources]), **params)
    return (w_detail if layer == "detail" else w_base)[0] > 0.5
