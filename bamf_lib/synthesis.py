"""Training data as in paper section 3.1: source pairs from (foreground, alpha, background).

A foreground ``Fg`` with alpha matte ``G`` and a background ``Bg`` give two sources whose
focused/defocused boundary coincides with the object boundary::

    A = G Fg + (1 - G) Bg_b      (foreground in focus)
    B = G Fg_b + (1 - G) Bg      (background in focus)

where ``_b`` marks a Gaussian-blurred copy.  Patch pairs are cut at random centres of each
source pair; the label is 1 where the centre pixel is focused in A.

Choices the paper leaves open, and ours:

* **Blur.**  ``sigma_range = (2, 5)`` px by default, drawn independently for ``Fg_b`` and
  ``Bg_b`` per source pair.  The CNN method the paper builds on (Liu et al. 2017) blurs with a
  sigma-2 Gaussian applied one to five times, i.e. an effective sigma of 2 to about 4.5.
* **Fractional alpha.**  A centre pixel counts as focused in A when ``G > 0.5``: its value is
  then mostly the sharp foreground in A and mostly blurred in B; ``G <= 0.5`` gives label 0.
  The same rule marks pixels focused/defocused for the boundary subset.
* **Centre pixel** of an even patch of size P is ``(P // 2, P // 2)``.
* **Gray.**  Foreground and background are converted to gray (``io.rgb2gray``) *before*
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

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from tqdm.auto import tqdm

from bamf_lib.config import SynthesisConfig
from bamf_lib.shards import PatchDataset, ShardDataset, write_shards
from bamf_lib.sources import fit_background, load_backgrounds, load_foregrounds, soft_alpha_mask

__all__ = [
    "make_source_pair",
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
    "PatchDataset",
    "write_shards",
    "ShardDataset",
]


def make_source_pair(
    foreground: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray,
    *,
    sigma_fg: float = 3.0,
    sigma_bg: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Compose the two differently focused sources of one (foreground, background) pair.

    Parameters
    ----------
    foreground, background : ndarray, ``H x W`` or ``H x W x 3``, same shape
        Any numeric dtype; computed in float32 on the given scale.
    alpha : ndarray, ``H x W``, float in [0, 1]
        Matte of the foreground (1 = foreground).
    sigma_fg, sigma_bg : float
        Gaussian blur sigma (pixels) of ``Fg_b`` and ``Bg_b``.

    Returns
    -------
    a, b : ndarray, float32, the shape of ``foreground``
        ``A = G Fg + (1-G) Bg_b`` (foreground focused), ``B = G Fg_b + (1-G) Bg``.

    Example
    -------
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
    fg_b = cv2.GaussianBlur(fg, (0, 0), sigmaX=float(sigma_fg), borderType=cv2.BORDER_REFLECT)
    bg_b = cv2.GaussianBlur(bg, (0, 0), sigmaX=float(sigma_bg), borderType=cv2.BORDER_REFLECT)
    if fg.ndim == 3:
        g = g[..., None]
    a = bg_b + g * (fg - bg_b)
    b = bg + g * (fg_b - bg)
    return a, b


def label_map(alpha: np.ndarray) -> np.ndarray:
    """True where A is the focused source: ``alpha > 0.5`` (see the module notes)."""
    return np.asarray(alpha) > 0.5


def boundary_mask(alpha: np.ndarray, patch_size: int, min_fraction: float = 0.10) -> np.ndarray:
    """Patch centres whose ``patch_size`` window has >= ``min_fraction`` focused AND defocused pixels.

    Returns a bool array over the valid top-left corners, shape ``(H-P+1, W-P+1)``: entry
    ``(y, x)`` describes the patch ``[y:y+P, x:x+P]`` (centre ``(y+P//2, x+P//2)``).
    """
    if not 0.0 <= min_fraction <= 0.5:
        raise ValueError(f"min_fraction must lie in [0, 0.5], got {min_fraction}")
    p = int(patch_size)
    focused = label_map(alpha).astype(np.float64)
    integral = cv2.integral(focused)
    counts = integral[p:, p:] - integral[:-p, p:] - integral[p:, :-p] + integral[:-p, :-p]
    frac = counts / (p * p)
    eps = 1e-9  # counts are exact integers; guard the division
    return (frac >= min_fraction - eps) & (frac <= 1.0 - min_fraction + eps)


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


def patches_from_pair(
    a: np.ndarray,
    b: np.ndarray,
    alpha: np.ndarray,
    *,
    n: int,
    patch_size: int,
    rng: np.random.Generator,
    boundary_only: bool = False,
    boundary_min_fraction: float = 0.10,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``n`` patch pairs at uniform random positions; labels from the centre pixel.

    With ``boundary_only`` the positions are uniform over those whose patch holds at least
    ``boundary_min_fraction`` focused and defocused pixels: the paper's filter, sampled
    directly so each source pair still gives ``n`` patches (fewer if it has no such patch).

    Returns ``X`` (n, 2, P, P) of the dtype of ``a`` and ``y`` uint8 (n,).
    """
    p = int(patch_size)
    h, w = alpha.shape
    if h < p or w < p:
        raise ValueError(f"source pair {alpha.shape} is smaller than patch_size={p}")
    if boundary_only:
        allowed = np.flatnonzero(boundary_mask(alpha, p, boundary_min_fraction))
        if allowed.size == 0:
            return np.empty((0, 2, p, p), a.dtype), np.empty(0, np.uint8)
        flat = allowed[rng.integers(0, allowed.size, n)]
    else:
        flat = rng.integers(0, (h - p + 1) * (w - p + 1), n)
    ys, xs = np.divmod(flat, w - p + 1)
    x = np.stack([sliding_window_view(a, (p, p))[ys, xs], sliding_window_view(b, (p, p))[ys, xs]], axis=1)
    y = label_map(alpha[ys + p // 2, xs + p // 2]).astype(np.uint8)
    return x, y


IGNORE = 255  # label of a region position that is not a training patch (boundary set)


def regions_from_pair(
    a: np.ndarray,
    b: np.ndarray,
    alpha: np.ndarray,
    *,
    n: int,
    region: int,
    patch_size: int,
    rng: np.random.Generator,
    boundary_only: bool = False,
    boundary_min_fraction: float = 0.10,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``n`` ``region x region`` pairs with the label of every patch inside them.

    A region holds ``(region - P + 1)^2`` patches; label ``[y, x]`` belongs to the patch
    whose top-left corner is ``(y, x)`` in the region, exactly as :func:`patches_from_pair`
    labels it (its centre pixel's alpha > 0.5).  With ``boundary_only`` the regions are
    centred on random boundary patches, and the non-boundary patches are labelled
    :data:`IGNORE`.  Dense training (:meth:`bamf_lib.models.FocusResNet.dense_logits`) learns
    from all of them in one pass.

    Returns ``X`` (n, 2, R, R) of the dtype of ``a`` and ``Y`` uint8 (n, R - P + 1, R - P + 1).
    """
    r, p = int(region), int(patch_size)
    h, w = alpha.shape
    if r < p or h < r or w < r:
        raise ValueError(f"need patch_size <= region <= the source pair's sides, got {p}, {r}, {alpha.shape}")
    labels = label_map(alpha[p // 2 : h - p + 1 + p // 2, p // 2 : w - p + 1 + p // 2]).astype(np.uint8)
    if boundary_only:
        inside = boundary_mask(alpha, p, boundary_min_fraction)
        labels = np.where(inside, labels, IGNORE).astype(np.uint8)
        allowed = np.flatnonzero(inside)
        if allowed.size == 0:
            return np.empty((0, 2, r, r), a.dtype), np.empty((0, r - p + 1, r - p + 1), np.uint8)
        cy, cx = np.divmod(allowed[rng.integers(0, allowed.size, n)], w - p + 1)
        ys = np.clip(cy - (r - p) // 2, 0, h - r)
        xs = np.clip(cx - (r - p) // 2, 0, w - r)
    else:
        ys, xs = np.divmod(rng.integers(0, (h - r + 1) * (w - r + 1), n), w - r + 1)
    x = np.stack([sliding_window_view(a, (r, r))[ys, xs], sliding_window_view(b, (r, r))[ys, xs]], axis=1)
    q = r - p + 1
    return x, sliding_window_view(labels, (q, q))[ys, xs].copy()


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
        x, y = regions_from_pair(pair.a, pair.b, pair.alpha, n=per_pair, region=region, patch_size=cfg.patch_size,
                                 rng=rng, boundary_only=boundary_only, boundary_min_fraction=cfg.boundary_min_fraction)
        xs.append(x)
        ys.append(y)
    X, Y = np.concatenate(xs), np.concatenate(ys)
    order = np.random.default_rng([cfg.seed, 4]).permutation(len(X))
    return X[order], Y[order]


def augment(x: np.ndarray, y: np.ndarray, *, n_transforms: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Add channel-swapped copies (opposite label), then ``n_transforms`` rotations/flips of all.

    Transform order: identity, rot90, rot180, rot270, flip-up-down, flip-left-right, and (for 8)
    the two transposes.  Output length ``2 * n_transforms * len(x)``.
    """
    if n_transforms not in (1, 6, 8):
        raise ValueError(f"n_transforms must be 1, 6 or 8, got {n_transforms}")
    x = np.concatenate([x, x[:, ::-1]])
    y = np.concatenate([y, 1 - y])
    views = [x, np.rot90(x, 1, (2, 3)), np.rot90(x, 2, (2, 3)), np.rot90(x, 3, (2, 3)),
             x[:, :, ::-1], x[:, :, :, ::-1], x.transpose(0, 1, 3, 2), x[:, :, ::-1, ::-1].transpose(0, 1, 3, 2)]
    views = views[:n_transforms]
    return np.concatenate(views), np.tile(y, len(views))


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
    bg = fit_background(bgs[bi][1], alpha.shape, rng)
    s_fg, s_bg = (float(rng.uniform(*cfg.sigma_range)) for _ in range(2))
    a, b = make_source_pair(fg, alpha, bg, sigma_fg=s_fg, sigma_bg=s_bg)
    a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    b = np.clip(np.rint(b), 0, 255).astype(np.uint8)
    return SourcePair(index, fg_name, bgs[bi][0], fg, bg, alpha, a, b, s_fg, s_bg), rng


def source_pair(cfg: SynthesisConfig, index: int = 0) -> SourcePair:
    """The ``index``-th (foreground, background) source pair exactly as the patch stream makes it.

    Example
    -------
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
        x, y = patches_from_pair(pair.a, pair.b, pair.alpha, n=n, patch_size=cfg.patch_size, rng=rng,
                                 boundary_only=boundary_only, boundary_min_fraction=cfg.boundary_min_fraction)
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

    Example
    -------
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
