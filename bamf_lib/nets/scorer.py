"""A torch network as a :class:`~bamf_lib.runtime.scorer.Scorer`: what fusion runs when ONNX
Runtime cannot (a zero-padded network, the reference path, a GPU) or is not asked to.

The scoring itself is :mod:`bamf_lib.nets.scoring`; this class binds a network to the device,
the scoring path and the inference copies it is scored with, resolved once when it is made.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from bamf_lib.config import SCORING_PATHS
from bamf_lib.nets import scoring
from bamf_lib.nets.device import resolve_device
from bamf_lib.nets.models import FocusResNet

__all__ = ["TorchScorer", "WHOLE_IMAGE_ABOVE"]

# On the whole-image scoring paths, a band larger than this share of the image is scored by
# one pass of the network over the whole image (only the band's values are kept); the
# measurement behind it is in bamf_lib/weights/MODEL_CARD.md.
WHOLE_IMAGE_ABOVE = 0.005


class TorchScorer:
    """A :class:`~bamf_lib.nets.models.FocusResNet` scored by :mod:`bamf_lib.nets.scoring`.

    Parameters
    ----------
    model : FocusResNet
        The network (e.g. :func:`bamf_lib.nets.pretrained.load_pretrained`'s); not copied.
    device : str or torch.device
        Where it runs (:func:`~bamf_lib.nets.device.resolve_device`, once, here).
    path : str
        Scoring path, one of :data:`bamf_lib.config.SCORING_PATHS`.
    optimized : bool
        Score with the network's inference copies (default) or, False, the plain network.
    source : path-like, optional
        The weights file it was loaded from: its name and SHA-256 are the scorer's.
    """

    backend = "torch"

    def __init__(
        self,
        model: FocusResNet,
        *,
        device: str | torch.device = "auto",
        path: str = "fast",
        optimized: bool = True,
        source: str | os.PathLike | None = None,
    ) -> None:
        if path not in SCORING_PATHS:
            raise ValueError(f"path must be one of {SCORING_PATHS}, got {path!r}")
        self.model, self.path, self.optimized = model, path, optimized
        self.device = resolve_device(device)
        self.config = model.config
        self.metadata = getattr(model, "metadata", None) or {}
        self.source = Path(source) if source is not None else None
        self._sha256: str | None = None

    @property
    def name(self) -> str:
        """The weights file's name, else a description of the network."""
        if self.source is not None:
            return self.source.name
        c = self.config
        return f"FocusResNet {c.version}-{c.depth} w{c.width} P{c.patch_size}"

    @property
    def sha256(self) -> str:
        """SHA-256 of the weights file, else of the network's state (names and bytes, in order)."""
        if self._sha256 is None:
            h = hashlib.sha256()
            if self.source is not None:
                h.update(self.source.read_bytes())
            else:
                for key, value in self.model.state_dict().items():
                    h.update(key.encode())
                    h.update(value.detach().cpu().contiguous().numpy().tobytes())
            self._sha256 = h.hexdigest()
        return self._sha256

    def __repr__(self) -> str:
        return f"TorchScorer({self.name} on {self.device}, {self.path} path)"

    def score_map(self, a: np.ndarray, b: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """:func:`bamf_lib.nets.scoring.score_map` of the pair."""
        return scoring.score_map(
            self.model, a, b, path=self.path, device=self.device, progress=progress, optimized=self.optimized
        )

    def score_masked(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Scores on ``mask``, NaN elsewhere: only the masked patches on the reference path or for
        a band under :data:`WHOLE_IMAGE_ABOVE` of the image, else one whole-image pass (cheaper
        than many masked tiles)."""
        mask = np.asarray(mask, bool)
        if self.path == "reference" or mask.mean() < WHOLE_IMAGE_ABOVE:
            return scoring.score_masked(
                self.model,
                a,
                b,
                mask,
                path=self.path,
                device=self.device,
                progress=progress,
                optimized=self.optimized,
            )
        out = self.score_map(a, b, progress=progress)
        out[~mask] = np.nan
        return out
