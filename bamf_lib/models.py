"""The 2-channel CIFAR-style ResNet of the paper ("Res56"), in both of its readings.

The network sees a gray patch of source A (channel 0) and the same patch of source B
(channel 1) and returns two logits; ``softmax(logits)[:, 1]`` is the probability that
A is the focused one at the patch centre.

* ``version="v1"``: basic blocks (two 3x3 convolutions), depth = 6n + 2, stage widths
  w, 2w, 4w (the Keras CIFAR-10 example's ``resnet_v1``).
* ``version="v2"``: pre-activation bottlenecks (1x1, 3x3, 1x1), depth = 9n + 2, stage
  outputs 4w, 8w, 16w (the Keras example's ``resnet_v2``; the authors' code names its
  model ``ResNet56v2``).

Both have three stages with strides 1, 2, 2 (total stride 4), a global average pool and
a linear layer to two classes.  Dense evaluation (see :mod:`bamf_lib.scoring`) needs the
pre-pool feature map (:meth:`FocusResNet.features`), the head applied at every position
(:meth:`FocusResNet.pooled_logits`), the total stride (``.total_stride``) and a copy with
strides turned into dilations (:func:`dilated_copy`).

The shipped default (profile ``exact``) is a third shape of ``"v1"``: no padding, stride 1,
dilated stages and a centre-weighted pool (``ModelConfig(padding="valid", ...)``).  Such a
net computes on a whole image exactly what it computes on each patch alone
(:attr:`FocusResNet.dense_capable`, :meth:`FocusResNet.dense_logits`), which makes both
scoring and training a pass over whole regions.

Weights are stored as safetensors with the :class:`~bamf_lib.config.ModelConfig` and
free-form metadata as JSON in the header; nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bamf_lib.config import ModelConfig
from bamf_lib.io import atomic_write

__all__ = [
    "resolve_device",
    "BasicBlock",
    "PreActBottleneck",
    "FocusResNet",
    "build_model",
    "dilated_copy",
    "inference_copy",
    "fused_features",
    "save_weights",
    "load_weights",
    "load_pretrained",
    "weights_path",
    "weights_folder",
    "param_count",
    "receptive_field",
    "architecture_table",
    "WEIGHTS_DIR",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _conv(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = False, pad: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2 if pad else 0, bias=bias)


class BasicBlock(nn.Module):
    """v1 block: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

    As in the Keras example, a shape-changing shortcut is a strided 1x1 convolution
    without batch normalisation.  With ``valid=True`` the 3x3 convolutions pad nothing
    and the shortcut takes the centre of ``x`` that lines up with the output
    (:meth:`shortcut_input`).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, *, first_in_net: bool = False, valid: bool = False) -> None:
        super().__init__()
        self.valid = valid
        self.conv1 = _conv(in_ch, out_ch, 3, stride, pad=not valid)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = _conv(out_ch, out_ch, 3, pad=not valid)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_ch != out_ch
        self.shortcut = _conv(in_ch, out_ch, 1, stride, bias=True) if needs_projection else None

    @property
    def main_convs(self) -> list[nn.Conv2d]:
        """Convolutions of the residual branch, in the order the data meets them."""
        return [self.conv1, self.conv2]

    def shortcut_input(self, x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        """The part of ``x`` the shortcut sees: all of it, or (valid) the window under the
        block's ``out_hw``-sized output.

        Output ``j`` of two unpadded 3x3 convolutions sits over input ``j * stride + c``
        with ``c = dilation1 + dilation2 * stride1``; this holds for the strided network
        and for its :func:`dilated_copy` alike.
        """
        if not self.valid:
            return x
        s = self.conv1.stride[0]  # a strided block has a projection, which strides by itself
        c = self.conv1.dilation[0] + self.conv2.dilation[0] * s
        return x[..., c : c + s * (out_hw[0] - 1) + 1, c : c + s * (out_hw[1] - 1) + 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        x = self.shortcut_input(x, y.shape[-2:])
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(y + identity)


class PreActBottleneck(nn.Module):
    """v2 block: (BN-ReLU-conv1x1), BN-ReLU-conv3x3, BN-ReLU-conv1x1, plus the shortcut.

    The stride sits on the first 1x1 convolution, as in the Keras example.  The very
    first block of the net skips its first BN-ReLU (the stem has just applied one).
    """

    expansion = 4

    def __init__(self, in_ch: int, width: int, out_ch: int, stride: int = 1, *, first_in_net: bool = False) -> None:
        super().__init__()
        # not in place: the shortcut needs the block input before its BN-ReLU
        self.pre = nn.Identity() if first_in_net else nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=False))
        self.conv1 = _conv(in_ch, width, 1, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = _conv(width, width, 3)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = _conv(width, out_ch, 1)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_ch != out_ch
        self.shortcut = _conv(in_ch, out_ch, 1, stride, bias=True) if needs_projection else None

    @property
    def main_convs(self) -> list[nn.Conv2d]:
        """Convolutions of the residual branch, in the order the data meets them."""
        return [self.conv1, self.conv2, self.conv3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.pre(x))
        y = self.conv2(self.relu(self.bn2(y)))
        y = self.conv3(self.relu(self.bn3(y)))
        identity = x if self.shortcut is None else self.shortcut(x)
        return y + identity


class FocusResNet(nn.Module):
    """Three-stage CIFAR ResNet on 2-channel patch pairs; see the module docstring.

    Parameters
    ----------
    config : ModelConfig
        Version, depth, width, patch size, channels and classes.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.metadata: dict[str, Any] = {}
        w = config.width
        self.valid = config.padding == "valid"
        self.stem = nn.Sequential(_conv(config.in_channels, w, 3, config.stem_stride, pad=not self.valid),
                                  nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        if config.version == "v1":
            blocks_per_stage = (config.depth - 2) // 6
            stage_out = [w * int(m) for m in config.stage_widths]
            self._in_ch = w
            self.layer1, self.layer2, self.layer3 = (
                self._make_layer(out, blocks_per_stage, stride, first_stage=i == 0)
                for i, (out, stride) in enumerate(zip(stage_out, config.stage_strides))
            )
            for layer, d in zip((self.layer1, self.layer2, self.layer3), config.stage_dilations):
                for block in layer:
                    for conv in block.main_convs:
                        conv.dilation = (int(d), int(d))
            self.post = nn.Identity()
        else:
            blocks_per_stage = (config.depth - 2) // 9
            # Keras resnet_v2: bottleneck widths w, 4w, 8w; stage outputs 4x, 2x, 2x their input
            bottleneck = [w, 4 * w, 8 * w]
            stage_out = [PreActBottleneck.expansion * w, 8 * w, 16 * w]
            self._in_ch = w
            self.layer1, self.layer2, self.layer3 = (
                self._make_layer(out, blocks_per_stage, stride, first_stage=i == 0, width=bw)
                for i, (bw, out, stride) in enumerate(zip(bottleneck, stage_out, config.stage_strides))
            )
            self.post = nn.Sequential(nn.BatchNorm2d(stage_out[-1]), nn.ReLU(inplace=True))
        self.feature_channels = stage_out[-1]
        self.total_stride = config.stem_stride
        for s in config.stage_strides:
            self.total_stride *= s
        self.final_size = self._final_size(config.patch_size)
        if self.final_size < 1:
            raise ValueError(f"a {config.padding}-padded {config.version}-{config.depth} with stem stride "
                             f"{config.stem_stride} needs a larger patch than {config.patch_size}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        if config.head == "centre":  # width of the Gaussian pool, as a fraction of the map: softplus(-0.43) = 0.5
            self.pool_width = nn.Parameter(torch.tensor(-0.4328))
        self.fc = nn.Linear(self.feature_channels, config.num_classes)
        self._init_weights()

    def _final_size(self, n: int) -> int:
        """Side of the pre-pool feature map for an ``n x n`` input."""
        def conv(n: int, stride: int, dilation: int = 1) -> int:
            return (n - 2 * dilation - 1) // stride + 1 if self.valid else -(-n // stride)
        n = conv(n, self.config.stem_stride)
        for block in self.blocks:
            for c in block.main_convs:
                n = conv(n, c.stride[0], c.dilation[0]) if c.kernel_size[0] == 3 else -(-n // c.stride[0])
        return n

    def _make_layer(self, out_ch: int, blocks: int, stride: int, *, first_stage: bool, width: int | None = None) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            first_in_net = first_stage and i == 0
            block_stride = stride if i == 0 else 1
            if self.config.version == "v1":
                layers.append(BasicBlock(self._in_ch, out_ch, block_stride, first_in_net=first_in_net,
                                         valid=self.config.padding == "valid"))
            else:
                layers.append(PreActBottleneck(self._in_ch, width, out_ch, block_stride, first_in_net=first_in_net))
            self._in_ch = out_ch
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def blocks(self) -> list[nn.Module]:
        """All residual blocks, in order."""
        return [*self.layer1, *self.layer2, *self.layer3]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before the global average pool: (N, C, H/stride, W/stride)."""
        x = self.stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.post(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for patch pairs ``x`` of shape (N, 2, P, P) in [0, 1]."""
        p = self.config.patch_size
        if x.shape[-2:] != (p, p) and self.dense_capable:
            return self.dense_logits(x)
        feats = self.features(x)
        if self.config.head == "centre":
            return self.fc((feats * self.pool_kernel()[0]).sum((2, 3)))
        return self.fc(torch.flatten(self.pool(feats), 1))

    @property
    def dense_capable(self) -> bool:
        """Padding-free and stride 1 throughout: one pass over a region computes every patch."""
        return self.valid and self.total_stride == 1

    def dense_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every ``P x P`` patch of ``x`` (N, 2, H) at once: (N, classes, H - P + 1, W - P + 1).

        Entry ``[:, :, y, x]`` equals ``self(x[..., y : y + P, x : x + P])`` exactly (the
        linear head commutes with the pool), at a fraction of the cost; training on regions
        this way sees thousands of labelled patches per forward pass.  Only for
        :attr:`dense_capable` nets.
        """
        if not self.dense_capable:
            raise ValueError("dense_logits needs a padding-free net with stride 1 (padding='valid', all strides 1)")
        return self.pooled_logits(self.features(x))

    def pooled_logits(self, feats: torch.Tensor, dilation: int = 1, weight: torch.Tensor | None = None,
                      bias: torch.Tensor | None = None) -> torch.Tensor:
        """The head applied at every position of a pre-pool feature map: the logits
        (N, classes, h', w') of every patch whose last-stage features lie in ``feats``.

        The linear layer runs as a 1x1 convolution and the pool (:meth:`pool_kernel`) as a
        ``final_size`` convolution (two 1-D passes: it is separable), ``dilation`` apart in a
        :func:`dilated_copy`; both are linear, so this equals pooling first, as
        :meth:`forward` does.  ``weight`` (outputs x channels) and ``bias`` replace the
        linear layer's, e.g. by the difference of its two rows, which gives the logit gap
        without subtracting two large pooled logits.
        """
        weight = self.fc.weight if weight is None else weight
        bias = self.fc.bias if bias is None else bias
        logits = F.conv2d(feats, weight[:, :, None, None])
        n, c, h, w = logits.shape
        # the pool kernels (box, Gaussian) are outer products: two 1-D passes, 2f instead of f^2 per pixel
        kernel = self.pool_kernel().to(logits.dtype)[0, 0]
        col = kernel.sum(1)
        row = kernel[int(col.argmax())] / col.max()
        pooled = F.conv2d(logits.reshape(n * c, 1, h, w), col.view(1, 1, -1, 1), dilation=(dilation, 1))
        pooled = F.conv2d(pooled, row.view(1, 1, 1, -1), dilation=(1, dilation))
        return pooled.reshape(n, c, *pooled.shape[-2:]) + bias.view(1, -1, 1, 1)

    def pool_kernel(self) -> torch.Tensor:
        """The head's pooling over the last ``final_size`` square as a (1, 1, f, f) kernel
        summing to 1: the average (``"gap"``), or a Gaussian centred on the feature under the
        patch centre, of learned width ``softplus(pool_width) * f`` (``"centre"``)."""
        f = self.final_size
        if self.config.head == "centre":
            r = torch.arange(f, dtype=self.pool_width.dtype, device=self.pool_width.device) - f // 2
            sigma = F.softplus(self.pool_width) * f
            g = torch.exp(-0.5 * (r / sigma) ** 2)
            w = g[:, None] * g[None, :]
            return (w / w.sum()).view(1, 1, f, f)
        return torch.full((1, 1, f, f), 1.0 / (f * f), dtype=self.fc.weight.dtype, device=self.fc.weight.device)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device to run on: ``"auto"`` is CUDA when present, else the CPU.

    ``"cuda"`` without an index is this process's GPU (torchrun's ``LOCAL_RANK``, else 0).
    Anything but ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, and CUDA on a machine
    without it, is a ``ValueError``.
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for, but torch sees no CUDA GPU here; use 'cpu' or 'auto'")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return dev


def build_model(cfg: ModelConfig) -> FocusResNet:
    """Build a freshly initialised network for ``cfg``.

    Examples
    --------
    >>> from bamf_lib.config import ModelConfig
    >>> net = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16))
    >>> net(torch.zeros(3, 2, 16, 16)).shape
    torch.Size([3, 2])
    """
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"cfg must be a ModelConfig, got {type(cfg).__name__}")
    return FocusResNet(cfg)


def dilated_copy(model: FocusResNet) -> FocusResNet:
    """A copy of ``model`` whose strided convolutions run at stride 1, later ones dilated.

    The copy's :meth:`~FocusResNet.features` is the original's feature map evaluated at
    every pixel offset ("a trous"): output position ``p`` equals the strided network's
    output for the input shifted so that ``p`` falls on its sampling grid.  Its
    ``dilation`` attribute holds the final dilation (the original's total stride).
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
    >>> net = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16)).eval()
    >>> x = torch.rand(3, 2, 16, 16)
    >>> bool(torch.allclose(inference_copy(net)(x), net(x), atol=1e-5))
    True
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(model).eval()
    fast.stem[0] = fuse_conv_bn_eval(fast.stem[0], fast.stem[1])
    fast.stem[1] = nn.Identity()
    pairs = (("conv1", "bn1"), ("conv2", "bn2")) if model.config.version == "v1" else (("conv1", "bn2"), ("conv2", "bn3"))
    for block in fast.blocks:
        for conv, bn in pairs:
            setattr(block, conv, fuse_conv_bn_eval(getattr(block, conv), getattr(block, bn)))
            setattr(block, bn, nn.Identity())
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)


def _onednn_conv(conv: nn.Conv2d, x: torch.Tensor, other: torch.Tensor | None = None, relu: bool = True) -> torch.Tensor:
    """``relu(conv(x) [+ other])`` as one oneDNN primitive (the op torch.compile emits on CPU)."""
    args = (conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups)
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(x, *args, "relu" if relu else "none", [], "")
    return torch.ops.mkldnn._convolution_pointwise(x, other, *args, "add", None, "relu" if relu else "none", [], "")


def _can_fuse(model: FocusResNet, x: torch.Tensor) -> bool:
    return (model.config.version == "v1" and x.device.type == "cpu" and x.dtype == torch.float32
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
            and isinstance(model.stem[1], nn.Identity))


def fused_features(model: FocusResNet, x: torch.Tensor) -> torch.Tensor:
    """:meth:`FocusResNet.features` of an :func:`inference_copy`, faster on CPU.

    For ``"v1"`` on CPU every convolution is fused with the ReLU and, in the second
    convolution of a block, the shortcut addition that follow it, into one oneDNN
    primitive each (no separate passes over the activations: about 1.3x faster than the
    folded eager network on 2 cores).  Elsewhere (GPU, ``"v2"``, a torch without oneDNN)
    it is ``model.features(x)``.  Inference only: no gradients flow through the fused ops.
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


def param_count(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def receptive_field(cfg: ModelConfig) -> int:
    """Theoretical receptive field (pixels, one side) of one pre-pool feature.

    Counted along the longest path (every residual branch), so it bounds how far a
    pixel can influence one feature.  A patch's score pools features over the whole
    patch, so the score depends on the patch only; compare this with ``patch_size`` to
    see how much of the patch each feature can see.
    """
    model = build_model(cfg)
    rf, jump = 1, 1
    convs = [model.stem[0]] + [c for b in model.blocks for c in b.main_convs]
    for conv in convs:
        rf += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
        jump *= conv.stride[0]
    return rf


def architecture_table(cfg: ModelConfig) -> list[dict[str, Any]]:
    """One row per stage of the network for ``cfg``: what it is, its output and parameters.

    Keys: ``stage``, ``layers`` (a short description), ``channels`` (output), ``stride``
    (of the stage), ``size`` (output side for a ``patch_size`` input) and ``params``.
    """
    model = build_model(cfg)
    x = torch.zeros(1, cfg.in_channels, cfg.patch_size, cfg.patch_size)
    rows = []
    kind = "basic 3x3-3x3" if cfg.version == "v1" else "pre-act bottleneck 1x1-3x3-1x1"
    parts = [("stem", "conv3x3-BN-ReLU", model.stem, 1)]
    for i, (layer, stride) in enumerate(zip((model.layer1, model.layer2, model.layer3), cfg.stage_strides), 1):
        inner = "" if cfg.version == "v1" else f" (inner width {layer[0].conv2.out_channels})"
        parts.append((f"stage {i}", f"{len(layer)} x {kind}{inner}", layer, stride))
    with torch.no_grad():
        for name, desc, module, stride in parts:
            x = module(x)
            rows.append({"stage": name, "layers": desc, "channels": x.shape[1], "stride": stride,
                         "size": x.shape[-1], "params": param_count(module)})
    pool = "global average pool" if cfg.head == "gap" else f"centre-weighted (Gaussian) pool over {model.final_size}x{model.final_size}"
    rows.append({"stage": "head", "layers": ("BN-ReLU, " if cfg.version == "v2" else "")
                 + f"{pool}, linear {model.feature_channels} -> {cfg.num_classes}",
                 "channels": cfg.num_classes, "stride": 1, "size": 1,
                 "params": param_count(model) - sum(r["params"] for r in rows)})
    return rows


def save_weights(model: FocusResNet, path: str | os.PathLike, metadata: dict | None = None, *, overwrite: bool = True) -> Path:
    """Write ``model``'s state as safetensors, atomically, with config and metadata JSON.

    Parameters
    ----------
    model : FocusResNet
        The network; its ``.config`` is stored under the header key ``"config"``.
    path : path-like
        Destination ``.safetensors`` file.
    metadata : dict, optional
        JSON-serialisable facts (profile, epochs, accuracy, data, seed ...), stored
        under the header key ``"metadata"``.
    overwrite : bool
        Replace an existing file (default True: checkpoints are rewritten each epoch).

    Returns
    -------
    Path
        ``path``.
    """
    from safetensors.torch import save_file

    if not hasattr(model, "config"):
        raise ValueError("model has no .config; build it with build_model(cfg)")
    metadata = dict(metadata or {})
    try:
        header = {"config": json.dumps(asdict(model.config)), "metadata": json.dumps(metadata)}
    except TypeError as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp), metadata=header)
    return path


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> FocusResNet:
    """Load a network written by :func:`save_weights`; returns it in eval mode.

    The result carries ``.config`` (ModelConfig) and ``.metadata`` (dict).  Only
    safetensors files are accepted: a pickled checkpoint raises ``ValueError``.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a safetensors file ({exc}); pickled checkpoints are not loaded") from None
    if "config" not in header:
        raise ValueError(f"{path} has no 'config' entry in its safetensors header; was it written by save_weights?")
    cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(header["config"]).items()})
    model = build_model(cfg)
    model.load_state_dict(state, strict=True)
    model.metadata = json.loads(header.get("metadata", "{}"))
    return model.to(device).eval()


def weights_folder(name: str | os.PathLike) -> Path:
    """A folder of weights: ``name`` itself, or a set shipped under ``bamf_lib/weights``
    (``"padded"``: the earlier zero-padded ResNet-20 nets trained on a GPU)."""
    folder = Path(name)
    if not folder.is_dir() and (WEIGHTS_DIR / folder).is_dir() and not folder.is_absolute():
        return WEIGHTS_DIR / folder
    return folder


def weights_path(net: str = "initial", weights_dir: str | os.PathLike | None = None) -> Path:
    """Where ``net``'s weights are: ``weights_dir`` (else ``$BAMF_WEIGHTS``, else the shipped
    ``bamf_lib/weights``; see :func:`weights_folder`) holding ``<net>.safetensors`` or, as
    ``bamf train`` writes them, exactly one ``<profile>-<net>.safetensors``."""
    if net not in ("initial", "boundary"):
        raise ValueError(f"net must be 'initial' or 'boundary', got {net!r}")
    folder = weights_folder(weights_dir or os.environ.get("BAMF_WEIGHTS") or WEIGHTS_DIR)
    path = folder / f"{net}.safetensors"
    if path.is_file() or folder == WEIGHTS_DIR:
        return path
    trained = sorted(folder.glob(f"*-{net}.safetensors"))
    if len(trained) > 1:
        raise ValueError(f"{folder} holds several {net} networks ({', '.join(p.name for p in trained)}); "
                         f"name one {net}.safetensors")
    return trained[0] if trained else path


def load_pretrained(net: str = "initial", device: str | torch.device = "cpu",
                    weights_dir: str | os.PathLike | None = None) -> FocusResNet:
    """Load the ``initial`` or ``boundary`` network: the shipped one, or one from
    ``weights_dir`` / ``$BAMF_WEIGHTS`` (see :func:`weights_path`).

    Raises
    ------
    FileNotFoundError
        If the weights are not there, with the command that trains them.
    """
    path = weights_path(net, weights_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {net} weights at {path}. Train them with "
            f"`bamf train --profile quick --net {net}` (or --profile cpu for better ones) "
            f"and copy the resulting .safetensors file to {path}"
        )
    return load_weights(path, device)
