"""Defocus as a camera makes it: point-spread functions, depth-varying blur, sensor noise, JPEG.

A thin lens of focal length ``f`` and aperture diameter ``A``, focused at distance ``z_f``,
images a point at distance ``z`` as a disc (the circle of confusion) of diameter

    c = A f |z - z_f| / (z (z_f - f)),

which grows from zero at the focal plane.  Real lenses give nearly that disc (a *pillbox*),
softened at its rim by diffraction and aberrations; a Gaussian is the paper's (and most MFIF
papers') convenient stand-in.  Every PSF here is parameterised by its standard deviation per
axis ``sigma``, so the families are comparable: a uniform disc of radius ``R`` has
``sigma = R / 2``.

* :func:`gaussian_psf` and :func:`disk_psf` (area-sampled pillbox, softened by a 0.5 px Gaussian);
* :func:`blur` applies one family at one ``sigma``;
* :func:`depth_varying_blur` lets ``sigma`` vary smoothly across the layer along a random linear
  depth ramp (``sigma * exp(ramp * r)``, ``r`` in [-1, 1]), by blending a few blurred copies;
* :func:`draw_sigma` draws ``sigma`` uniformly (the paper's reading) or log-uniformly (mild blur,
  the commonest in photographs, as likely per octave as strong blur);
* :func:`camera_noise` adds sensor noise and :func:`jpeg_roundtrip` re-compresses.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "BLUR_FAMILIES",
    "SIGMA_LAWS",
    "gaussian_psf",
    "disk_psf",
    "psf",
    "blur",
    "depth_varying_blur",
    "draw_sigma",
    "draw_family",
    "camera_noise",
    "jpeg_roundtrip",
]

#: PSF families: the paper's Gaussian, the thin lens' softened disc, or either drawn per source pair
BLUR_FAMILIES = ("gaussian", "disk", "mix")
#: how a blur sigma is drawn from ``SynthesisConfig.sigma_range``
SIGMA_LAWS = ("uniform", "loguniform")
#: the Gaussian that softens the disc's rim (diffraction and aberrations), px
DISK_SOFTEN = 0.5


def gaussian_psf(sigma: float) -> np.ndarray:
    """A normalised 2-D Gaussian kernel of standard deviation ``sigma`` px (radius 3 sigma)."""
    r = max(1, math.ceil(3 * sigma))
    g = cv2.getGaussianKernel(2 * r + 1, sigma, cv2.CV_64F)
    k = g @ g.T
    return (k / k.sum()).astype(np.float32)


def disk_psf(sigma: float, *, soften: float = DISK_SOFTEN, oversample: int = 8) -> np.ndarray:
    """The thin lens' circle of confusion: a pillbox of radius ``2 sigma`` (area-sampled at
    ``oversample`` x ``oversample`` points a pixel), convolved with a ``soften`` px Gaussian.

    Examples
    --------
    >>> k = disk_psf(2.0)
    >>> round(float(k.sum()), 6), k.shape[0] % 2
    (1.0, 1)
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = 2.0 * sigma
    r = math.ceil(radius + 3 * soften) + 1
    n = 2 * r + 1
    t = (np.arange(n * oversample) + 0.5) / oversample - r - 0.5
    yy, xx = np.meshgrid(t, t, indexing="ij")
    inside = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    k = inside.reshape(n, oversample, n, oversample).mean(axis=(1, 3))
    if k.sum() == 0:  # smaller than a pixel's sampling: a point
        k[r, r] = 1.0
    if soften > 0:
        k = cv2.GaussianBlur(k, (0, 0), soften, borderType=cv2.BORDER_CONSTANT)
    return (k / k.sum()).astype(np.float32)


def psf(family: str, sigma: float) -> np.ndarray:
    """The kernel of ``family`` ("gaussian" or "disk") at ``sigma``."""
    if family == "gaussian":
        return gaussian_psf(sigma)
    if family == "disk":
        return disk_psf(sigma)
    raise ValueError(f"blur family must be 'gaussian' or 'disk' here, got {family!r}")


def blur(image: np.ndarray, sigma: float, family: str = "gaussian") -> np.ndarray:
    """``image`` (float32, 2-D or H x W x C) blurred by ``family``'s PSF; borders reflect.

    The Gaussian goes through ``cv2.GaussianBlur`` exactly as the paper's synthesis did, so
    ``family="gaussian"`` reproduces the earlier training data bit for bit.
    """
    img = np.asarray(image, dtype=np.float32)
    if family == "gaussian":
        return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT)
    return cv2.filter2D(img, -1, psf(family, sigma), borderType=cv2.BORDER_REFLECT)


def depth_ramp(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A linear ramp in [-1, 1] over ``shape`` in a random direction: a tilted plane's depth."""
    h, w = shape
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = math.cos(theta) * xx + math.sin(theta) * yy
    lo, hi = float(r.min()), float(r.max())
    return (2 * (r - lo) / max(hi - lo, 1e-6) - 1).astype(np.float32)


def depth_varying_blur(
    image: np.ndarray, sigma: float, family: str, ramp: float, rng: np.random.Generator, *, levels: int = 5
) -> np.ndarray:
    """``image`` blurred by ``sigma * exp(ramp * r(x, y))`` with ``r`` a random linear ramp in
    [-1, 1] (:func:`depth_ramp`): a layer that recedes, so its blur changes smoothly across it.

    Computed as ``levels`` blurs on a geometric grid of sigmas, blended per pixel by linear
    interpolation in log-sigma.  ``ramp = 0`` is :func:`blur`.
    """
    if ramp <= 0:
        return blur(image, sigma, family)
    img = np.asarray(image, dtype=np.float32)
    r = depth_ramp(img.shape[:2], rng)
    u = (r + 1) / 2 * (levels - 1)  # position on the grid of levels, 0 .. levels - 1
    sigmas = sigma * np.exp(ramp * np.linspace(-1, 1, levels))
    out = np.zeros_like(img)
    for i, s in enumerate(sigmas):
        wgt = np.clip(1 - np.abs(u - i), 0, 1)
        if not wgt.any():
            continue
        out += (wgt[..., None] if img.ndim == 3 else wgt) * blur(img, float(s), family)
    return out


def draw_sigma(rng: np.random.Generator, sigma_range: tuple[float, float], law: str = "uniform") -> float:
    """One blur sigma from ``sigma_range``: uniform (the paper's reading) or log-uniform."""
    lo, hi = sigma_range
    if law == "uniform":
        return float(rng.uniform(lo, hi))
    if law == "loguniform":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    raise ValueError(f"sigma law must be one of {SIGMA_LAWS}, got {law!r}")


def draw_family(rng: np.random.Generator, family: str) -> str:
    """``family`` itself, or for "mix" a Gaussian or a disc with equal odds."""
    if family == "mix":
        return "disk" if rng.random() < 0.5 else "gaussian"
    if family not in BLUR_FAMILIES:
        raise ValueError(f"blur family must be one of {BLUR_FAMILIES}, got {family!r}")
    return family


def camera_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise on a 0..255 image: signal-dependent (shot) plus constant (read) noise whose
    total standard deviation is ``std`` grey levels at mid-grey."""
    if std <= 0:
        return image
    img = np.asarray(image, dtype=np.float32)
    var = (std**2) * (0.5 + img / 255.0)  # half read noise, half shot noise at mid-grey (127.5)
    return img + rng.standard_normal(img.shape).astype(np.float32) * np.sqrt(var)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (uint8) encoded as JPEG at ``quality`` and decoded again."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
