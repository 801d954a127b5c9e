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
a linear layer to two classes.  Dense evaluation (see :mod:`bamf_lib.nets.scoring`) needs the
pre-pool feature map (:meth:`FocusResNet.features`), the head applied at every position
(:meth:`FocusResNet.pooled_logits`), the total stride (``.total_stride``) and a copy with
strides turned into dilations (:func:`bamf_lib.nets.inference.dilated_copy`).

The shipped default (profile ``exact``) is a third shape of ``"v1"``: no padding, stride 1,
dilated stages and a centre-weighted pool (``ModelConfig(padding="valid", ...)``).  Such a
net computes on a whole image exactly what it computes on each patch alone
(:attr:`FocusResNet.dense_capable`, :meth:`FocusResNet.dense_logits`), which makes both
scoring and training a pass over whole regions.

Weight files are :mod:`bamf_lib.nets.weightfile`; the faster inference copies of a network are
:mod:`bamf_lib.nets.inference`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bamf_lib.config import ModelConfig

__all__ = [
    "BasicBlock",
    "PreActBottleneck",
    "FocusResNet",
    "build_model",
    "param_count",
    "receptive_field",
    "architecture_table",
]


def _conv(
    in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = False, pad: bool = True
) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2 if pad else 0, bias=bias)


class BasicBlock(nn.Module):
    """v1 block: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

    As in the Keras example, a shape-changing shortcut is a strided 1x1 convolution
    without batch normalisation.  With ``valid=True`` the 3x3 convolutions pad nothing
    and the shortcut takes the centre of ``x`` that lines up with the output
    (:meth:`shortcut_input`).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, *, valid: bool = False) -> None:
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
        and for its :func:`~bamf_lib.nets.inference.dilated_copy` alike.
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
        self.stem = nn.Sequential(
            _conv(config.in_channels, w, 3, config.stem_stride, pad=not self.valid),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        )
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
        self.dilation = 1  # spacing of the last features one patch pools; the total stride in a dilated copy
        self.final_size = self._final_size(config.patch_size)
        if self.final_size < 1:
            raise ValueError(
                f"a {config.padding}-padded {config.version}-{config.depth} with stem stride "
                f"{config.stem_stride} needs a larger patch than {config.patch_size}"
            )
        self.pool = nn.AdaptiveAvgPool2d(1)
        if config.head == "centre":  # width of the Gaussian pool, as a fraction of the map: softplus(-0.43) = 0.5
            self.pool_width = nn.Parameter(torch.tensor(-0.4328))
        if config.head == "keras" and self.final_size % 2:
            raise ValueError(f"head='keras' needs an even final feature map, got {self.final_size}x{self.final_size}")
        # "keras": the authors' head, an average pool to a 2 x 2 grid (8x8 pools on Res56's 16x16
        # map), flattened, then dense: 4 positions x channels inputs
        fc_in = self.feature_channels * (4 if config.head == "keras" else 1)
        self.fc = nn.Linear(fc_in, config.num_classes)
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

    def _make_layer(
        self, out_ch: int, blocks: int, stride: int, *, first_stage: bool, width: int | None = None
    ) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            block_stride = stride if i == 0 else 1
            if self.config.version == "v1":
                layers.append(BasicBlock(self._in_ch, out_ch, block_stride, valid=self.config.padding == "valid"))
            else:
                layers.append(
                    PreActBottleneck(self._in_ch, width, out_ch, block_stride, first_in_net=first_stage and i == 0)
                )
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
        if self.config.head == "keras":
            return self.fc(torch.flatten(F.avg_pool2d(feats, self.final_size // 2), 1))
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

    def pooled_logits(
        self,
        feats: torch.Tensor,
        dilation: int = 1,
        weight: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The head applied at every position of a pre-pool feature map: the logits
        (N, classes, h', w') of every patch whose last-stage features lie in ``feats``.

        The linear layer runs as a 1x1 convolution and the pool (:meth:`pool_kernel`) as a
        ``final_size`` convolution (two 1-D passes: it is separable), ``dilation`` apart in a
        :func:`~bamf_lib.nets.inference.dilated_copy`; both are linear, so this equals pooling first, as
        :meth:`forward` does.  ``weight`` (outputs x channels) and ``bias`` replace the
        linear layer's, e.g. by the difference of its two rows, which gives the logit gap
        without subtracting two large pooled logits.
        """
        weight = self.fc.weight if weight is None else weight
        bias = self.fc.bias if bias is None else bias
        if self.config.head == "keras":
            # the 2 x 2 grid of average pools and the dense layer are one linear map of the f x f
            # features: an f x f convolution whose kernel repeats each grid cell's weights / (f/2)^2
            f = self.final_size
            grid = weight.reshape(weight.shape[0], self.feature_channels, 2, 2)
            kernel = grid.repeat_interleave(f // 2, 2).repeat_interleave(f // 2, 3) / (f // 2) ** 2
            return F.conv2d(feats, kernel.to(feats.dtype), bias.to(feats.dtype), dilation=dilation)
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
            rows.append(
                {
                    "stage": name,
                    "layers": desc,
                    "channels": x.shape[1],
                    "stride": stride,
                    "size": x.shape[-1],
                    "params": param_count(module),
                }
            )
    pool = {
        "gap": "global average pool",
        "keras": f"{model.final_size // 2}x{model.final_size // 2} average pools to 2x2, flattened",
        "centre": f"centre-weighted (Gaussian) pool over {model.final_size}x{model.final_size}",
    }[cfg.head]
    rows.append(
        {
            "stage": "head",
            "layers": ("BN-ReLU, " if cfg.version == "v2" else "")
            + f"{pool}, linear {model.fc.in_features} -> {cfg.num_classes}",
            "channels": cfg.num_classes,
            "stride": 1,
            "size": 1,
            "params": param_count(model.post) + param_count(model.fc) + (cfg.head == "centre"),
        }
    )
    return rows
