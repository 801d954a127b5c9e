"""The four objective fusion metrics of the paper, exact to the field's reference toolbox.

Q_MI (Hossny et al. 2008), Q_G (Xydeas and Petrovic 2000), Q_Y (Yang et al. 2008) and
Q_CB (Chen and Blum 2009), as implemented by the MATLAB toolbox of Liu et al. (TPAMI 2012)
in the corrected form used by the Liu et al. 2020 survey. On the survey's 180 published
per-image scores of six methods (:func:`bamf_lib.evaluation.published.compare_published`;
``tests/test_metrics.py``; the metrics chapter of the book) Q_MI, Q_G and Q_CB agree to ~1e-14; Q_Y agrees to ~1e-10 on
images without constant 7x7 windows and within ~4e-3 on the others, where the reference
divides rounding noise by rounding noise and this module returns the exact value.

All metrics take the two sources and the fused image as uint8 arrays, ``H x W`` (gray) or
``H x W x 3`` (RGB); colour is converted with MATLAB's ``rgb2gray`` first. Larger is better.
"""

from __future__ import annotations

import cv2
import numpy as np

from bamf_lib.colour import matlab_round, rgb2gray
from bamf_lib.io import check_sources

__all__ = [
    "q_mi",
    "q_g",
    "q_y",
    "q_cb",
    "all_metrics",
]

_EPS_GUARD = 1e-5  # the reference's guard against division by zero gradients


# --------------------------------------------------------------------------- helpers
def _prepare(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the triple (:func:`~bamf_lib.io.check_sources`) and return float64 gray copies (0..255)."""
    arrays = check_sources((a, b, f), min_size=7, names=("a", "b", "f"), minimum="the metrics' 7x7 window")
    return tuple(rgb2gray(x).astype(np.float64) for x in arrays)  # type: ignore[return-value]


def _normalize1(x: np.ndarray) -> np.ndarray:
    """The toolbox's ``normalize1``: stretch to 0..255 and round.

    A constant image (where the reference divides 0 by 0) is returned as all zeros.
    """
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros_like(x)
    # MATLAB's round (half away from zero); numpy's half-to-even moves Q_CB by ~1e-3 on
    # the grayscale set
    return matlab_round(255.0 * (x - lo) / (hi - lo))


def _correlate(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(kernel, x, 'same')``: correlation with zero padding."""
    return cv2.filter2D(x, cv2.CV_64F, kernel, borderType=cv2.BORDER_CONSTANT)


def _correlate_sep(x: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """``filter2(ky' * kx, x, 'same')`` for a separable kernel, zero padding."""
    return cv2.sepFilter2D(x, cv2.CV_64F, kx, ky, borderType=cv2.BORDER_CONSTANT)


_PARAMS_DOC = """Parameters
    ----------
    a, b : ndarray of uint8, ``H x W`` or ``H x W x 3`` (at least 7 x 7)
        The two source images; colour is converted with MATLAB's ``rgb2gray``.
    f : ndarray of uint8, same shape
        The fused image."""
_RETURNS_DOC = """Returns
    -------
    float

    Raises
    ------
    ValueError
        If the three images differ in shape, mix gray and colour, or are not uint8."""


def _documented(fn):
    fn.__doc__ = fn.__doc__.replace("%(params)s", _PARAMS_DOC).replace("%(returns)s", _RETURNS_DOC)
    return fn


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


# --------------------------------------------------------------------------- Q_MI
def _q_mi(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Q_MI of images already passed through :func:`_normalize1`."""
    a, b, f = (x.astype(np.int64).ravel() for x in (a, b, f))
    n = f.size

    def mi_terms(x: np.ndarray) -> tuple[float, float, float]:
        joint = np.bincount(x * 256 + f, minlength=256 * 256).reshape(256, 256) / n
        h_x = _entropy(joint.sum(axis=1))
        h_f = _entropy(joint.sum(axis=0))
        return h_x + h_f - _entropy(joint.ravel()), h_x, h_f

    mi_af, h_a, h_f = mi_terms(a)
    mi_bf, h_b, _ = mi_terms(b)
    for name, h_x in (("a", h_a), ("b", h_b)):
        if h_x + h_f == 0:  # the toolbox divides 0 by 0 here
            raise ValueError(
                f"Q_MI is undefined: {name} and f are both constant images (one grey level each), "
                f"so neither holds information to share; score images with some detail"
            )
    return 2.0 * (mi_af / (h_a + h_f) + mi_bf / (h_b + h_f))


@_documented
def q_mi(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Normalised mutual information Q_MI (Hossny et al. 2008), range 0..2.

    Rewards a fused image that shares information (in the sense of the joint grey-level
    histogram) with both sources, each share normalised by the two entropies.

    %(params)s

    %(returns)s

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    >>> round(q_mi(a, a, a), 6)
    2.0
    """
    return _q_mi(*map(_normalize1, _prepare(a, b, f)))


# --------------------------------------------------------------------------- Q_G
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = _SOBEL_X.T.copy()


def _gradient(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = _correlate(x, _SOBEL_X)
    gy = _correlate(x, _SOBEL_Y)
    g = np.sqrt(gx * gx + gy * gy)
    gx[gx == 0] += _EPS_GUARD
    return g, np.arctan(gy / gx)


def _q_g(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    g_f, alpha_f = _gradient(f)
    num = 0.0
    den = 0.0
    # the A block guards g_F in place and the B block sees the guarded values, as the reference
    for x in (a, b):
        g_x, alpha_x = _gradient(x)
        x_larger = g_x > g_f
        g_x[g_x == 0] += _EPS_GUARD
        f_over_x = g_f / g_x
        g_f[g_f == 0] += _EPS_GUARD
        g_rel = np.where(x_larger, f_over_x, g_x / g_f)
        a_rel = 1.0 - np.abs(alpha_x - alpha_f) * (2.0 / np.pi)
        q_g = 0.9994 / (1.0 + np.exp(-15.0 * (g_rel - 0.5)))
        q_a = 0.9879 / (1.0 + np.exp(-22.0 * (a_rel - 0.8)))
        num += float(np.sum(q_g * q_a * g_x))
        den += float(np.sum(g_x))
    return num / den


@_documented
def q_g(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Gradient-based edge preservation Q_G = Q^{AB/F} (Xydeas and Petrovic 2000), range 0..1.

    Rewards a fused image whose Sobel edge strength and orientation match those of the
    sources, weighted by how strong each source's edge is.

    %(params)s

    %(returns)s

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    >>> round(q_g(a, a, a), 4)  # the sigmoids' ceiling, not 1
    0.9748
    """
    return _q_g(*_prepare(a, b, f))


# --------------------------------------------------------------------------- Q_Y
def _gauss_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    return np.exp(-(x * x) / (2.0 * sigma * sigma))


_QY_WIN = _gauss_1d(7, 1.5) / _gauss_1d(7, 1.5).sum()  # fspecial('gaussian', 7, 1.5) = outer(w, w)
_QY_C = 2e-16


def _valid(x: np.ndarray) -> np.ndarray:
    """Crop a 'same' 7x7 result to MATLAB's 'valid' part."""
    return x[3:-3, 3:-3]


def _local_stats(x: np.ndarray, exact_flat: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed mean and variance ('valid'), exact where the 7x7 window is constant.

    Returns (mean, variance, constant-window mask). In a constant window ``E[X^2] - mu^2``
    is pure rounding noise (~1e-12), which the reference's tiny constants C1 = C2 = 2e-16
    turn into noise / noise; the infinite-precision value is variance 0, mean = the pixel.
    """
    mu = _valid(_correlate_sep(x, _QY_WIN, _QY_WIN))
    var = _valid(_correlate_sep(x * x, _QY_WIN, _QY_WIN)) - mu * mu
    if not exact_flat:
        return mu, var, np.zeros(mu.shape, bool)
    kernel = np.ones((7, 7), np.uint8)
    xu = x.astype(np.uint8)
    const = _valid(cv2.erode(xu, kernel) == cv2.dilate(xu, kernel))
    mu[const] = _valid(x)[const]
    var[const] = 0.0
    return mu, var, const


def _ssim(x, y, mx, vx, cx, my, vy, cy) -> np.ndarray:
    cov = _valid(_correlate_sep(x * y, _QY_WIN, _QY_WIN)) - mx * my
    cov[cx | cy] = 0.0
    return ((2 * mx * my + _QY_C) * (2 * cov + _QY_C)) / ((mx * mx + my * my + _QY_C) * (vx + vy + _QY_C))


def _q_y(a: np.ndarray, b: np.ndarray, f: np.ndarray, exact_flat: bool = True) -> float:
    sa, sb, sf = (_local_stats(x, exact_flat) for x in (a, b, f))
    ssim_ab = _ssim(a, b, *sa, *sb)
    ssim_af = _ssim(a, f, *sa, *sf)
    ssim_bf = _ssim(b, f, *sb, *sf)
    var_a, var_b = sa[1].copy(), sb[1].copy()
    flat = (var_a + var_b) == 0
    var_a[flat] += 0.5
    var_b[flat] += 0.5
    lam = var_a / (var_a + var_b)
    q = np.where(ssim_ab >= 0.75, lam * ssim_af + (1.0 - lam) * ssim_bf, np.maximum(ssim_af, ssim_bf))
    return float(np.mean(q))


@_documented
def q_y(a: np.ndarray, b: np.ndarray, f: np.ndarray, *, exact_flat: bool = True) -> float:
    """Yang's structural-similarity metric Q_Y (Yang et al. 2008), range 0..1.

    Where the two sources look alike (local SSIM(A, B) >= 0.75) the fused image should
    resemble both, weighted by local variance; elsewhere it should resemble at least one
    of them.

    %(params)s
    exact_flat : bool
        Treat 7x7 windows whose pixels are all equal exactly (variance 0, mean = the
        value), the formula's infinite-precision value. ``False`` computes them in plain
        float64 like the reference, where such windows give rounding noise / 2e-16.

    %(returns)s

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    >>> round(q_y(a, a, a), 6)
    1.0
    """
    return _q_y(*_prepare(a, b, f), exact_flat=exact_flat)


# --------------------------------------------------------------------------- Q_CB
_CB_G2 = _gauss_1d(31, 2.0) / np.sqrt(2 * np.pi * 2.0**2)  # outer(g, g) = exp(-r^2/2s^2) / (2 pi s^2)
_CB_G4 = _gauss_1d(31, 4.0) / np.sqrt(2 * np.pi * 4.0**2)


def _csf(shape: tuple[int, int]) -> np.ndarray:
    """The contrast-sensitivity filter on the rfft2 grid of an ``H x W`` image.

    MATLAB's freqspace grid scaled by (W/30, H/30) reduces to 2 k / 30 for the signed
    integer frequency k, on both axes; the filter is even, so the product with a real
    image's spectrum stays conjugate-symmetric and the inverse transform is real.
    """
    h, w = shape
    v = 2.0 * np.fft.fftfreq(h) * h / 30.0
    u = 2.0 * np.fft.rfftfreq(w) * w / 30.0
    r2 = v[:, None] ** 2 + u[None, :] ** 2
    return np.exp(-r2 / 15.3870**2) - 0.7622 * np.exp(-r2 / 1.3456**2)


def _masked_contrast(x: np.ndarray, csf: np.ndarray) -> np.ndarray:
    xf = np.fft.irfft2(np.fft.rfft2(x) * csf, s=x.shape)
    c = np.abs(_correlate_sep(xf, _CB_G2, _CB_G2) / _correlate_sep(xf, _CB_G4, _CB_G4) - 1.0)
    return c**3 / (c * c + 1e-4)


def _ratio_min_max(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    # both zero (the reference gives NaN): equal contrast, count it as preserved
    return np.divide(lo, hi, out=np.ones_like(lo), where=hi > 0)


def _q_cb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Q_CB of images already passed through :func:`_normalize1`."""
    csf = _csf(a.shape)
    ca, cb, cf = (_masked_contrast(x, csf) for x in (a, b, f))
    ca2, cb2 = ca * ca, cb * cb
    tot = ca2 + cb2
    lam_a = np.divide(ca2, tot, out=np.full_like(tot, 0.5), where=tot > 0)
    q = lam_a * _ratio_min_max(ca, cf) + (1.0 - lam_a) * _ratio_min_max(cb, cf)
    return float(np.mean(q))


@_documented
def q_cb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Chen-Blum human-perception metric Q_CB (Chen and Blum 2009), range 0..1.

    Filters each image with a contrast-sensitivity function, measures local band-pass
    contrast, and rewards a fused image that keeps, pixel by pixel, the contrast of the
    source that has more of it.

    %(params)s

    %(returns)s

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    >>> round(q_cb(a, a, a), 6)
    1.0
    """
    return _q_cb(*map(_normalize1, _prepare(a, b, f)))


# --------------------------------------------------------------------------- all four
def all_metrics(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> dict[str, float]:
    """All four metrics of the paper's Table 1, converting and validating the images once.

    Returns
    -------
    dict
        ``{"Q_MI": ..., "Q_G": ..., "Q_Y": ..., "Q_CB": ...}``
    """
    gray = _prepare(a, b, f)
    stretched = [_normalize1(x) for x in gray]  # Q_MI and Q_CB both start from normalize1
    return {
        "Q_MI": _q_mi(*stretched),
        "Q_G": _q_g(*gray),
        "Q_Y": _q_y(*gray),
        "Q_CB": _q_cb(*stretched),
    }
