"""The edge where networks become scorers: chosen, located and loaded once, then passed down.

:func:`load_scorer` turns a net name and a weights folder into a
:class:`~bamf_lib.runtime.scorer.Scorer`: ONNX Runtime where it computes the same scores (no
torch imported), else PyTorch (:func:`bamf_lib.runtime.backend.choose_backend` decides).
:func:`as_scorer` accepts either a scorer or a bare torch network (as the book's chapters pass
them) and hands fusion a scorer.  ``fuse()`` and the CLI call these; nothing below them does.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from bamf_lib.runtime import onnx
from bamf_lib.runtime.backend import choose_backend
from bamf_lib.runtime.header import header_info
from bamf_lib.runtime.locate import existing_weights
from bamf_lib.runtime.scorer import Scorer, is_scorer

__all__ = ["load_scorer", "as_scorer", "SwapAveraged", "TwoScale", "mean_log_odds"]


def _torch_needed(why: str | None) -> ValueError:
    return ValueError(f"{why}: that needs PyTorch, which is not installed here; pip install 'bamf[train]'")


def load_scorer(
    net: str = "initial",
    weights: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    backend: str = "auto",
    path: str = "fast",
    optimized: bool = True,
) -> Scorer:
    """The ``initial`` or ``boundary`` network of ``weights`` as :func:`bamf_lib.fuse` runs it.

    Parameters
    ----------
    net : {"initial", "boundary"}
    weights : path-like, optional
        Folder of the networks (:func:`bamf_lib.runtime.locate.weights_path`); default the shipped ones.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    backend : {"auto", "onnx", "torch"}
        See :func:`bamf_lib.runtime.backend.choose_backend`.
    path : str
        The scoring path (the reference path is torch's).
    optimized : bool
        Torch only: score with the network's inference copies (default) or the plain network.

    Returns
    -------
    Scorer
        An :class:`~bamf_lib.runtime.onnx.OnnxScorer` or a :class:`~bamf_lib.nets.scorer.TorchScorer`.

    Raises
    ------
    FileNotFoundError
        If the weights are not there (saying how to train them).
    ValueError
        If the chosen backend cannot run here: ONNX Runtime without a graph exported from these
        weights (the message names the export command; nothing is written), torch not installed.
    """
    file = existing_weights(net, weights)
    chosen, reason = choose_backend(header_info(file)[0], backend=backend, device=device, path=path, what=str(file))
    if chosen == "onnx":
        return onnx.load_onnx(file)
    try:
        from bamf_lib.nets.device import resolve_device
        from bamf_lib.nets.pretrained import load_pretrained
        from bamf_lib.nets.scorer import TorchScorer
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise _torch_needed("--backend torch" if backend == "torch" else reason) from None
    on = resolve_device(device)
    model = load_pretrained(net, weights, device=on)
    return TorchScorer(model, device=on, path=path, optimized=optimized, source=file)


def as_scorer(net, *, path: str = "fast", device: str = "auto", optimized: bool = True) -> Scorer:
    """``net`` itself if it is a :class:`~bamf_lib.runtime.scorer.Scorer`, else (a torch network,
    e.g. :func:`bamf_lib.load_pretrained`'s) a :class:`~bamf_lib.nets.scorer.TorchScorer` of it
    on ``device`` and ``path``."""
    if is_scorer(net):
        return net
    from bamf_lib.nets.scorer import TorchScorer

    return TorchScorer(net, device=device, path=path, optimized=optimized)


class _Wrapped:
    """What a scorer built on another one keeps of it: configuration, metadata, backend, hash."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.config, self.metadata, self.backend = scorer.config, scorer.metadata, scorer.backend

    @property
    def sha256(self) -> str:
        return self.scorer.sha256


class SwapAveraged(_Wrapped):
    """A scorer whose score is the mean of the pair's two orders: ``(s(a, b) + 1 - s(b, a)) / 2``.

    The networks are trained with the sources' order swapped at random (channel swap), yet a
    trained net is not exactly antisymmetric: on a region with no detail it may lean towards one
    order.  Scoring both orders removes that lean at twice the cost.  An option beyond the paper
    (``fuse(swap_average=True)``, ``bamf fuse --swap-average``); its ablation is in
    ``campaign/README.md``.
    """

    @property
    def name(self) -> str:
        return f"{self.scorer.name} (both orders)"

    def __repr__(self) -> str:
        return f"SwapAveraged({self.scorer!r})"

    def score_map(self, a, b, *, progress: bool = False):
        s_ab = self.scorer.score_map(a, b, progress=progress)
        return (s_ab + 1.0 - self.scorer.score_map(b, a, progress=progress)) / 2

    def score_masked(self, a, b, mask, *, progress: bool = False):
        s_ab = self.scorer.score_masked(a, b, mask, progress=progress)
        return (s_ab + 1.0 - self.scorer.score_masked(b, a, mask, progress=progress)) / 2


def mean_log_odds(p: np.ndarray, q: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``sigmoid((logit p + logit q) / 2)``: two scores combined so that a sure one outweighs an
    unsure one (a score of 0.5 leaves the other's side unchanged) and two equal scores stay.

    Examples
    --------
    >>> [round(float(s), 3) for s in mean_log_odds(np.array([0.9, 0.5, 0.3]), np.array([0.9, 0.2, 0.5]))]
    [0.9, 0.333, 0.396]
    """
    p, q = (np.clip(np.asarray(x, np.float64), eps, 1 - eps) for x in (p, q))
    z = (np.log(p / (1 - p)) + np.log(q / (1 - q))) / 2
    return (1 / (1 + np.exp(-z))).astype(np.float32)


class TwoScale(_Wrapped):
    """A scorer that also scores the pair reduced by ``factor`` (area resampling) and combines
    the two maps with :func:`mean_log_odds`, the reduced one brought back to full size
    (bilinear).

    At half size each P px window sees 2P px of the scene, so a blur too wide, or a region too
    flat, for one window can still be judged from its surroundings; mild blur that the reduction
    hides leaves the reduced score near 0.5, which keeps the full-size decision.  An option
    beyond the paper (the paper scores at one scale); it adds ``factor**2`` of the scoring cost.
    Its ablation is ``scripts/ablate_scale.py`` (rows in ``campaign/scale_ablation.jsonl``).
    """

    def __init__(self, scorer: Scorer, factor: float = 0.5) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"the second scale must lie in (0, 1), got {factor!r}")
        super().__init__(scorer)
        self.factor = factor

    @property
    def name(self) -> str:
        return f"{self.scorer.name} (scales 1 and {self.factor:g})"

    def __repr__(self) -> str:
        return f"TwoScale({self.scorer!r}, factor={self.factor!r})"

    def _reduced(self, a, b, progress: bool):
        """The score map of the reduced pair at full size, or None if the pair is too small."""
        h, w = a.shape[:2]
        size = (round(w * self.factor), round(h * self.factor))
        if min(size) < self.config.patch_size:
            return None
        small = [cv2.resize(np.ascontiguousarray(x, np.float32), size, interpolation=cv2.INTER_AREA) for x in (a, b)]
        s = self.scorer.score_map(*small, progress=progress)
        return cv2.resize(np.asarray(s, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)

    def score_map(self, a, b, *, progress: bool = False):
        full = self.scorer.score_map(a, b, progress=progress)
        reduced = self._reduced(a, b, progress)
        return full if reduced is None else mean_log_odds(full, reduced)

    def score_masked(self, a, b, mask, *, progress: bool = False):
        full = self.scorer.score_masked(a, b, mask, progress=progress)
        reduced = self._reduced(a, b, progress)
        if reduced is None:
            return full
        out = np.full(full.shape, np.nan, np.float32)
        out[mask] = mean_log_odds(full[mask], reduced[mask])
        return out
