"""Initial score maps: the paper's per-pixel patch evaluation, and a whole-image one.

``S(y, x)`` is the network's probability that source A is the focused one at pixel
``(y, x)``, computed from the ``P x P`` gray patch pair centred there.  For even ``P``
(the paper's 64) the "centre" is the pixel at index ``P // 2`` of the patch: the patch
covers rows ``y - P/2 .. y + P/2 - 1``.  Borders are reflect-padded (``d c b | a b c d``,
numpy's ``"reflect"``, OpenCV's ``BORDER_REFLECT_101``).

Paths
-----
``"reference"``
    Exactly the paper: one forward pass per pixel, batched.  Slow; for small crops.
``"strided"``
    The network's convolutions run once over the whole (tiled) image.  The pre-pool
    feature map comes out at stride 4; the linear layer is applied to it as a 1x1
    convolution (a linear layer commutes with the average pool), and a ``P/4 x P/4``
    average of that logit map is exactly the pooled logit of the patch whose centre falls
    on the stride grid.  Between grid points the logit is interpolated bilinearly.
``"dilated"``
    The same with strides turned into dilations ("a trous", :func:`~bamf_lib.nets.inference.dilated_copy`):
    a logit at every pixel, no interpolation, several times the work of ``"strided"``
    (stride squared, 16 for the paper's nets).
``"coarse-to-fine"``
    ``"strided"`` everywhere, then the reference path on the pixels whose strided score
    is uncertain (``|S - 0.5| < UNCERTAIN``): the paper's exact scores where the
    decision is made, at a cost that grows with the width of that band.
``"fast"``
    The default fast method, :data:`FAST_METHOD` = ``"strided"``, chosen by measurement.

Zero-padded nets (the paper's; the ``padded`` weights).  The whole-image paths differ from
the reference in one way only: inside a lone patch the convolutions see zeros beyond the
patch edge, over the whole image they see the neighbouring pixels.  So they are not
bit-identical, and the gap depends on the weights;
it is measured, not assumed.  Turning strides into dilations does not close it (the
strided logits *are* the dilated ones on the stride grid, and interpolating between grid
points adds no measurable disagreement), so the cheaper strided pass is the default.
Where exact paper scores matter, ``"coarse-to-fine"`` gives them on the uncertain band.

Padding-free nets.  A net built with ``ModelConfig(padding="valid")`` pads nothing, so each
feature depends on image pixels only and a lone patch sees exactly what the whole-image
pass sees: the strided logits are the reference's on the stride grid and the dilated ones
are the reference's at every pixel (equal in float32; the tests check 1e-5 on the score),
with no context margin around tiles.  For such a net with stride 1 throughout
(:attr:`~bamf_lib.nets.models.FocusResNet.dense_capable`, the ``exact`` profile) ``"strided"``,
``"dilated"`` and ``"fast"`` are one computation, the paper's per-patch scores at every
pixel, and only the cost differs from ``"reference"``.  For a strided padding-free net,
``"coarse-to-fine"`` re-scores, with the exact dense pass, the pixels within ``stride / 2``
of a change of decision or with a score within :data:`UNSURE_VALID` of 0.5.

Speed.  The whole-image paths run the network's :func:`~bamf_lib.nets.inference.cached_copy`
(BatchNorm folded into the convolutions, channels_last) and, on CPU,
:func:`~bamf_lib.nets.inference.fused_features` (each convolution fused with its ReLU and the
shortcut addition in one oneDNN primitive, when available).  It computes the same function
in a different float32 order; ``optimized=False`` runs the plain network.  Measured speeds
and agreements of the paths are printed by ``benchmarks/bench_scoring.py`` and
``benchmarks/bench_fuse.py`` and recorded in ``bamf_lib/weights/MODEL_CARD.md``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bamf_lib.config import SCORING_PATHS
from bamf_lib.nets.device import resolve_device
from bamf_lib.nets.inference import cached_copy, dilated_copy, fused_features
from bamf_lib.nets.models import FocusResNet, receptive_field

__all__ = ["score_map", "score_masked", "PATHS", "FAST_METHOD"]

PATHS = SCORING_PATHS
FAST_METHOD = "strided"
UNCERTAIN = 0.45  # coarse-to-fine re-scores pixels with |S - 0.5| < UNCERTAIN (padded nets)
UNSURE_VALID = 0.25  # ... and, for padding-free nets, these and the pixels next to a decision change
_REFINE_TILE = 64  # output tile side of the dense pass on those pixels
_TILE_BUDGET_BYTES = 384 * 2**20  # activations of one tile; keeps 24 MP well under 2 GB
_LIVE_TENSORS = 4  # full-size activations alive at once in a residual block, roughly
_MASK_TILE = 128  # output tile side for score_masked: small, so few unmasked pixels are scored


def _check_inputs(model: FocusResNet, a: np.ndarray, b: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if not hasattr(model, "config") or not hasattr(model, "features"):
        raise ValueError("model must be a FocusResNet from bamf_lib.nets.models.build_model/load_weights")
    if model.config.num_classes != 2:
        raise ValueError(f"model must have 2 classes, has {model.config.num_classes}")
    out = []
    for name, img in (("a", a), ("b", b)):
        img = np.asarray(img)
        if img.ndim != 2:
            raise ValueError(f"{name} must be a gray H x W image, got shape {img.shape}")
        if not np.issubdtype(img.dtype, np.floating):
            raise ValueError(
                f"{name} must be float gray in [0, 1], got dtype {img.dtype}; use bamf_lib.colour.to_float_gray"
            )
        lo, hi = float(img.min()), float(img.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        out.append(np.ascontiguousarray(img, dtype=np.float32))
    if out[0].shape != out[1].shape:
        raise ValueError(f"a and b differ in size: a {out[0].shape}, b {out[1].shape}")
    p = model.config.patch_size
    h, w = out[0].shape
    if h < p or w < p:
        raise ValueError(f"images are {h}x{w}, smaller than the network's {p}x{p} patch")
    return out[0], out[1]


def _padded_pair(a: np.ndarray, b: np.ndarray, before: int, after: int, device) -> torch.Tensor:
    pair = np.stack([a, b])
    pair = np.pad(pair, ((0, 0), (before, after), (before, after)), mode="reflect")
    return torch.from_numpy(pair).to(device)


class _Eval:
    """Put the model in eval mode on ``device`` for the duration, then restore it."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device

    def __enter__(self) -> torch.nn.Module:
        self.was_training = self.model.training
        self.old_device = next(self.model.parameters()).device
        self.inference = torch.inference_mode()
        self.inference.__enter__()
        return self.model.to(self.device).eval()

    def __exit__(self, *exc) -> None:
        self.inference.__exit__(*exc)
        self.model.to(self.old_device).train(self.was_training)


# --- reference path -------------------------------------------------------------------


def _reference(model, a, b, pixels: np.ndarray, device, batch_size: int, progress: bool) -> np.ndarray:
    """Scores of the flat pixel indices ``pixels``, one patch per pixel."""
    p = model.config.patch_size
    w = a.shape[1]
    pair = _padded_pair(a, b, p // 2, p // 2 - 1, device)
    # (2, H, W, P, P) view: patches[:, y, x] is the pair centred on (y, x); no copy
    patches = pair.unfold(1, p, 1).unfold(2, p, 1)
    scores = np.empty(len(pixels), np.float32)
    starts = range(0, len(pixels), batch_size)
    for s in tqdm(starts, desc="reference", unit="batch", disable=not progress):
        idx = torch.from_numpy(pixels[s : s + batch_size]).to(device)
        batch = patches[:, idx // w, idx % w].transpose(0, 1).contiguous()
        scores[s : s + batch_size] = torch.softmax(model(batch), 1)[:, 1].float().cpu().numpy()
    return scores


# --- whole-image paths ----------------------------------------------------------------


def _pooled_logit_gap(model: FocusResNet, feats: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """logit[1] - logit[0] of every patch (sigmoid of it = softmax[:, 1]): the head applied
    at every position (:meth:`~bamf_lib.nets.models.FocusResNet.pooled_logits`) with the
    difference of the linear layer's two rows."""
    fc = model.fc
    return model.pooled_logits(
        feats, dilation, weight=fc.weight[1:2] - fc.weight[0:1], bias=fc.bias[1:2] - fc.bias[0:1]
    )


# receptive_field builds (and initialises) a network: 10 ms a call, once per config is enough
_receptive_field = functools.lru_cache(maxsize=32)(receptive_field)


def _margin(model: FocusResNet) -> int:
    """Context added around a tile so tile seams do not show (features near a tile edge
    see zero padding); half the receptive field, capped at the patch size.  A padding-free
    net needs none: its features never see beyond the image."""
    if getattr(model, "valid", False):
        return 0
    s = model.total_stride
    m = min(_receptive_field(model.config) // 2, model.config.patch_size)
    return s * math.ceil(m / s)


def _tile_side(model: FocusResNet, dense: bool, margin: int) -> int:
    """Largest output tile whose activations fit in :data:`_TILE_BUDGET_BYTES`.

    Per input pixel: a few live activations of the widest stage, plus the unfolded
    (im2col) input of a 3x3 convolution, which CPU convolutions may allocate.
    """
    cfg, s = model.config, model.total_stride
    w = cfg.width
    if cfg.version == "v1":
        stage_ch = inner_ch = [w * int(m) for m in cfg.stage_widths]
    else:
        stage_ch, inner_ch = [4 * w, 8 * w, 16 * w], [w, 4 * w, 8 * w]
    cumulative = np.cumprod([cfg.stem_stride, *cfg.stage_strides])[1:]  # stride of each stage's output
    reduction = [1, 1, 1] if dense else [int(c) ** 2 for c in cumulative]
    bytes_per_px = 4 * (
        _LIVE_TENSORS * max(c / r for c, r in zip(stage_ch, reduction))
        + 9 * max(c / r for c, r in zip(inner_ch, reduction))
    )
    side = int(math.sqrt(_TILE_BUDGET_BYTES / bytes_per_px)) - model.config.patch_size - 2 * margin
    return max(s * 8, s * (side // s))


def _tiles(h: int, w: int, side: int, mask: np.ndarray | None) -> Iterator[tuple[int, int, int, int]]:
    for y0 in range(0, h, side):
        for x0 in range(0, w, side):
            y1, x1 = min(y0 + side, h), min(x0 + side, w)
            if mask is None or mask[y0:y1, x0:x1].any():
                yield y0, y1, x0, x1


def _features(model: FocusResNet, region: torch.Tensor, fast: bool) -> torch.Tensor:
    if fast:  # model is an inference copy
        return fused_features(model, region.contiguous(memory_format=torch.channels_last))
    return model.features(region)


def _strided_tile(model, pair, pad, y0, y1, x0, x1, margin, fast) -> torch.Tensor:
    """Scores of output pixels [y0, y1) x [x0, x1); y0, x0 on the stride grid."""
    s, p = model.total_stride, model.config.patch_size
    ny, nx = -(-(y1 - 1 - y0) // s) + 1, -(-(x1 - 1 - x0) // s) + 1  # grid points covering the tile
    top, left = pad + y0 - p // 2 - margin, pad + x0 - p // 2 - margin
    region = pair[None, :, top : top + (ny - 1) * s + p + 2 * margin, left : left + (nx - 1) * s + p + 2 * margin]
    off = margin // s
    gap = _pooled_logit_gap(model, _features(model, region, fast))[:, :, off : off + ny, off : off + nx]
    if s > 1:  # bilinear between grid points; align_corners=True puts grid point i exactly on pixel i * s
        gap = F.interpolate(gap, size=((ny - 1) * s + 1, (nx - 1) * s + 1), mode="bilinear", align_corners=True)
    return torch.sigmoid(gap[0, 0, : y1 - y0, : x1 - x0])


def _dilated_tile(dense, pair, pad, y0, y1, x0, x1, margin, fast) -> torch.Tensor:
    """Scores of output pixels [y0, y1) x [x0, x1), one per pixel."""
    d, p = dense.dilation, dense.config.patch_size
    top, left = pad + y0 - p // 2 - margin, pad + x0 - p // 2 - margin
    region = pair[None, :, top : top + (y1 - y0) + p - 1 + 2 * margin, left : left + (x1 - x0) + p - 1 + 2 * margin]
    # a patch's pool takes the final_size^2 features that sit d pixels apart
    gap = _pooled_logit_gap(dense, _features(dense, region, fast)[:, :, margin:, margin:], dilation=d)
    return torch.sigmoid(gap[0, 0, : y1 - y0, : x1 - x0])


def _whole_image(model, a, b, method, device, mask, progress, tile=None, fast=True) -> np.ndarray:
    h, w = a.shape
    margin = _margin(model)
    pad = model.config.patch_size // 2 + margin + model.total_stride
    pair = _padded_pair(a, b, pad, pad, device)
    out = np.full((h, w), np.nan, np.float32)
    net = cached_copy(model, method == "dilated") if fast else (dilated_copy(model) if method == "dilated" else model)
    side = tile or (_MASK_TILE if mask is not None else _tile_side(model, method == "dilated", margin))
    side = model.total_stride * max(1, side // model.total_stride)  # tiles start on the stride grid
    run = _dilated_tile if method == "dilated" else _strided_tile
    for y0, y1, x0, x1 in tqdm(list(_tiles(h, w, side, mask)), desc=method, unit="tile", disable=not progress):
        out[y0:y1, x0:x1] = run(net, pair, pad, y0, y1, x0, x1, margin, fast).float().cpu().numpy()
    if mask is not None:
        out[~mask] = np.nan
    return out


def _near_decision(scores: np.ndarray, stride: int) -> np.ndarray:
    """Pixels whose interpolated decision may be wrong: those within ``stride // 2`` of a
    change of decision (``scores > 0.5``) or with a score within :data:`UNSURE_VALID` of 0.5.
    NaN (unscored) pixels are never included."""
    scored = ~np.isnan(scores)
    decision = (np.nan_to_num(scores, nan=0.5) > 0.5).astype(np.uint8)
    kernel = np.ones((stride + 1, stride + 1), np.uint8)
    edge = cv2.dilate(decision, kernel) != cv2.erode(decision, kernel)
    with np.errstate(invalid="ignore"):
        close = np.abs(scores - 0.5) < UNSURE_VALID
    return (edge | close) & scored


def _dispatch(model, a, b, mask, path, device, batch_size, progress, tile, optimized) -> np.ndarray:
    method = FAST_METHOD if path == "fast" else path
    if method == "reference":
        h, w = a.shape
        pixels = np.flatnonzero(mask) if mask is not None else np.arange(h * w)
        out = np.full(h * w, np.nan, np.float32)
        out[pixels] = _reference(model, a, b, pixels, device, batch_size, progress)
        return out.reshape(h, w)
    if method == "coarse-to-fine":
        out = _whole_image(model, a, b, "strided", device, mask, progress, tile, optimized)
        if getattr(model, "dense_capable", False):  # stride 1, no padding: already the reference everywhere
            return out
        if getattr(model, "valid", False):
            # exact on the stride grid already; the dense pass is exact everywhere
            unsure = _near_decision(out, model.total_stride)
            if mask is not None:
                unsure &= mask
            if unsure.any():
                dense = _whole_image(model, a, b, "dilated", device, unsure, progress, _REFINE_TILE, optimized)
                out[unsure] = dense[unsure]
            return out
        unsure = np.abs(out - 0.5) < UNCERTAIN  # NaN compares False: masked-out pixels stay out
        pixels = np.flatnonzero(unsure)
        if len(pixels):
            out.flat[pixels] = _reference(model, a, b, pixels, device, batch_size, progress)
        return out
    return _whole_image(model, a, b, method, device, mask, progress, tile, optimized)


def score_map(
    model: FocusResNet,
    a: np.ndarray,
    b: np.ndarray,
    *,
    path: str = "fast",
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    progress: bool = False,
    tile: int | None = None,
    optimized: bool = True,
) -> np.ndarray:
    """Initial score map: probability that ``a`` is the focused source, per pixel.

    Parameters
    ----------
    model : FocusResNet
        A network from :func:`~bamf_lib.nets.models.build_model` or ``load_weights``.
    a, b : ndarray
        Float gray images in [0, 1], same size ``H x W``, at least the patch size.
    path : {"fast", "reference", "strided", "dilated", "coarse-to-fine"}
        How to evaluate; see the module docstring.  ``"reference"`` is the paper's
        one-patch-per-pixel evaluation (slow).
    device : str or torch.device
        Where the network runs: "cpu", "cuda", "cuda:N", or "auto" (CUDA when present).
    batch_size : int
        Patches per forward pass (reference path).
    progress : bool
        Show a tqdm progress bar.
    tile : int, optional
        Output tile side of the whole-image paths (default: from a memory budget).
    optimized : bool
        Run the whole-image paths on the model's :func:`~bamf_lib.nets.inference.cached_copy`
        (BatchNorm folded, channels_last; the same function in another float32 order, faster
        on CPU).  False runs the model as it is.

    Returns
    -------
    ndarray
        float32 ``H x W`` in [0, 1].

    Examples
    --------
    >>> from bamf_lib.config import ModelConfig
    >>> from bamf_lib.nets.models import build_model
    >>> net = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16))
    >>> a = np.random.default_rng(0).random((40, 50), dtype=np.float32)
    >>> score_map(net, a, a[::-1].copy()).shape
    (40, 50)
    """
    a, b = _check_inputs(model, a, b, path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = resolve_device(device)
    with _Eval(model, device) as net:
        return _dispatch(net, a, b, None, path, device, batch_size, progress, tile, optimized)


def score_masked(
    model: FocusResNet,
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray,
    *,
    path: str = "fast",
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    progress: bool = False,
    optimized: bool = True,
) -> np.ndarray:
    """Scores only where ``mask`` is True (NaN elsewhere); cost grows with the mask.

    Boundary refinement uses this to re-score the near-FDB band with the boundary
    network.  The whole-image paths evaluate only the small tiles that contain mask
    pixels; the reference path only the masked pixels.  Parameters as
    :func:`score_map`, plus ``mask``, a boolean ``H x W`` array.

    Returns
    -------
    ndarray
        float32 ``H x W``: scores in [0, 1] on the mask, NaN off it.
    """
    a, b = _check_inputs(model, a, b, path)
    mask = np.asarray(mask)
    if mask.shape != a.shape:
        raise ValueError(f"mask has shape {mask.shape}, the images {a.shape}")
    mask = mask.astype(bool)
    device = resolve_device(device)
    with _Eval(model, device) as net:
        return _dispatch(net, a, b, mask, path, device, batch_size, progress, None, optimized)
