"""Training data as in paper section 3.1: source pairs from (foreground, alpha, background).

A foreground ``Fg`` with alpha matte ``G`` and a background ``Bg`` give two sources whose
focused/defocused boundary coincides with the object boundary::

    A = G Fg + (1 - G) Bg_b      (foreground in focus)
    B = G Fg_b + (1 - G) Bg      (background in focus)

where ``_b`` marks a Gaussian-blurred copy.  Patch pairs are cut at random centres of each
source pair; the label is 1 where the centre pixel is focused in A.

Choices the paper leaves open, and ours:

* **Blur.**  ``sigma_range = (2, 5)`` px by default, drawn independently for ``Fg_b`` and
  ``Bg_b`` per source pair.  ``SynthesisConfig.blur``, ``sigma_law``, ``depth_ramp``,
  ``noise_range`` and ``jpeg_quality`` replace the Gaussian by a camera's defocus
  (:mod:`bamf_lib.data.defocus`; a departure from the paper, used by the ``camera`` profile).  The CNN method the paper builds on (Liu et al. 2017) blurs with a
  sigma-2 Gaussian applied one to five times, i.e. an effective sigma of 2 to about 4.5.
* **Fractional alpha.**  A centre pixel counts as focused in A when ``G > 0.5``: its value is
  then mostly the sharp foreground in A and mostly blurred in B; ``G <= 0.5`` gives label 0.
  The same rule marks pixels focused/defocused for the boundary subset.
* **Centre pixel** of an even patch of size P is ``(P // 2, P // 2)``.
* **Gray.**  Foreground and background are converted to gray (``colour.rgb2gray``) *before*
  blurring and compositing.  Both operations are linear, so this equals the gray of the
  colour composite up to one grey level of rounding, at a third of the cost.
* **Augmentation.**  Each patch pair is also added with its channels swapped and the
  opposite label; each of these is added in the 8 rotations/flips (``n_transforms=8``).  The
  paper's total (18,900 pairs x 10 x 12 = 2,268,000) implies 6 transforms; set
  ``n_transforms=6`` (identity, three rotations, two flips) to reproduce that count exactly.
* **Validation.**  ``val_fraction`` of the *source pairs* (not patches) are held out, so no
  source pair contributes to both splits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from bamf_lib.config import SynthesisConfig
from bamf_lib.data.defocus import camera_noise, depth_varying_blur, draw_family, draw_sigma, jpeg_roundtrip
from bamf_lib.data.patches import IGNORE, augment, boundary_mask, label_map, patches_from_pair, regions_from_pair
from bamf_lib.data.sources import fit_background, load_backgrounds, load_foregrounds, soft_alpha_mask

__all__ = [
    "make_source_pair",
    "blurred_pair",
    "soft_alpha_mask",
    "label_map",
    "boundary_mask",
    "load_foregrounds",
    "load_backgrounds",
    "source_pairs",
    "SourcePair",
    "source_pair",
    "split_pairs",
    "patches_from_pair",
    "augment",
    "iter_patches",
    "generate_patches",
    "IGNORE",
    "regions_from_pair",
    "generate_regions",
]


def make_source_pair(
    foreground: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray,
    *,
    sigma_fg: float = 3.0,
    sigma_bg: float = 3.0,
    family: str = "gaussian",
    ramp: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Compose the two differently focused sources of one (foreground, background) pair.

    Parameters
    ----------
    foreground, background : ndarray, ``H x W`` or ``H x W x 3``, same shape
        Any numeric dtype; computed in float32 on the given scale.
    alpha : ndarray, ``H x W``, float in [0, 1]
        Matte of the foreground (1 = foreground).
    sigma_fg, sigma_bg : float
        Blur sigma (pixels, the PSF's standard deviation per axis) of ``Fg_b`` and ``Bg_b``.
    family : {"gaussian", "disk"}
        The PSF (:mod:`bamf_lib.data.defocus`): the paper's Gaussian or the thin lens' softened disc.
    ramp : float
        With ``ramp > 0`` each blurred layer's sigma varies along a random depth ramp by a
        factor ``exp(+-ramp)`` (:func:`~bamf_lib.data.defocus.depth_varying_blur`; needs ``rng``).

    Returns
    -------
    a, b : ndarray, float32, the shape of ``foreground``
        ``A = G Fg + (1-G) Bg_b`` (foreground focused), ``B = G Fg_b + (1-G) Bg``.

    Examples
    --------
    >>> fg = np.zeros((32, 32)); bg = np.ones((32, 32)); g = np.ones((32, 32))
    >>> a, b = make_source_pair(fg, g, bg)
    >>> float(a.max()), float(b.max())
    (0.0, 0.0)
    """
    fg = np.asarray(foreground, dtype=np.float32)
    bg = np.asarray(background, dtype=np.float32)
    g = np.asarray(alpha, dtype=np.float32)
    if fg.shape != bg.shape:
        raise ValueError(f"background shape {bg.shape} must equal foreground shape {fg.shape}")
    if g.shape != fg.shape[:2]:
        raise ValueError(f"alpha shape {g.shape} must be the foreground's H x W {fg.shape[:2]}")
    for name, s in (("sigma_fg", sigma_fg), ("sigma_bg", sigma_bg)):
        if not s > 0:
            raise ValueError(f"{name} must be > 0, got {s}")
    if ramp > 0 and rng is None:
        raise ValueError("a depth ramp (ramp > 0) needs rng, the generator that draws its direction")
    fg_b = depth_varying_blur(fg, float(sigma_fg), family, ramp, rng)
    bg_b = depth_varying_blur(bg, float(sigma_bg), family, ramp, rng)
    if fg.ndim == 3:
        g = g[..., None]
    a = bg_b + g * (fg - bg_b)
    b = bg + g * (fg_b - bg)
    return a, b


def blurred_pair(
    foreground: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray,
    rng: np.random.Generator,
    sigma_range: tuple[float, float],
    camera: SynthesisConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """One random source pair as training and the ground-truth sets make it: ``background``
    fitted to the matte (:func:`~bamf_lib.data.sources.fit_background`), the two blurs drawn from
    ``sigma_range``, composed (:func:`make_source_pair`) and rounded to uint8.

    ``camera`` (a :class:`~bamf_lib.config.SynthesisConfig`) sets the blur model: its PSF
    family, sigma law, depth ramp, sensor noise, JPEG quality and the share of clean pairs (neither
    noise nor JPEG).  None, or the defaults, is
    the paper's Gaussian with sigma uniform in ``sigma_range``, drawn exactly as before these
    options existed (the same generator calls, so the same data).

    Returns ``(background, a, b, sigma_fg, sigma_bg)``.
    """
    bg = fit_background(background, alpha.shape, rng)
    law = "uniform" if camera is None else camera.sigma_law
    s_fg, s_bg = (draw_sigma(rng, sigma_range, law) for _ in range(2))
    family = "gaussian" if camera is None else draw_family(rng, camera.blur)
    ramp = 0.0 if camera is None else camera.depth_ramp
    a, b = make_source_pair(foreground, alpha, bg, sigma_fg=s_fg, sigma_bg=s_bg, family=family, ramp=ramp, rng=rng)
    # a clean pair (share camera.clean_share) skips noise and JPEG; with no share nothing is drawn,
    # so the profiles without one make the same data as before the option existed
    clean = camera is not None and camera.clean_share > 0 and bool(rng.random() < camera.clean_share)
    if camera is not None and camera.noise_range[1] > 0 and not clean:
        std = float(rng.uniform(*camera.noise_range))
        a, b = camera_noise(a, std, rng), camera_noise(b, std, rng)
    a, b = (np.clip(np.rint(x), 0, 255).astype(np.uint8) for x in (a, b))
    if camera is not None and camera.jpeg_quality is not None and not clean:
        q = int(rng.integers(camera.jpeg_quality[0], camera.jpeg_quality[1] + 1))
        a, b = jpeg_roundtrip(a, q), jpeg_roundtrip(b, q)
    return bg, a, b, s_fg, s_bg


def source_pairs(n_foregrounds: int, n_backgrounds: int) -> np.ndarray:
    """Every (foreground, background) index combination, shape ``(n_fg * n_bg, 2)``."""
    fi, bi = np.meshgrid(np.arange(n_foregrounds), np.arange(n_backgrounds), indexing="ij")
    return np.stack([fi.ravel(), bi.ravel()], axis=1)


def split_pairs(n_pairs: int, val_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Shuffle source-pair indices with ``seed``; the first ``round(val_fraction * n)`` are "val"."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    order = np.random.default_rng([seed, 1]).permutation(n_pairs)
    n_val = int(round(val_fraction * n_pairs))
    if val_fraction > 0 and n_pairs > 1:
        n_val = min(max(n_val, 1), n_pairs - 1)
    return {"val": np.sort(order[:n_val]), "train": np.sort(order[n_val:])}


def generate_regions(
    cfg: SynthesisConfig,
    *,
    region: int,
    split: str = "train",
    boundary_only: bool = False,
    per_pair: int = 10,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`regions_from_pair` over every source pair of ``split``, shuffled.

    The same source pairs (composition, blur and split) as :func:`generate_patches`; no
    augmentation is stored: the training loop swaps channels and rotates each batch.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    pools = _pools(cfg)
    chosen = split_pairs(len(pools[2]), cfg.val_fraction, cfg.seed)[split]
    xs, ys = [], []
    for idx in tqdm(chosen, desc=f"regions ({split})", disable=not progress, unit="pair"):
        pair, rng = _compose(cfg, int(idx), pools)
        x, y = regions_from_pair(
            pair.a,
            pair.b,
            pair.alpha,
            n=per_pair,
            region=region,
            patch_size=cfg.patch_size,
            rng=rng,
            boundary_only=boundary_only,
            boundary_min_fraction=cfg.boundary_min_fraction,
        )
        xs.append(x)
        ys.append(y)
    X, Y = np.concatenate(xs), np.concatenate(ys)
    order = np.random.default_rng([cfg.seed, 4]).permutation(len(X))
    return X[order], Y[order]


# --------------------------------------------------------------------------- streams


def _samples_per_patch(cfg: SynthesisConfig) -> int:
    return 2 * cfg.n_transforms if cfg.augment else 1


@dataclass(frozen=True)
class SourcePair:
    """One composed source pair, as the patches are cut from it (gray uint8 images)."""

    index: int
    foreground_name: str
    background_name: str
    foreground: np.ndarray  # Fg, gray
    background: np.ndarray  # Bg, gray, cropped to the foreground's size
    alpha: np.ndarray  # G, float32 in [0, 1]
    a: np.ndarray  # A = G Fg + (1 - G) Bg_b
    b: np.ndarray  # B = G Fg_b + (1 - G) Bg
    sigma_fg: float
    sigma_bg: float


def _pools(cfg: SynthesisConfig) -> tuple[list, list, np.ndarray]:
    """Validate ``cfg``; return the foreground and background pools and every pair of them."""
    lo, hi = cfg.sigma_range
    if not 0 < lo <= hi:
        raise ValueError(f"cfg.sigma_range must satisfy 0 < low <= high, got {cfg.sigma_range}")
    if cfg.pairs_per_image < 1:
        raise ValueError(f"cfg.pairs_per_image must be >= 1, got {cfg.pairs_per_image}")
    if not 0 < cfg.foreground_scale <= 4:
        raise ValueError(f"cfg.foreground_scale must lie in (0, 4], got {cfg.foreground_scale}")
    if not 0 <= cfg.boundary_min_fraction <= 0.5:
        raise ValueError(f"cfg.boundary_min_fraction must lie in [0, 0.5], got {cfg.boundary_min_fraction}")
    fgs, bgs = load_foregrounds(cfg), load_backgrounds(cfg)
    return fgs, bgs, source_pairs(len(fgs), len(bgs))


def _compose(cfg: SynthesisConfig, index: int, pools: tuple) -> tuple[SourcePair, np.random.Generator]:
    """Source pair ``index`` and its generator, which then draws the patch positions."""
    fgs, bgs, pairs = pools
    fi, bi = pairs[index]
    fg_name, fg, alpha = fgs[fi]
    rng = np.random.default_rng([cfg.seed, 2, index])
    bg, a, b, s_fg, s_bg = blurred_pair(fg, alpha, bgs[bi][1], rng, cfg.sigma_range, cfg)
    return SourcePair(index, fg_name, bgs[bi][0], fg, bg, alpha, a, b, s_fg, s_bg), rng


def source_pair(cfg: SynthesisConfig, index: int = 0) -> SourcePair:
    """The ``index``-th (foreground, background) source pair exactly as the patch stream makes it.

    Examples
    --------
    >>> pair = source_pair(SynthesisConfig(), 0)
    >>> pair.a.shape == pair.alpha.shape, pair.a.dtype
    (True, dtype('uint8'))
    """
    pools = _pools(cfg)
    if not 0 <= index < len(pools[2]):
        raise ValueError(f"index must lie in [0, {len(pools[2])}), got {index}")
    return _compose(cfg, int(index), pools)[0]


def iter_patches(
    cfg: SynthesisConfig,
    *,
    split: str = "train",
    boundary_only: bool = False,
    per_pair: int | None = None,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X uint8 (k, 2, P, P), y uint8 (k,))`` source pair by source pair.

    Each source pair draws its blur, background crop and patch positions from its own
    generator seeded by ``(cfg.seed, pair index)``, so the stream is the same for a seed
    whatever is consumed before it.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    pools = _pools(cfg)
    chosen = split_pairs(len(pools[2]), cfg.val_fraction, cfg.seed)[split]
    n = cfg.pairs_per_image if per_pair is None else int(per_pair)
    for idx in tqdm(chosen, desc=f"synthesis ({split})", disable=not progress, unit="pair"):
        pair, rng = _compose(cfg, int(idx), pools)
        x, y = patches_from_pair(
            pair.a,
            pair.b,
            pair.alpha,
            n=n,
            patch_size=cfg.patch_size,
            rng=rng,
            boundary_only=boundary_only,
            boundary_min_fraction=cfg.boundary_min_fraction,
        )
        if cfg.augment:
            x, y = augment(x, y, n_transforms=cfg.n_transforms)
        yield x, y


def _plan(cfg: SynthesisConfig, split: str, n_samples: int | None) -> tuple[int, int]:
    """``(patches per source pair, source pairs in the split)``: the paper's ten, or enough for ``n_samples``."""
    if n_samples is not None and n_samples < 1:
        raise ValueError(f"n_samples must be >= 1 or None, got {n_samples}")
    n_fg = len(load_foregrounds(cfg))
    n_bg = len(load_backgrounds(cfg))
    n_pairs = len(split_pairs(n_fg * n_bg, cfg.val_fraction, cfg.seed)[split])
    if n_pairs == 0:
        raise ValueError(f"split {split!r} has no source pairs; raise val_fraction or the pool sizes")
    if n_samples is None:
        return cfg.pairs_per_image, n_pairs
    return math.ceil(n_samples / (n_pairs * _samples_per_patch(cfg))), n_pairs


def generate_patches(
    cfg: SynthesisConfig,
    *,
    split: str = "train",
    boundary_only: bool = False,
    n_samples: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled patch pairs in memory, shuffled.

    Parameters
    ----------
    cfg : SynthesisConfig
        Source, patch size, blur range, pool sizes, augmentation, split and seed.
    split : {"train", "val"}
        Which source pairs (the split is by source pair).
    boundary_only : bool
        Keep only patches with >= ``cfg.boundary_min_fraction`` focused and defocused pixels
        (the boundary net's set).
    n_samples : int or None
        Exactly this many samples (drawing more or fewer patches per source pair than the
        paper's ten); None gives the paper's count, ``pairs_per_image`` per source pair.

    Returns
    -------
    X : uint8 (N, 2, P, P)
        Channel 0 the gray of source A, channel 1 of source B.
    y : uint8 (N,)
        1 where the centre pixel is focused in channel 0.

    Examples
    --------
    >>> X, y = generate_patches(SynthesisConfig(n_foregrounds=2, n_backgrounds=2), n_samples=64)
    >>> X.shape, X.dtype, y.shape
    ((64, 2, 32, 32), dtype('uint8'), (64,))
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    per_pair, n_pairs = _plan(cfg, split, n_samples)
    quota = per_pair * _samples_per_patch(cfg)
    total, p = n_pairs * quota, cfg.patch_size
    # each sample goes straight to its shuffled slot: peak memory is the output itself
    slot = np.random.default_rng([cfg.seed, 3]).permutation(total)
    X = np.empty((total, 2, p, p), np.uint8)
    y = np.empty(total, np.uint8)
    filled = np.zeros(total, bool)
    stream = iter_patches(cfg, split=split, boundary_only=boundary_only, per_pair=per_pair, progress=progress)
    for k, (xs, ys) in enumerate(stream):
        where = slot[k * quota : k * quota + len(ys)]  # a pair with no boundary patch gives none
        X[where], y[where], filled[where] = xs, ys, True
    if not filled.all():
        X, y = X[filled], y[filled]
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    return X, y
