"""Configuration of every stage, as frozen dataclasses, and the named training profiles.

A *profile* fixes the network size, the amount of synthetic training data and the
training schedule, so the same code trains in minutes on a laptop (``quick``), in
hours on a CPU (``cpu``) or at the paper's scale on a GPU (``paper``).  Every number
the book shows names the profile that produced it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "SCORING_PATHS",
    "ModelConfig",
    "SynthesisConfig",
    "TrainConfig",
    "FDBConfig",
    "PostprocessConfig",
    "Profile",
    "PROFILES",
    "get_profile",
]


#: scoring paths (:mod:`bamf_lib.nets.scoring`): the paper's per-patch "reference" and the whole-image ones
SCORING_PATHS = ("reference", "fast", "strided", "dilated", "coarse-to-fine")


@dataclass(frozen=True)
class ModelConfig:
    """The 2-channel CIFAR-style ResNet.

    ``version="v1"``: basic blocks, depth = 6n + 2.  ``version="v2"``: pre-activation
    bottlenecks, depth = 9n + 2 (the Keras ``ResNet56v2`` reading of the paper's "Res56").
    ``width`` is the number of filters of the first stage.

    ``padding="same"`` (the paper's, Keras' default) zero-pads every 3x3 convolution;
    ``padding="valid"`` pads nothing, so a feature depends on image pixels only and the
    whole-image pass computes *exactly* the per-patch scores (``"v1"`` only; see
    :mod:`bamf_lib.nets.scoring`).  ``stem_stride`` is the stride of the first convolution
    (1 in the paper; 2 halves the cost of every later layer).  ``stage_strides`` and
    ``stage_widths`` (multiples of ``width``) shape the three stages, (1, 2, 2) and
    (1, 2, 4) in the paper's ResNets (``"v1"`` only otherwise); ``stage_dilations``
    spread a padding-free stride-1 net's 3x3 kernels (a wider view at the same cost).  ``head="gap"`` is the
    paper's global average pool; ``head="centre"`` pools with a Gaussian centred on the
    patch centre whose width is learned (one parameter), so the score can favour the
    centre pixel over the rest of the patch; ``head="keras"`` is the authors' code: average pools
    to a 2 x 2 grid (8x8 pools on Res56's 16x16 map), flattened (2 x 2 x 256), then dense.
    """

    version: str = "v1"
    depth: int = 20
    width: int = 16
    patch_size: int = 32
    in_channels: int = 2
    num_classes: int = 2
    padding: str = "same"
    stem_stride: int = 1
    stage_strides: tuple[int, int, int] = (1, 2, 2)
    stage_widths: tuple[int, int, int] = (1, 2, 4)
    stage_dilations: tuple[int, int, int] = (1, 1, 1)
    head: str = "gap"

    @property
    def dense_capable(self) -> bool:
        """Padding-free and stride 1 throughout: a whole-image pass computes every patch's score
        exactly (:attr:`bamf_lib.nets.models.FocusResNet.dense_capable`, without building the net)."""
        return self.padding == "valid" and self.stem_stride == 1 and all(s == 1 for s in self.stage_strides)

    def __post_init__(self) -> None:
        if self.version not in ("v1", "v2"):
            raise ValueError(f"ModelConfig.version must be 'v1' or 'v2', got {self.version!r}")
        step = 6 if self.version == "v1" else 9
        if self.depth < step + 2 or (self.depth - 2) % step:
            raise ValueError(
                f"ModelConfig.depth={self.depth} is not valid for {self.version}: it must be {step}n + 2 with n >= 1"
            )
        if self.patch_size < 8 or self.patch_size % 4:
            raise ValueError(f"ModelConfig.patch_size must be a multiple of 4 and >= 8, got {self.patch_size}")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"ModelConfig.padding must be 'same' or 'valid', got {self.padding!r}")
        if self.padding == "valid" and self.version != "v1":
            raise ValueError("ModelConfig.padding='valid' is implemented for version 'v1' only")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"ModelConfig.stem_stride must be 1 or 2, got {self.stem_stride}")
        if len(self.stage_strides) != 3 or any(s not in (1, 2) for s in self.stage_strides):
            raise ValueError(f"ModelConfig.stage_strides must be three strides of 1 or 2, got {self.stage_strides}")
        if len(self.stage_widths) != 3 or any(int(m) < 1 for m in self.stage_widths):
            raise ValueError(f"ModelConfig.stage_widths must be three positive multiples, got {self.stage_widths}")
        if self.version != "v1" and (tuple(self.stage_strides) != (1, 2, 2) or tuple(self.stage_widths) != (1, 2, 4)):
            raise ValueError("ModelConfig.stage_strides/stage_widths can be changed for version 'v1' only")
        if len(self.stage_dilations) != 3 or any(int(d) < 1 for d in self.stage_dilations):
            raise ValueError(
                f"ModelConfig.stage_dilations must be three positive dilations, got {self.stage_dilations}"
            )
        if tuple(self.stage_dilations) != (1, 1, 1) and (
            self.padding != "valid" or self.stem_stride != 1 or tuple(self.stage_strides) != (1, 1, 1)
        ):
            raise ValueError("ModelConfig.stage_dilations need padding='valid' and stride 1 throughout")
        if self.head not in ("gap", "centre", "keras"):
            raise ValueError(f"ModelConfig.head must be 'gap', 'centre' or 'keras', got {self.head!r}")


BACKGROUND_SOURCES = ("default", "textures", "natural", "mixed")


@dataclass(frozen=True)
class SynthesisConfig:
    """Training-data synthesis (paper section 3.1)."""

    source: str = "embedded"  # "embedded" (offline default) or "alphamatting" (the paper's)
    patch_size: int = 32
    pairs_per_image: int = 10  # patch pairs drawn per (foreground, background) source pair
    sigma_range: tuple[float, float] = (2.0, 5.0)  # Gaussian blur sigma, drawn per source pair
    foreground_scale: float = 0.5  # the paper resizes the alpha-matting images to half size
    boundary_min_fraction: float = 0.10  # boundary set: >= 10 % focused and >= 10 % defocused
    val_fraction: float = 0.15  # held out by source pair
    n_foregrounds: int | None = None  # None: all available
    n_backgrounds: int | None = None  # None: all available
    augment: bool = True  # channel swap + rotations/flips
    n_transforms: int = 8  # rotations/flips per sample: 8 (all) or 6 (the paper's 2,268,000 total)
    masks_per_image: int = 4  # embedded source: procedural alpha mattes per bundled image
    # backgrounds: "default" (COCO when fetched, else the embedded textures), "textures" (the four
    # embedded textures), "natural" (the sharp Urban100/BSD100 photographs of backgrounds/) or
    # "mixed" (natural + textures); see bamf_lib.data.sources.load_backgrounds
    backgrounds: str = "default"
    seed: int = 0
    # the blur model (bamf_lib.data.defocus); the defaults are the paper's Gaussian, sigma uniform in sigma_range:
    blur: str = "gaussian"  # PSF: "gaussian", "disk" (thin-lens pillbox, rim softened) or "mix" (either, per pair)
    sigma_law: str = "uniform"  # "uniform" or "loguniform" over sigma_range (mild blur as likely per octave)
    depth_ramp: float = 0.0  # > 0: each blurred layer's sigma varies by exp(+-depth_ramp) along a random ramp
    noise_range: tuple[float, float] = (0.0, 0.0)  # sensor-noise std at mid-grey, grey levels, drawn per pair
    jpeg_quality: tuple[int, int] | None = None  # JPEG re-compression quality range, drawn per pair; None: none
    clean_share: float = 0.0  # > 0: this share of pairs, drawn per pair, gets neither noise nor JPEG

    def __post_init__(self) -> None:
        if self.backgrounds not in BACKGROUND_SOURCES:
            raise ValueError(
                f"SynthesisConfig.backgrounds must be one of {BACKGROUND_SOURCES}, got {self.backgrounds!r}"
            )
        if self.blur not in ("gaussian", "disk", "mix"):
            raise ValueError(f"SynthesisConfig.blur must be 'gaussian', 'disk' or 'mix', got {self.blur!r}")
        if self.sigma_law not in ("uniform", "loguniform"):
            raise ValueError(f"SynthesisConfig.sigma_law must be 'uniform' or 'loguniform', got {self.sigma_law!r}")
        if not 0.0 <= self.depth_ramp <= 2.0:
            raise ValueError(f"SynthesisConfig.depth_ramp must lie in [0, 2], got {self.depth_ramp}")
        lo, hi = self.noise_range
        if not 0.0 <= lo <= hi:
            raise ValueError(f"SynthesisConfig.noise_range must satisfy 0 <= low <= high, got {self.noise_range}")
        if not 0.0 <= self.clean_share <= 1.0:
            raise ValueError(f"SynthesisConfig.clean_share must lie in [0, 1], got {self.clean_share}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(
                f"SynthesisConfig.jpeg_quality must be None or 1 <= low <= high <= 100, got {self.jpeg_quality}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule (paper section 3.2), scaled to a profile's epoch count."""

    epochs: int = 200
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # learning-rate drops at these fractions of the run (80/120/160/180 of 200 epochs) ...
    milestones: tuple[float, ...] = (0.4, 0.6, 0.8, 0.9)
    # ... to these multiples of the initial rate (the Keras CIFAR-10 ResNet example)
    factors: tuple[float, ...] = (0.1, 0.01, 0.001, 0.0005)
    max_samples: int | None = None  # cap on training samples (None: all synthesised)
    # after this fraction of the run BatchNorm uses (and stops updating) its running statistics,
    # so the last part trains the network exactly as it will be evaluated (None: never)
    bn_freeze: float | None = None
    seed: int = 0  # rank r of a DDP run seeds its generators with seed + r
    device: str = "auto"
    num_workers: int = 0
    # dense training (padding-free stride-1 nets): train on region x region crops, each
    # labelled at every patch position, regions_per_pair of them per source pair; None:
    # one label per patch
    region: int | None = None
    regions_per_pair: int = 10

    def __post_init__(self) -> None:
        if self.region is not None and self.region < 1:
            raise ValueError(f"TrainConfig.region must be a positive side or None, got {self.region}")
        if self.regions_per_pair < 1:
            raise ValueError(f"TrainConfig.regions_per_pair must be >= 1, got {self.regions_per_pair}")
        if self.bn_freeze is not None and not 0.0 <= self.bn_freeze <= 1.0:
            raise ValueError(f"TrainConfig.bn_freeze must lie in [0, 1] or be None, got {self.bn_freeze}")


@dataclass(frozen=True)
class FDBConfig:
    """Focused/defocused-boundary classification: box window ``k`` and threshold ``tau``.

    The paper gives no values.  The one source of truth for a network's values is its initial
    net's metadata (``"fdb"``), written by ``python scripts/select_weights.py DIR --store`` and
    read by :func:`bamf_lib.fusion.boundary.fdb_for`; every shipped set carries its own.  These
    defaults are the fallback for weights that carry none, and equal the values stored with the
    shipped default nets (``tests/test_config.py`` checks), chosen with
    :func:`bamf_lib.fusion.boundary.tune_fdb` on held-out synthetic validation pairs, never a test
    pair.  Chapter 5 repeats the computation live.
    """

    k: int = 15
    tau: float = 0.1

    def __post_init__(self) -> None:
        if self.k < 1 or self.k % 2 == 0:
            raise ValueError(f"FDBConfig.k must be an odd positive window size, got {self.k}")
        if not 0.0 <= self.tau < 0.5:
            raise ValueError(f"FDBConfig.tau must lie in [0, 0.5), got {self.tau}")


@dataclass(frozen=True)
class PostprocessConfig:
    """Binarisation and small-region removal; regions under ``area_fraction * H * W`` flip.

    ``fill_margin`` > 0 (an option beyond the paper, :func:`bamf_lib.fusion.postprocess.fill_uncertain`)
    first gives every pixel whose score lies within ``fill_margin`` of the threshold the decision
    of the nearest pixel outside that margin; 0 (the default) is the paper's method."""

    threshold: float = 0.5
    area_fraction: float = 0.01
    fill_margin: float = 0.0


@dataclass(frozen=True)
class Profile:
    """A named bundle: one network shape, one data recipe, one schedule."""

    name: str
    model: ModelConfig
    synthesis: SynthesisConfig
    train: TrainConfig
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        description="Minutes on 2 CPU cores: tests, CI and the default book build.",
        model=ModelConfig(version="v1", depth=8, width=16, patch_size=32),
        synthesis=SynthesisConfig(source="embedded", patch_size=32, pairs_per_image=10),
        train=TrainConfig(epochs=4, batch_size=128, optimizer="sgd", lr=0.05, max_samples=40_000),
    ),
    "cpu": Profile(
        name="cpu",
        description="A few hours on 2 CPU cores: the shipped weights when no GPU is at hand.",
        model=ModelConfig(version="v1", depth=20, width=16, patch_size=32),
        synthesis=SynthesisConfig(source="alphamatting", patch_size=32, pairs_per_image=10),
        train=TrainConfig(epochs=30, batch_size=128, optimizer="sgd", lr=0.05, max_samples=400_000),
    ),
    "gpu": Profile(
        name="gpu",
        description="About 4 minutes per net on one H100/H200 (bf16, torch.compile): stronger shipped weights. "
        "Batch 512: at 128 a 32x32 ResNet-20 step is launch-bound (~8 ms/step on an H200 whatever the batch).",
        model=ModelConfig(version="v1", depth=20, width=16, patch_size=32),
        synthesis=SynthesisConfig(source="alphamatting", patch_size=32, pairs_per_image=10),
        train=TrainConfig(epochs=6, batch_size=512, optimizer="sgd", lr=0.1, max_samples=2_000_000),
        extra={"val_samples": 20_000},
    ),
    "exact": Profile(
        name="exact",
        description="About half an hour on 2 CPU cores: a padding-free, stride-1 ResNet (dilated stages, "
        "centre-weighted pool) whose whole-image pass IS the paper's per-patch evaluation, 64x64 patches as in "
        "the paper, trained densely: each 72x72 region is 81 labelled patches in one pass.  Batches of 256 "
        "regions: with a few large regions per batch, BatchNorm learns to lean on each batch's statistics "
        "and fails with the running ones.",
        model=ModelConfig(
            version="v1",
            depth=8,
            width=16,
            patch_size=64,
            padding="valid",
            stage_strides=(1, 1, 1),
            stage_widths=(1, 1, 1),
            stage_dilations=(1, 2, 4),
            head="centre",
        ),
        synthesis=SynthesisConfig(source="alphamatting", patch_size=64, pairs_per_image=10),
        train=TrainConfig(epochs=6, batch_size=256, optimizer="sgd", lr=0.05, region=72, regions_per_pair=64),
        extra={"val_samples": 4_000},
    ),
    "whole": Profile(
        name="whole",
        description="Under an hour on 2 CPU cores: a padding-free, stride-1 ResNet-20 v1 whose features see "
        "63 px (dilations 1/2/2), i.e. the whole 64x64 patch, so the whole-image pass is still the per-patch "
        "evaluation; trained densely on 96x96 regions (1,089 patches each) over natural + texture backgrounds, "
        "batches of 64 regions, BatchNorm frozen for the last quarter so training ends as evaluation runs.  An "
        "'epoch' is 12,800 regions (200 steps) drawn afresh from the set, so a time budget cuts the run (and "
        "rescales its schedule) at a fine grain.",
        model=ModelConfig(
            version="v1",
            depth=20,
            width=16,
            patch_size=64,
            padding="valid",
            stage_strides=(1, 1, 1),
            stage_widths=(1, 1, 1),
            stage_dilations=(1, 2, 2),
            head="centre",
        ),
        synthesis=SynthesisConfig(source="alphamatting", patch_size=64, pairs_per_image=10, backgrounds="mixed"),
        train=TrainConfig(
            epochs=12,
            batch_size=64,
            optimizer="sgd",
            lr=0.05,
            bn_freeze=0.75,
            max_samples=12_800,
            region=96,
            regions_per_pair=12,
        ),
        extra={"val_samples": 4_000},
    ),
    "camera": Profile(
        name="camera",
        description="The whole profile's network trained on blur as cameras make it (a departure from the paper): "
        "PSFs drawn per pair from the paper's Gaussian and the thin lens' softened disc, sigma log-uniform from "
        "0.5 px (mild defocus) to 5 px, each blurred layer's sigma varying by up to x1.5 along a random depth "
        "ramp, sensor noise up to 3 grey levels and JPEG re-compression (quality 75-100).  A campaign: 40 "
        "epochs of 200 steps of 64 regions (8,000 steps, 10x the whole profile's 800), fixed in advance so "
        "that runs of a few hours each resume one learning-rate schedule (bamf train --stop-after).",
        model=ModelConfig(
            version="v1",
            depth=20,
            width=16,
            patch_size=64,
            padding="valid",
            stage_strides=(1, 1, 1),
            stage_widths=(1, 1, 1),
            stage_dilations=(1, 2, 2),
            head="centre",
        ),
        synthesis=SynthesisConfig(
            source="alphamatting",
            patch_size=64,
            pairs_per_image=10,
            backgrounds="mixed",
            sigma_range=(0.5, 5.0),
            blur="mix",
            sigma_law="loguniform",
            depth_ramp=0.4,
            noise_range=(0.0, 3.0),
            jpeg_quality=(75, 100),
        ),
        train=TrainConfig(
            epochs=40,
            batch_size=64,
            optimizer="sgd",
            lr=0.05,
            bn_freeze=0.75,
            max_samples=12_800,
            region=96,
            regions_per_pair=12,
        ),
        extra={"val_samples": 4_000},
    ),
    "paper": Profile(
        name="paper",
        description="The paper's settings: Res56 (v2), 64x64 patches, 2.27 M samples, 200 epochs (GPU).",
        model=ModelConfig(version="v2", depth=56, width=16, patch_size=64),
        synthesis=SynthesisConfig(source="alphamatting", patch_size=64, pairs_per_image=10),
        train=TrainConfig(epochs=200, batch_size=128, optimizer="sgd", lr=1e-3),
    ),
}

# the second campaign: the camera profile with half of the pairs clean (campaign/README.md)
PROFILES["camera2"] = replace(
    PROFILES["camera"],
    name="camera2",
    description="The camera profile's second campaign (a departure from the paper): the same network, blur "
    "model and 40-epoch schedule, but half of the pairs, drawn per pair, get neither sensor noise nor JPEG, so "
    "that texture fainter than the noise (where the first campaign's nets failed the selection rule) is still "
    "seen as detail.",
    synthesis=replace(PROFILES["camera"].synthesis, clean_share=0.5),
)


def get_profile(name: str, **overrides: Any) -> Profile:
    """Return the named profile, optionally with top-level fields replaced.

    Examples
    --------
    >>> get_profile("quick").model.patch_size
    32
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
    return replace(profile, **overrides) if overrides else profile
