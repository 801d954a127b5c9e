"""Fusing a focus stack: the whole pipeline of the paper, for two or more sources.

``fuse`` runs io -> initial score map -> FDB classification and boundary refinement ->
post-processing -> pixel selection.  The decision is made on gray images
(:func:`bamf_lib.colour.to_float_gray`); colour sources are fused per channel from that one
decision, ``F = D A + (1 - D) B``, so the fused image has the sources' shape and dtype.

**Decision map convention.**  ``FusionResult.decision_map[i, j]`` is the index of the
source whose pixel was taken (0 for the first source).  For a pair the paper's ``D``
(1 where A is focused) is therefore ``decision_map == 0``.

**More than two sources.**  The paper fuses pairs.  A stack ``S0, S1, ..., S(N-1)`` is by
default fused with one joint decision over all N (``stack="joint"``,
:func:`bamf_lib.fusion.stack.fuse_stack`: the initial net on neighbouring pairs, summed into a
per-pixel potential, one argmax, the boundary net between the chosen frames); its scores are
streamed, so ``score_map`` and ``refined_score_map`` are None.  ``stack="sequential"`` is the
earlier pairwise accumulation: the running result (initially ``S0``) is fused with the next
source with the same networks and post-processing, the index map recording which source the
running result last took, and the score maps of the ``N - 1`` steps stacked along a first axis
(measured against the joint decision in ``benchmarks/STACKS.md``).  A pair fuses exactly as the
paper says either way.

**Networks.**  The initial and boundary networks reach the pipeline as
:class:`~bamf_lib.runtime.scorer.Scorer` objects, resolved once by :mod:`bamf_lib.fusion.scorers`
(ONNX Runtime for the shipped networks, without torch; PyTorch where ONNX Runtime cannot compute
the same scores).  Both backends compute one function in different float32 orders, so their
decision maps differ only at pixels scored within float32 rounding of 0.5
(``tests/test_onnxnet.py``).

**Alignment.**  ``align=True`` registers every source to the first
(:func:`bamf_lib.fusion.align.align_sources`); for a joint stack, each frame to its neighbour
(:func:`bamf_lib.fusion.stack_align.align_stack`), the output cropped to the common area.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bamf_lib.config import SCORING_PATHS, FDBConfig, PostprocessConfig
from bamf_lib.fusion import boundary as _boundary
from bamf_lib.fusion import scorers
from bamf_lib.fusion.align import align_sources
from bamf_lib.fusion.pair import fuse_pair
from bamf_lib.fusion.stack import fuse_stack
from bamf_lib.io import check_sources

__all__ = ["FusionResult", "fuse", "MAX_SOURCES"]

#: most sources :func:`fuse` takes: the decision map holds a source's index in a uint8
MAX_SOURCES = 256


@dataclass
class FusionResult:
    """What :func:`fuse` returns.

    Attributes
    ----------
    fused : ndarray
        The fused image, same shape and dtype as the sources.
    decision_map : ndarray of uint8, shape (H, W)
        Index of the source taken at each pixel.
    score_map : ndarray of float32 or None
        Initial score map, (H, W) for a pair, (N - 1, H, W) for N sources fused sequentially (one
        per step); None for a joint stack (its neighbour scores are streamed, not kept).
    refined_score_map : ndarray of float32 or None
        Score map after boundary refinement (same shape as ``score_map``).
    near_boundary : ndarray of bool
        The re-scored (near-FDB) pixels (same shape as ``score_map``; (H, W) for a joint stack:
        the pixels the boundary net re-decided between chosen frames).
    timings : dict[str, float]
        Seconds per stage: ``align``, ``score``, ``refine``, ``postprocess``, ``fuse``.
    fdb : FDBConfig or None
        The FDB window and margin the boundary band was found with (what was actually used:
        the ``fdb`` argument, else the initial network's tuned values, :func:`~bamf_lib.fusion.boundary.fdb_for`).
    """

    fused: np.ndarray
    decision_map: np.ndarray
    score_map: np.ndarray | None
    refined_score_map: np.ndarray | None
    near_boundary: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    fdb: FDBConfig | None = None


def fuse(
    sources: Sequence[np.ndarray],
    *,
    path: str = "fast",
    device: str = "auto",
    align: bool = False,
    fdb: FDBConfig | None = None,
    post: PostprocessConfig | None = None,
    refine: bool = True,
    progress: bool = False,
    initial=None,
    boundary=None,
    weights=None,
    optimized: bool = True,
    backend: str = "auto",
    stack: str = "joint",
    swap_average: bool = False,
) -> FusionResult:
    """Fuse two or more registered, differently focused images into one.

    Parameters
    ----------
    sources : sequence of uint8 ndarray
        Two or more (at most :data:`MAX_SOURCES`) images of one scene, all gray (H, W) or
        all RGB (H, W, 3), one size, at least the network's patch size on each side.
    path : str
        Scoring path: ``"fast"`` (default) or ``"reference"`` (the paper's patch per pixel;
        slow), or another of :data:`bamf_lib.config.SCORING_PATHS`.  For the shipped
        (dense-capable) nets every whole-image path is the reference's computation.
    device : {"auto", "cpu", "cuda"}
    align : bool
        Register the sources before fusing: to the first (:func:`~bamf_lib.fusion.align.align_sources`),
        or, for a joint stack, each to its neighbour, cropped to the common area.
    fdb : FDBConfig, optional
        Window ``k`` and margin ``tau`` of the boundary band; default: the values tuned
        for the initial network (:func:`~bamf_lib.fusion.boundary.fdb_for`).
    post : PostprocessConfig, optional
        Binarisation threshold and small-region area fraction; default ``PostprocessConfig()``
        (a joint stack: :data:`bamf_lib.fusion.stack.STACK_AREA_FRACTION`).
    refine : bool
        Re-score the boundary band with the boundary network (False: initial net alone,
        the paper's "w/o" column).
    progress : bool
        Show progress bars while scoring.
    initial, boundary : Scorer or torch.nn.Module, optional
        Networks to use, as :class:`~bamf_lib.runtime.scorer.Scorer` objects (what
        :func:`~bamf_lib.fusion.scorers.load_scorer` makes) or torch networks (scored on ``path``
        and ``device``); by default those of ``weights``, loaded with ``backend``.
    weights : path-like, optional
        Folder of the default networks (see :func:`bamf_lib.runtime.locate.weights_path`); default
        the shipped ones.
    optimized : bool
        Score torch networks with their inference copies (:mod:`bamf_lib.nets.inference`; default)
        or, False, with the plain networks.
    backend : {"auto", "onnx", "torch"}
        What runs the default networks (:func:`bamf_lib.runtime.backend.choose_backend`):
        ``"auto"`` is ONNX Runtime on the CPU where it computes the same scores (the shipped
        nets), which never imports torch.
    stack : {"joint", "sequential"}
        How more than two sources are decided (see the module's docstring); a pair is the
        paper's method either way.
    swap_average : bool
        Score every pair in both orders and average (:class:`~bamf_lib.fusion.scorers.SwapAveraged`):
        removes a network's lean towards one order where a region has no detail, at twice the
        scoring time.  An option beyond the paper; off by default.

    Returns
    -------
    FusionResult

    Examples
    --------
    >>> import cv2
    >>> rng = np.random.default_rng(0)
    >>> sharp = rng.integers(0, 256, (96, 128), dtype=np.uint8)
    >>> blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    >>> a, b = sharp.copy(), blurred.copy()
    >>> a[:, 64:], b[:, 64:] = blurred[:, 64:], sharp[:, 64:]   # A focused left, B right
    >>> r = fuse([a, b], device="cpu")
    >>> r.fused.shape, r.decision_map.dtype
    ((96, 128), dtype('uint8'))
    >>> float((r.decision_map[:, :48] == 0).mean()), float((r.decision_map[:, 80:] == 1).mean())
    (1.0, 1.0)
    """
    if path not in SCORING_PATHS:
        raise ValueError(f"path must be one of {SCORING_PATHS}, got {path!r}")
    if stack not in ("joint", "sequential"):
        raise ValueError(f"stack must be 'joint' or 'sequential', got {stack!r}")
    if len(sources) > MAX_SOURCES:
        raise ValueError(
            f"got {len(sources)} sources, more than the {MAX_SOURCES} a uint8 decision map can index; "
            f"fuse them in groups, then fuse the groups' results"
        )
    timings = dict.fromkeys(("align", "score", "refine", "postprocess", "fuse"), 0.0)
    load = dict(device=device, backend=backend, path=path, optimized=optimized)
    given = dict(device=device, path=path, optimized=optimized)
    initial = (
        scorers.as_scorer(initial, **given) if initial is not None else scorers.load_scorer("initial", weights, **load)
    )
    if refine:
        boundary = (
            scorers.as_scorer(boundary, **given)
            if boundary is not None
            else scorers.load_scorer("boundary", weights, **load)
        )
    if swap_average:
        initial = scorers.SwapAveraged(initial)
        boundary = scorers.SwapAveraged(boundary) if refine else boundary
    fdb = fdb if fdb is not None else _boundary.fdb_for(initial)
    sources = check_sources(sources, min_size=initial.config.patch_size)
    if len(sources) > 2 and stack == "joint":
        r = fuse_stack(
            sources,
            align=align,
            fdb=fdb,
            post=post,
            refine=refine,
            initial=initial,
            boundary=boundary,
            progress=progress,
        )
        return FusionResult(
            fused=np.ascontiguousarray(r.fused),
            decision_map=r.index,
            score_map=None,
            refined_score_map=None,
            near_boundary=r.band,
            timings=r.timings,
            fdb=fdb,
        )
    post = post if post is not None else PostprocessConfig()

    t0 = time.perf_counter()
    if align:
        sources = align_sources(sources)
    timings["align"] = time.perf_counter() - t0

    fused = sources[0]
    index = np.zeros(sources[0].shape[:2], np.uint8)
    scores, refined_scores, bands = [], [], []
    for i, nxt in enumerate(sources[1:], start=1):
        step = fuse_pair(
            fused, nxt, initial=initial, boundary=boundary, fdb=fdb, post=post, refine=refine, progress=progress
        )
        fused = step.fused
        index[~step.take_a] = i
        for key, dt in step.timings.items():
            timings[key] += dt
        scores.append(step.score)
        refined_scores.append(step.refined)
        bands.append(step.band)

    stack = (lambda xs: xs[0]) if len(sources) == 2 else np.stack
    return FusionResult(
        fused=np.ascontiguousarray(fused),
        decision_map=index,
        score_map=stack(scores),
        refined_score_map=stack(refined_scores),
        near_boundary=stack(bands),
        timings=timings,
        fdb=fdb,
    )
