"""The paper's method on one pair: initial score map, boundary refinement, decision, selection.

:func:`fuse_pair` is one step of every fusion here: :func:`bamf_lib.fusion.pipeline.fuse` runs it
once for a pair (and once per step for a stack fused sequentially), and
:func:`bamf_lib.fusion.stack.fuse_stack` runs it for a stack of two frames.  The sources arrive
checked (:func:`bamf_lib.io.check_sources`) and the networks resolved
(:mod:`bamf_lib.fusion.scorers`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bamf_lib.colour import to_float_gray
from bamf_lib.config import FDBConfig, PostprocessConfig
from bamf_lib.fusion import boundary as _boundary
from bamf_lib.fusion.postprocess import decision_map as _decision_map

__all__ = ["PairResult", "fuse_pair", "select"]


@dataclass
class PairResult:
    """What :func:`fuse_pair` returns: the fused image, ``take_a`` (the paper's ``D``: True where
    the first source's pixel is taken), the initial and refined score maps, the re-scored band
    and the seconds of ``score``, ``refine``, ``postprocess`` and ``fuse``."""

    fused: np.ndarray
    take_a: np.ndarray
    score: np.ndarray
    refined: np.ndarray
    band: np.ndarray
    timings: dict = field(default_factory=dict)


def select(decision: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``D A + (1 - D) B`` for a binary ``D``, per channel, keeping the dtype."""
    d = decision[..., None] if a.ndim == 3 else decision
    return np.where(d, a, b)


def fuse_pair(
    a: np.ndarray,
    b: np.ndarray,
    *,
    initial,
    boundary,
    fdb: FDBConfig,
    post: PostprocessConfig,
    refine: bool = True,
    progress: bool = False,
) -> PairResult:
    """Fuse two registered sources of one shape and dtype with the paper's method (scorers
    ``initial`` and, when ``refine``, ``boundary``)."""
    t0 = time.perf_counter()
    ga, gb = to_float_gray(a), to_float_gray(b)
    score = initial.score_map(ga, gb, progress=progress)
    t1 = time.perf_counter()
    if refine:
        refined, band = _boundary.refine(score, ga, gb, boundary, k=fdb.k, tau=fdb.tau)
    else:
        refined, band = score, np.zeros(score.shape, bool)
    t2 = time.perf_counter()
    take_a = _decision_map(refined, post)
    t3 = time.perf_counter()
    fused = select(take_a, a, b)
    t4 = time.perf_counter()
    timings = dict(zip(("score", "refine", "postprocess", "fuse"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)))
    return PairResult(fused, take_a, score, refined, band, timings)
