"""Fusing a focus stack of N frames with one joint decision, streaming the frames.

The paper decides between two sources.  For N frames in focus order, :func:`fuse_stack` runs
the paper's initial network on each *neighbouring* pair, ``S_i = S(frame i, frame i + 1)``, the
probability that frame i is the sharper one, and sums the log-odds along the stack into a
per-pixel focus *potential*::

    phi_0 = 0,   phi_(i+1) = phi_i - logit(S_i)

so ``phi_j - phi_i`` is the evidence that frame j is sharper than frame i, accumulated over
every step between them.  Each pixel takes the frame of highest potential (one joint argmax:
a weak or wrong step is outvoted by the others, and nothing is decided before every frame has
been seen).  Then the paper's steps, generalised from two labels to N: small regions of the
index map are merged into their surroundings, and at the boundaries *between chosen frames*
(pixels whose k x k window holds two frame indices a < b) the boundary network re-decides
between frame a and frame b, as the paper's refinement decides between A and B near the FDB.

A long stack (more than :data:`MAX_STEPS` + 1 frames) is chained on every s-th frame, so that
the chain's neighbours differ enough in blur for the network to rank them; each pixel then takes,
among the frames within s of the chain's choice, the one of highest local contrast
(:func:`focus_energy`), and the boundary network re-decides only the jumps of more than s frames.

Neighbouring frames have nearly the same blur, so neighbouring pairs are also what registers
best (:mod:`bamf_lib.fusion.stack_align`).  A stack of two frames is fused by
:func:`bamf_lib.fusion.pipeline.fuse`, the paper's method exactly.

The networks arrive as :class:`~bamf_lib.runtime.scorer.Scorer` objects (or are loaded once,
here at the edge, by :func:`bamf_lib.fusion.scorers.load_scorer`); nothing here asks which
backend runs them.

Memory: frames are read (and warped) one at a time from ``frames``, which may be a lazy
sequence that loads a frame when indexed; what is held is a few full-size float32 maps (the
score, the potential and its running best), the index map, the output and two frames: bounded
independently of N.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from bamf_lib.colour import to_float_gray
from bamf_lib.config import FDBConfig, PostprocessConfig
from bamf_lib.fusion import scorers
from bamf_lib.fusion.boundary import fdb_for
from bamf_lib.fusion.pair import fuse_pair
from bamf_lib.fusion.stack_align import align_stack, shrink
from bamf_lib.io import check_sources, to_8bit

__all__ = [
    "StackResult",
    "fuse_stack",
    "AlignedFrames",
    "remove_small_labels",
    "net_gray",
    "LOGIT_CLIP",
    "MAX_STEPS",
    "ENERGY_WEIGHT",
    "gain_matched",
    "focus_energy",
    "STACK_AREA_FRACTION",
]

#: longest chain of neighbour pairs scored (measured on rendered 20- and 30-frame stacks: the
#: nets cannot rank frames that differ by a fraction of a pixel of blur, and the noise of many
#: such steps adds up; every s-th frame is used instead)
MAX_STEPS = 8
#: small-region removal of an N-frame index map: regions under 0.2 % of the image merge (the
#: paper's 1 % is for two labels; with N labels a frame's legitimate share is smaller; measured
#: on rendered stacks, seeds 0-1: 32.8 dB against 32.6 dB at 1 %)
STACK_AREA_FRACTION = 0.002
#: weight of the log local contrast in the joint argmax (``energy_weight``): chosen on rendered
#: stacks, seeds 0-1, with and without exposure drift and a flat backdrop (benchmarks/STACKS.md),
#: the best mean PSNR of 0, 10 and 30, each with and without exposure matching
ENERGY_WEIGHT = 10.0
#: added to the local contrast before its logarithm (gray levels in [0, 1])
ENERGY_EPS = 1e-4
#: the boundary refinement keeps as many frames' gray copies as fit in this (at least two), so that
#: the pairs between chosen frames do not read and warp a frame again for each pair
GRAY_CACHE_BYTES = 256 * 2**20
#: scores are clipped to [sigmoid(-c), sigmoid(c)] before their log-odds are summed
LOGIT_CLIP = 8.0


@dataclass
class StackResult:
    """What :func:`fuse_stack` returns.

    Attributes
    ----------
    fused : ndarray
        The fused image, the frames' dtype and channels, the aligned stack's (cropped) size.
    index : ndarray of uint8
        The frame taken at each pixel (the depth map).
    alignment : StackAlignment or None
    band : ndarray of bool
        Pixels the boundary network re-decided.
    timings : dict
        Seconds: ``align``, ``score``, ``refine``, ``postprocess``, ``fuse`` (reading and
        warping the frames is counted where it happens).
    """

    fused: np.ndarray
    index: np.ndarray
    alignment: object = None
    band: np.ndarray | None = None
    timings: dict = field(default_factory=dict)


def net_gray(frame: np.ndarray) -> np.ndarray:
    """The networks' input: gray float32 in [0, 1]; a 16-bit frame is scored from its 8-bit
    copy (``round(v / 257)``, as :func:`bamf_lib.io.read_image` reduces it)."""
    return to_float_gray(to_8bit(frame))


class AlignedFrames(Sequence):
    """``frames`` seen through a :class:`~bamf_lib.fusion.stack_align.StackAlignment`: item ``i`` is
    frame ``i`` warped onto the reference and cropped; the last two items are cached."""

    def __init__(self, frames: Sequence, alignment):
        self.frames, self.alignment, self._cache = frames, alignment, {}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self._cache:
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = self.alignment.apply(np.asarray(self.frames[i]), i)
        return self._cache[i]


def remove_small_labels(index: np.ndarray, area_fraction: float = 0.01) -> np.ndarray:
    """Merge 8-connected regions of one label smaller than ``area_fraction * H * W`` into the
    nearest larger region (the paper's small-region removal, for N labels).

    >>> idx = np.zeros((20, 20), np.uint8); idx[5, 5] = 3
    >>> int(remove_small_labels(idx).max())
    0
    """
    from skimage.measure import label

    index = np.asarray(index)
    min_area = int(np.ceil(area_fraction * index.size))
    if min_area <= 1:
        return index.copy()
    regions = label(index, background=-1, connectivity=2)
    small = (np.bincount(regions.ravel()) < min_area)[regions]
    del regions
    if not small.any() or small.all():
        return index.copy()
    # every small-region pixel takes the label of the nearest pixel outside the small regions
    _, nearest = cv2.distanceTransformWithLabels(small.astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.concatenate([[0], index[~small]]).astype(index.dtype)  # zero pixels numbered in raster order
    out = index.copy()
    out[small] = lut[nearest[small]]
    return out


def _logit_(score: np.ndarray) -> np.ndarray:
    """``log(s / (1 - s))`` in place, scores clipped to keep it within +-LOGIT_CLIP."""
    eps = 1.0 / (1.0 + np.exp(LOGIT_CLIP))
    np.clip(score, eps, 1 - eps, out=score)
    one_minus = np.subtract(1.0, score, dtype=np.float32)
    np.divide(score, one_minus, out=score)
    del one_minus
    return np.log(score, out=score)


def gain_matched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b`` scaled so that its mean gray level equals ``a``'s (clipped to [0, 1])."""
    mb = float(b.mean())
    if mb <= 0:
        return b
    return np.clip(b * np.float32(float(a.mean()) / mb), 0, 1)


def _score_map(net, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, match: bool = False) -> np.ndarray:
    """The scorer's score map of ``a`` against ``b`` (only where ``mask``, when given); ``match``:
    ``b`` brought to ``a``'s mean gray level first (:func:`gain_matched`)."""
    if match:
        b = gain_matched(a, b)
    return net.score_map(a, b) if mask is None else net.score_masked(a, b, mask)


def focus_energy(gray: np.ndarray, window: int = 15) -> np.ndarray:
    """Local focus measure: mean |Laplacian of Gaussian| (sigma 1 px) over a ``window`` box."""
    log = np.abs(cv2.Laplacian(cv2.GaussianBlur(gray, (0, 0), 1.0), cv2.CV_32F))
    return cv2.blur(log, (window, window))


def _local_sharpest(view, index, radius, window, to_net):
    """Each pixel's frame replaced by the one of highest :func:`focus_energy` among the frames
    within ``radius`` of it: the net's chain decided between frames ``radius`` apart, which it can
    tell apart; between nearer frames (a fraction of a pixel of blur) a contrast measure can."""
    best = np.full(index.shape, -1.0, np.float32)
    out = index.copy()
    coarse = index.astype(np.int16)
    for j in range(len(view)):
        near = np.abs(coarse - j) <= radius
        if not near.any():
            continue
        energy = focus_energy(to_net(np.asarray(view[j])), window)
        better = near & (energy > best)
        best[better] = energy[better]
        out[better] = j
    return out


def _refine_boundaries(index, boundary, k, gray_of, min_jump=0, match=False):
    """Re-decide, with the boundary net, the pixels whose k x k window holds two frames a < b
    (``b - a > min_jump``)."""
    kernel = np.ones((k, k), np.uint8)
    lo, hi = cv2.erode(index, kernel), cv2.dilate(index, kernel)
    band = (hi.astype(np.int16) - lo) > min_jump
    if not band.any():
        return index, band
    pair = lo.astype(np.int32) * 256 + hi
    pair[~band] = -1
    out = index.copy()
    for code in np.unique(pair[band]):
        a, b = divmod(int(code), 256)
        mask = pair == code
        score = _score_map(boundary, gray_of(a), gray_of(b), mask, match)
        out[mask] = np.where(score[mask] > 0.5, a, b).astype(out.dtype)
    return out, band


def fuse_stack(
    frames: Sequence[np.ndarray],
    *,
    align: bool = True,
    reference: int = 0,
    fdb: FDBConfig | None = None,
    post: PostprocessConfig | None = None,
    refine: bool = True,
    initial=None,
    boundary=None,
    weights=None,
    backend: str = "auto",
    device: str = "auto",
    progress: bool = False,
    max_steps: int | None = MAX_STEPS,
    energy_weight: float = ENERGY_WEIGHT,
    match_exposure: bool = True,
    scale: float = 1.0,
) -> StackResult:
    """Fuse a focus stack (frames in focus order) into one all-in-focus image.

    Parameters
    ----------
    frames : sequence of ndarray
        Two or more gray or RGB frames, uint8 or uint16, of one size, in focus order (near to
        far or far to near).  A lazy sequence (one that reads a frame when indexed) keeps the
        memory bounded: each frame is read two to four times, never all at once.
    align : bool
        Register the frames first (:func:`bamf_lib.fusion.stack_align.align_stack`; the output is
        cropped to their common area).
    reference : int
        The frame whose geometry the output has (with ``align``).
    fdb : FDBConfig, optional
        The window ``k`` of the boundary band; default the initial net's tuned value.
    post : PostprocessConfig, optional
        ``area_fraction`` of the small-region removal: by default the paper's 0.01 for a pair,
        :data:`STACK_AREA_FRACTION` for more frames.
    refine : bool
        Re-decide the boundaries between chosen frames with the boundary net.
    initial, boundary, weights, backend, device
        The networks, as for :func:`bamf_lib.fusion.pipeline.fuse`: scorers (or torch networks,
        wrapped once by :func:`~bamf_lib.fusion.scorers.as_scorer`), by default those of
        ``weights`` loaded with ``backend`` (:func:`~bamf_lib.fusion.scorers.load_scorer`).
    progress : bool
        A progress bar over the frames.
    max_steps : int or None
        Most steps of the chain: a longer stack is decided on every s-th frame (and the last),
        ``s = ceil((N - 1) / max_steps)``, so that neighbours in the chain differ enough in blur
        for the network to tell them apart (None: every frame).
    energy_weight : float
        ``w`` of the contrast term: each pixel takes the frame of highest
        ``phi_j + w log(E_j + eps)``, the net's accumulated log-odds plus ``w`` times the log of the
        frame's local contrast :func:`focus_energy` (the net's odds times the contrast ratio to
        the power ``w``).  Where the net is sure (log-odds of several units) it decides; where its
        evidence is weak or biased (flat, faintly textured regions, which it was never trained
        on) the frame with more detail wins.  0: the network alone (the ablation).
    match_exposure : bool
        Score each pair after scaling the second frame to the first's mean gray level
        (:func:`gain_matched`), so that an exposure drift along the stack does not read as focus
        (the shipped nets take a brighter flat patch for the sharper one).
    scale : float
        Decide on copies reduced by this factor (area averaging; 1: full size): the networks'
        work falls with its square; the depth map is brought back to full size (nearest) and
        the output takes its pixels from the full-size frames.  Not used for two frames.

    Returns
    -------
    StackResult
    """
    n = len(frames)
    if n < 2:
        raise ValueError(f"need at least two frames, got {n}")
    if n > 256:
        raise ValueError(f"got {n} frames, more than the 256 a uint8 index map can hold; fuse them in groups")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    timings = dict.fromkeys(("align", "score", "refine", "postprocess", "fuse"), 0.0)
    load = dict(device=device, backend=backend)
    initial = (
        scorers.as_scorer(initial, device=device)
        if initial is not None
        else scorers.load_scorer("initial", weights, **load)
    )
    if refine:
        boundary = (
            scorers.as_scorer(boundary, device=device)
            if boundary is not None
            else scorers.load_scorer("boundary", weights, **load)
        )
    fdb = fdb if fdb is not None else fdb_for(initial)
    if post is None:
        post = PostprocessConfig() if n == 2 else PostprocessConfig(area_fraction=STACK_AREA_FRACTION)
    t0 = time.perf_counter()
    alignment = align_stack(frames, reference=reference) if align else None
    timings["align"] = time.perf_counter() - t0
    view = AlignedFrames(frames, alignment) if align else frames
    if n == 2:  # the paper's method exactly; a 16-bit pair is decided on its 8-bit copies
        pair = [np.asarray(view[0]), np.asarray(view[1])]
        to8 = check_sources([to_8bit(f) for f in pair], min_size=initial.config.patch_size)
        r = fuse_pair(*to8, initial=initial, boundary=boundary, fdb=fdb, post=post, refine=refine, progress=progress)
        index = (~r.take_a).astype(np.uint8)
        fused = r.fused
        if pair[0].dtype == np.uint16:
            fused = np.where(r.take_a[..., None] if pair[0].ndim == 3 else r.take_a, pair[0], pair[1])
        for key, dt in r.timings.items():
            timings[key] += dt
        return StackResult(np.ascontiguousarray(fused), index, alignment, r.band, timings)

    stride = 1 if max_steps is None or n - 1 <= max_steps else -(-(n - 1) // max_steps)
    used = sorted(set(range(0, n, stride)) | {n - 1})
    bar = used[1:]
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="frames", unit="frame")

    def to_net(frame: np.ndarray) -> np.ndarray:
        return shrink(net_gray(frame), scale)

    first = np.asarray(view[0])
    fused = first.copy()
    prev_gray = to_net(first)
    potential = np.zeros(prev_gray.shape, np.float32)
    best = np.zeros(prev_gray.shape, np.float32)
    if energy_weight:
        best += energy_weight * np.log(focus_energy(prev_gray, fdb.k) + ENERGY_EPS)
    index = np.zeros(prev_gray.shape, np.uint8)
    for i in bar:
        t0 = time.perf_counter()
        cur = np.asarray(view[i])
        if cur.shape != first.shape or cur.dtype != first.dtype:
            raise ValueError(f"frame {i} is {cur.dtype} {cur.shape}, frame 0 {first.dtype} {first.shape}")
        cur_gray = to_net(cur)
        score = _score_map(initial, prev_gray, cur_gray, match=match_exposure)
        potential -= _logit_(score)
        del score
        t1 = time.perf_counter()
        merit = potential
        if energy_weight:
            merit = potential + energy_weight * np.log(focus_energy(cur_gray, fdb.k) + ENERGY_EPS)
        better = merit > best
        np.copyto(best, merit, where=better)
        index[better] = i
        if scale == 1:
            np.copyto(fused, cur, where=better[..., None] if cur.ndim == 3 else better)
        prev_gray = cur_gray
        timings["score"] += t1 - t0
        timings["fuse"] += time.perf_counter() - t1
    prev_nbytes = prev_gray.nbytes
    del potential, best, prev_gray
    scanned = index.copy() if scale == 1 else None

    t0 = time.perf_counter()
    index = remove_small_labels(index, post.area_fraction)
    timings["postprocess"] += time.perf_counter() - t0
    band = np.zeros(index.shape, bool)
    if refine:
        t0 = time.perf_counter()
        grays: dict[int, np.ndarray] = {}
        last = [-1]
        room = max(2, int(GRAY_CACHE_BYTES // max(1, prev_nbytes)))  # frames' gray copies kept at once

        def gray_of(j: int) -> np.ndarray:
            if j not in grays:
                while len(grays) >= room:  # pairs come sorted by their first frame: drop the earliest,
                    grays.pop(min(k for k in grays if k != last[0]))  # never the pair's other frame
                grays[j] = to_net(np.asarray(view[j]))
            last[0] = j
            return grays[j]

        index, band = _refine_boundaries(index, boundary, fdb.k, gray_of, stride if stride > 1 else 0, match_exposure)
        grays.clear()
        timings["refine"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        index = remove_small_labels(index, post.area_fraction)
        timings["postprocess"] += time.perf_counter() - t0
    if stride > 1:  # the frames the chain skipped: the sharpest within `stride` of the chain's choice
        t0 = time.perf_counter()
        index = _local_sharpest(view, index, stride, fdb.k, to_net)
        timings["postprocess"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    if scale < 1:  # the decision back to full size; every pixel not from frame 0 is copied below
        size = (first.shape[1], first.shape[0])
        index = cv2.resize(index, size, interpolation=cv2.INTER_NEAREST)
        band = cv2.resize(band.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        scanned = np.zeros(index.shape, np.uint8)
    changed = index != scanned
    for j in np.unique(index[changed]):
        take = changed & (index == j)
        frame = np.asarray(view[int(j)])
        fused[take] = frame[take]
    timings["fuse"] += time.perf_counter() - t0
    return StackResult(fused, index, alignment, band, timings)
