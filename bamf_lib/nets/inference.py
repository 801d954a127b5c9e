"""Faster copies of a trained network for inference; the plain network is the reference.

* :func:`dilated_copy`: strides turned into dilations ("a trous"), a feature at every pixel;
* :func:`inference_copy`: BatchNorm folded into the convolutions, channels_last;
* :func:`fused_features`: the features of an inference copy with each convolution, its ReLU
  and the shortcut addition run as one oneDNN primitive on CPU.  That primitive is torch's
  private ``torch.ops.mkldnn._convolution_pointwise`` (the op ``torch.compile`` emits on
  CPU), so it is guarded: it is used only after a one-time probe (:func:`onednn_fusion_available`)
  shows it exists and computes ``relu(conv(x) + other)``; otherwise the plain
  :meth:`~bamf_lib.nets.models.FocusResNet.features` runs.
* :func:`cached_copy`: the inference copy :mod:`bamf_lib.nets.scoring` uses, built once per
  model and rebuilt when its weights change.

All compute the function of ``model.eval()``, up to float32 rounding (about 1e-6 on the
logits of the shipped weights; ``tests/test_inference.py`` checks the paths agree).
"""

from __future__ import annotations

import copy
import functools
import types
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from bamf_lib.nets.models import FocusResNet

__all__ = ["dilated_copy", "inference_copy", "fused_features", "onednn_fusion_available", "cached_copy"]


def dilated_copy(model: FocusResNet) -> FocusResNet:
    """A copy of ``model`` whose strided convolutions run at stride 1, later ones dilated.

    The copy's :meth:`~FocusResNet.features` is the original's feature map evaluated at
    every pixel offset ("a trous"): output position ``p`` equals the strided network's
    output for the input shifted so that ``p`` falls on its sampling grid.  Its
    ``dilation`` holds the final dilation (the original's total stride).
    """
    dense = copy.deepcopy(model)
    stem = dense.stem[0]
    dilation = stem.stride[0]  # the stem samples the image itself; everything after it at its stride
    stem.stride = (1, 1)
    for block in dense.blocks:
        for conv in block.main_convs:
            stride = conv.stride[0]
            # the strided conv itself samples at the old spacing; everything after it at the new
            if conv.kernel_size[0] > 1:
                conv.dilation = (conv.dilation[0] * dilation,) * 2  # a stage's own dilation, times the strides before
                if not model.valid:
                    conv.padding = (dilation * (conv.kernel_size[0] // 2),) * 2
            if stride > 1:
                conv.stride = (1, 1)
                dilation *= stride
        if block.shortcut is not None:
            block.shortcut.stride = (1, 1)
    dense.total_stride = 1
    dense.dilation = dilation
    return dense


def inference_copy(model: FocusResNet) -> FocusResNet:
    """A copy of ``model`` for fast CPU/GPU inference: BatchNorm folded, channels_last.

    Every batch normalisation that directly follows a convolution is folded into it
    (eval-mode statistics; ``torch.nn.utils.fusion.fuse_conv_bn_eval``) and the weights
    are stored channels_last, which lets oneDNN pick its blocked kernels on CPU.  The
    copy computes the same function as ``model.eval()`` up to float32 rounding (about
    1e-6 on the logits of the shipped weights); feed it channels_last inputs.  The
    pre-activation BNs of ``"v2"`` blocks follow an addition, not a convolution, and stay.

    Examples
    --------
    >>> from bamf_lib.config import ModelConfig
    >>> from bamf_lib.nets.models import build_model
    >>> net = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16)).eval()
    >>> x = torch.rand(3, 2, 16, 16)
    >>> bool(torch.allclose(inference_copy(net)(x), net(x), atol=1e-5))
    True
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(model).eval()
    fast.stem[0] = fuse_conv_bn_eval(fast.stem[0], fast.stem[1])
    fast.stem[1] = nn.Identity()
    pairs = (
        (("conv1", "bn1"), ("conv2", "bn2")) if model.config.version == "v1" else (("conv1", "bn2"), ("conv2", "bn3"))
    )
    for block in fast.blocks:
        for conv, bn in pairs:
            setattr(block, conv, fuse_conv_bn_eval(getattr(block, conv), getattr(block, bn)))
            setattr(block, bn, nn.Identity())
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)


def _onednn_conv(
    conv: nn.Conv2d, x: torch.Tensor, other: torch.Tensor | None = None, relu: bool = True
) -> torch.Tensor:
    """``relu(conv(x) [+ other])`` as one oneDNN primitive (the op torch.compile emits on CPU);
    ``conv`` is anything with a convolution's weight, bias, padding, stride, dilation and groups."""
    args = (conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups)
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(x, *args, "relu" if relu else "none", [], "")
    return torch.ops.mkldnn._convolution_pointwise(x, other, *args, "add", None, "relu" if relu else "none", [], "")


@functools.lru_cache(maxsize=1)
def onednn_fusion_available() -> bool:
    """Whether torch's private fused convolution exists here and computes ``relu(conv(x))``
    and ``relu(conv(x) + other)`` (checked once, on a 9 x 9 input; no global RNG is used)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return False
    g = torch.Generator().manual_seed(0)
    conv = types.SimpleNamespace(
        weight=torch.randn(4, 2, 3, 3, generator=g),
        bias=torch.randn(4, generator=g),
        padding=(0, 0),
        stride=(1, 1),
        dilation=(1, 1),
        groups=1,
    )
    x = torch.rand(1, 2, 9, 9, generator=g).contiguous(memory_format=torch.channels_last)
    other = torch.randn(1, 4, 7, 7, generator=g).contiguous(memory_format=torch.channels_last)
    plain = F.conv2d(x, conv.weight, conv.bias)
    try:
        with torch.no_grad():
            return bool(
                torch.allclose(_onednn_conv(conv, x), F.relu(plain), atol=1e-5)
                and torch.allclose(_onednn_conv(conv, x, other), F.relu(plain + other), atol=1e-5)
            )
    except (RuntimeError, TypeError):  # the private op changed its signature or refuses this build
        return False


def _can_fuse(model: FocusResNet, x: torch.Tensor) -> bool:
    return (
        model.config.version == "v1"
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and isinstance(model.stem[1], nn.Identity)
        and onednn_fusion_available()
    )


def fused_features(model: FocusResNet, x: torch.Tensor) -> torch.Tensor:
    """:meth:`FocusResNet.features` of an :func:`inference_copy`, faster on CPU.

    For ``"v1"`` on CPU every convolution is fused with the ReLU and, in the second
    convolution of a block, the shortcut addition that follow it, into one oneDNN
    primitive each (no separate passes over the activations; ``benchmarks/bench_scoring.py``
    measures the gain).  Elsewhere (GPU, ``"v2"``, a torch whose fused op is
    missing or fails :func:`onednn_fusion_available`) it is ``model.features(x)``.
    Inference only: no gradients flow through the fused ops.
    """
    if not _can_fuse(model, x):
        return model.features(x)
    x = _onednn_conv(model.stem[0], x)
    for block in model.blocks:
        y = _onednn_conv(block.conv1, x)
        shrink = 2 * block.conv2.dilation[0] if block.valid else 0  # what conv2 will take off
        x = block.shortcut_input(x, (y.shape[-2] - shrink, y.shape[-1] - shrink))
        identity = x if block.shortcut is None else _onednn_conv(block.shortcut, x, relu=False)
        x = _onednn_conv(block.conv2, y, identity.contiguous(memory_format=torch.channels_last))
    return x


# model -> (fingerprint, {dense: inference copy}); dropped with the model
_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_copy(model: FocusResNet, dense: bool = False) -> FocusResNet:
    """:func:`inference_copy` of ``model`` (the faster copy scoring runs), :func:`dilated_copy`
    of it for ``dense``, built once per model.

    The fingerprint (storage and in-place version of every parameter and buffer) changes
    when the model is trained further, moved or reloaded, and the copy is rebuilt.
    """
    state = [*model.parameters(), *model.buffers()]
    key = tuple((t.device, t.data_ptr(), t._version) for t in state)
    entry = _COPIES.get(model)
    if entry is None or entry[0] != key:
        entry = _COPIES[model] = (key, {})
    if dense not in entry[1]:
        with torch.inference_mode(False), torch.no_grad():
            fast = inference_copy(model)
            entry[1][dense] = dilated_copy(fast) if dense else fast
    return entry[1][dense]
