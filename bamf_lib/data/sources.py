"""Where training images come from: foreground/background pools and procedural mattes.

``source="alphamatting"`` (the paper's): the 27 alpha-matting training images with their
ground-truth mattes, needing ``BAMF_DATA_DIR``.  ``source="embedded"`` (offline default):
photographs bundled with scikit-image, each with procedural soft mattes.  Backgrounds are
the registered COCO 2017 images when present, else scikit-image textures and photographs;
never an image of a test set.  Pools are converted to gray once and cached.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from bamf_lib.colour import rgb2gray
from bamf_lib.config import SynthesisConfig
from bamf_lib.data.locations import environment

__all__ = ["soft_alpha_mask", "load_foregrounds", "load_backgrounds", "fit_background"]


def soft_alpha_mask(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    coverage: tuple[float, float] = (0.25, 0.6),
    smoothness: float = 0.18,
    edge_sigma: tuple[float, float] = (0.5, 2.0),
) -> np.ndarray:
    """A random blob-shaped soft alpha matte (float32 in [0, 1]).

    Low-pass noise is thresholded so that a ``coverage`` fraction becomes foreground; the
    binary mask is then blurred by a small sigma so the edge has fractional alpha, as a real
    matte's does.  ``smoothness`` is the noise's correlation length as a fraction of the
    smaller side.

    Example
    -------
    >>> m = soft_alpha_mask((64, 96), rng=np.random.default_rng(0))
    >>> m.shape, bool(0 < (m > 0.5).mean() < 1)
    ((64, 96), True)
    """
    h, w = shape
    # low-pass noise is drawn on a coarse grid and upsampled: the same shapes, far cheaper
    step = max(1, int(smoothness * min(h, w) / 4))
    coarse = rng.standard_normal((h // step + 2, w // step + 2)).astype(np.float32)
    coarse = cv2.GaussianBlur(coarse, (0, 0), sigmaX=max(1.0, smoothness * min(h, w) / step))
    noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    frac = rng.uniform(*coverage)
    binary = (noise >= np.quantile(noise, 1.0 - frac)).astype(np.float32)
    return cv2.GaussianBlur(binary, (0, 0), sigmaX=rng.uniform(*edge_sigma))


def _resize_scale(image: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def _env_key() -> tuple:
    """What decides where data comes from: part of the pools' cache key."""
    return environment()


def load_foregrounds(cfg: SynthesisConfig, *, role: str = "train") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Foregrounds as ``(name, gray uint8, alpha float32)``, resized by ``cfg.foreground_scale``.

    ``cfg.source == "alphamatting"``: the 27 alpha-matting training images and their ground
    truth (needs ``BAMF_DATA_DIR``).  ``"embedded"``: natural images bundled with scikit-image,
    each with ``cfg.masks_per_image`` procedural soft mattes.  ``role="test"`` gives held-out
    embedded images (the ground-truth set).  Results are cached (read-only arrays).
    """
    return _foregrounds(cfg, role, _env_key())


@lru_cache(maxsize=4)
def _foregrounds(cfg: SynthesisConfig, role: str, _env: tuple) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from bamf_lib.data import datasets

    if cfg.source == "alphamatting" and role == "train":
        items = [(f"GT{i:02d}", *datasets.alphamatting(i)) for i in datasets.ALPHAMATTING_INDICES]
        items = [(n, im, al.astype(np.float32) / 255.0) for n, im, al in items]
    elif cfg.source in ("embedded", "alphamatting"):
        images = datasets.embedded_images("foreground" if role == "train" else "test_foreground")
        count = cfg.n_foregrounds or len(images) * cfg.masks_per_image
        if count < 1:
            raise ValueError(f"cfg.n_foregrounds must be >= 1 or None, got {cfg.n_foregrounds}")
        items = []
        for k in range(count):
            name, im = images[k % len(images)]
            items.append((f"{name}-m{k // len(images)}", im, None))
    else:
        raise ValueError(f"cfg.source must be 'embedded' or 'alphamatting', got {cfg.source!r}")
    if cfg.n_foregrounds is not None:
        items = items[: cfg.n_foregrounds]
    out = []
    for name, im, al in items:
        gray = _resize_scale(rgb2gray(im), cfg.foreground_scale, cv2.INTER_AREA)
        if al is None:  # embedded: a procedural matte drawn at the working size
            al = soft_alpha_mask(gray.shape, rng=np.random.default_rng([cfg.seed, 7, len(out)]))
        else:
            al = _resize_scale(al, cfg.foreground_scale, cv2.INTER_AREA)
        al = np.clip(al, 0.0, 1.0).astype(np.float32)
        gray.setflags(write=False)
        al.setflags(write=False)
        out.append((name, gray, al))
    return out


# Natural backgrounds (``backgrounds/``): the paper takes COCO images "without obvious defocus".
# A photograph passes when the least sharp tile of its 3 x 3 grid (mean |Laplacian| of the gray
# image) is >= SHARP_MIN_TILE grey levels and >= SHARP_MIN_RATIO times its median tile: no part is
# flat or much blurrier than the rest.  150 of the 224 pass (Urban100 68, BSD100 63, Kodak24 19).
SHARP_MIN_TILE = 4.0
SHARP_MIN_RATIO = 0.3
# Kodak24 is held out of training: its sharp photographs are the backgrounds of the synthetic
# validation set (bamf_lib.evaluation.groundtruth.groundtruth_set(backgrounds="kodak")).
HELD_OUT_BACKGROUNDS = ("kodak24/",)


def tile_sharpness(gray: np.ndarray, tiles: int = 3) -> np.ndarray:
    """Mean |Laplacian| of each tile of a ``tiles x tiles`` grid, shape ``(tiles * tiles,)``.

    Examples
    --------
    >>> flat = np.full((30, 30), 128, np.uint8)
    >>> float(tile_sharpness(flat).max())
    0.0
    """
    lap = np.abs(cv2.Laplacian(np.asarray(gray, np.float32), cv2.CV_32F))
    h, w = lap.shape
    return np.array(
        [
            lap[i * h // tiles : (i + 1) * h // tiles, j * w // tiles : (j + 1) * w // tiles].mean()
            for i in range(tiles)
            for j in range(tiles)
        ]
    )


def is_sharp_background(gray: np.ndarray) -> bool:
    """The "no obvious defocus" rule for natural backgrounds (see ``SHARP_MIN_TILE``)."""
    t = tile_sharpness(gray)
    return bool(t.min() >= SHARP_MIN_TILE and t.min() >= SHARP_MIN_RATIO * np.median(t))


def natural_backgrounds(*, held_out: bool = False) -> list[tuple[str, np.ndarray]]:
    """The sharp natural photographs as ``(name, gray uint8)``: the training pool, or with
    ``held_out=True`` the Kodak24 ones kept for validation.  Needs ``BAMF_DATA_DIR`` (or the download)."""
    return _natural(held_out, _env_key())


@lru_cache(maxsize=2)
def _natural(held_out: bool, _env: tuple) -> list[tuple[str, np.ndarray]]:
    from bamf_lib.data import datasets

    out = []
    for name, im in datasets.natural_backgrounds():
        if name.startswith(HELD_OUT_BACKGROUNDS) != held_out:
            continue
        gray = rgb2gray(im)
        if is_sharp_background(gray):
            gray.setflags(write=False)
            out.append((name.replace("/", "-"), gray))
    return out


def load_backgrounds(cfg: SynthesisConfig, *, role: str = "train") -> list[tuple[str, np.ndarray]]:
    """Backgrounds as ``(name, gray uint8)``, chosen by ``cfg.backgrounds``.

    ``"default"``: COCO 2017 when fetched, else the embedded textures; ``"textures"``: the
    embedded textures; ``"natural"``: the sharp natural photographs of ``backgrounds/`` except
    the held-out Kodak24; ``"mixed"``: natural + textures.  Never an image of a test set, and
    ``role="test"`` draws from a held-out group of the embedded images.  ``cfg.n_backgrounds``
    beyond the images at hand adds rotated views of them.  Results are cached (read-only arrays).
    """
    return _backgrounds(cfg, role, _env_key())


@lru_cache(maxsize=4)
def _backgrounds(cfg: SynthesisConfig, role: str, _env: tuple) -> list[tuple[str, np.ndarray]]:
    from bamf_lib.data import coco, datasets

    if role == "train" and cfg.backgrounds in ("natural", "mixed"):
        textures = datasets.embedded_images("background") if cfg.backgrounds == "mixed" else []
        # the textures serve in their four rotations, as in the embedded-only pool
        images = natural_backgrounds() + [(f"{n}-r{k}", np.rot90(im, k)) for k in range(4) for n, im in textures]
        count = cfg.n_backgrounds or len(images)
        images = [(n, np.ascontiguousarray(im)) for n, im in images]
    else:
        images = coco.coco_backgrounds() if role == "train" and cfg.backgrounds == "default" else []
        if not images:
            images = datasets.embedded_images("background" if role == "train" else "test_background")
            # the embedded backgrounds are few: each also serves in its four rotations
            count = cfg.n_backgrounds or 4 * len(images)
        else:
            count = cfg.n_backgrounds or len(images)
    if count < 1:
        raise ValueError(f"cfg.n_backgrounds must be >= 1 or None, got {cfg.n_backgrounds}")
    out = []
    for k in range(count):
        name, im = images[k % len(images)]
        view = np.ascontiguousarray(np.rot90(rgb2gray(im), (k // len(images)) % 4))
        view.setflags(write=False)
        out.append((f"{name}-r{k // len(images)}", view))
    return out


def fit_background(bg: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random ``shape`` crop of ``bg``, upscaled first only when ``bg`` is too small."""
    h, w = shape
    scale = max(h / bg.shape[0], w / bg.shape[1])
    if scale > 1.0:
        bg = cv2.resize(
            bg, (math.ceil(bg.shape[1] * scale), math.ceil(bg.shape[0] * scale)), interpolation=cv2.INTER_LINEAR
        )
    y = int(rng.integers(0, bg.shape[0] - h + 1))
    x = int(rng.integers(0, bg.shape[1] - w + 1))
    return bg[y : y + h, x : x + w]
