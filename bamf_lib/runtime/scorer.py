"""The one interface fusion has to a network: a :class:`Scorer`.

Fusion never asks which library runs a network.  It asks a scorer for the initial score map of
a pair (:meth:`Scorer.score_map`) and for the boundary network's scores in a band
(:meth:`Scorer.score_masked`), reads its configuration (the patch size) and metadata (its tuned
FDB values), and can say which network it used (:attr:`Scorer.name`, :attr:`Scorer.sha256`).
Two implementations: ONNX Runtime (:class:`bamf_lib.runtime.onnx.OnnxScorer`, no torch) and
PyTorch (:class:`bamf_lib.nets.scorer.TorchScorer`); :mod:`bamf_lib.fusion.scorers` makes one
from a weights folder, once, at the edge.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from bamf_lib.config import ModelConfig

__all__ = ["Scorer", "is_scorer"]


@runtime_checkable
class Scorer(Protocol):
    """A trained network that scores a pair of gray images, whatever runs it.

    Attributes
    ----------
    config : ModelConfig
        The network's configuration (patch size, whether it is dense-capable ...).
    metadata : dict
        Its weights' metadata (profile, tuned FDB values under ``"fdb"`` ...).
    backend : str
        What runs it: ``"onnx"`` or ``"torch"`` (informative; nothing branches on a class).
    name : str
        What to call it in messages and reports (its weights file, when it has one).
    sha256 : str
        SHA-256 of the weights it computes with (of the file, when it has one).
    """

    config: ModelConfig
    metadata: dict
    backend: str

    @property
    def name(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    def score_map(self, a: np.ndarray, b: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Probability that ``a`` is the focused source at every pixel: float32 ``H x W`` in [0, 1].

        ``a`` and ``b`` are float gray images in [0, 1] of one size, at least the patch size.
        """
        ...

    def score_masked(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """The scores of :meth:`score_map` where ``mask`` is True, NaN elsewhere, computed the
        cheapest way the backend knows (only the masked region, or the whole image once)."""
        ...


def is_scorer(obj: object) -> bool:
    """Whether ``obj`` is a :class:`Scorer` (has its attributes and methods), not a bare network."""
    return isinstance(obj, Scorer)
