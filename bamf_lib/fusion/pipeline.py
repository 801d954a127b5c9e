"""Fusing a focus stack: the whole pipeline of the paper, for two or more sources.

``fuse`` runs io -> initial score map -> FDB classification and boundary refinement ->
post-processing -> pixel selection.  The decision is made on gray images
(:func:`bamf_lib.io.to_float_gray`); colour sources are fused per channel from that one
decision, ``F = D A + (1 - D) B``, so the fused image has the sources' shape and dtype.

**Decision map convention.**  ``FusionResult.decision_map[i, j]`` is the index of the
source whose pixel was taken (0 for the first source).  For a pair the paper's ``D``
(1 where A is focused) is therefore ``decision_map == 0``.

**More than two sources.**  The paper fuses pairs.  A stack ``S0, S1, ..., S(N-1)``
is fused by sequential pairwise fusion: the running result (initially ``S0``) is fused
with the next source with the same networks and post-processing, and the index map
records, per pixel, which source the running result last took.  Each step is the
paper's method on a pair, so a pair fuses exactly as the paper says.  The score maps of
the ``N - 1`` steps are stacked along a first axis.

**Backends.**  The shipped networks are padding-free and stride 1, so their whole-image score
map is one ONNX graph: by default (``backend="auto"``) they run on ONNX Runtime
(:mod:`bamf_lib.runtime.onnx`), and fusing never imports torch.  ``backend="torch"``, a CUDA device,
the reference path or a zero-padded network run PyTorch (:mod:`bamf_lib.nets.scoring`).  They are
one function in different float32 orders: scores agree to 1e-5 on random inputs (a few 1e-5
on whole photos for the 20-layer nets, as torch's own optimised and plain paths do), and
decision maps are identical but for pixels whose score is that close to 0.5
(``tests/test_onnxnet.py``; ``benchmarks/bench_cli.py --check-lytro``).

**Alignment.**  Hand-held stacks move between shots; ``align=True`` registers every
source to the first with OpenCV's ECC (affine motion, coarse-to-fine on a Gaussian
pyramid) before fusing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bamf_lib.fusion import boundary as _boundary
from bamf_lib.runtime import onnx as onnxnet
from bamf_lib.config import SCORING_PATHS, FDBConfig, PostprocessConfig
from bamf_lib.io import check_sources, to_float_gray
from bamf_lib.fusion.postprocess import decision_map as _decision_map

__all__ = ["FusionResult", "fuse", "fdb_for", "align_sources", "load_net", "MAX_SOURCES", "BACKENDS"]

#: most sources :func:`fuse` takes: the decision map holds a source's index in a uint8
MAX_SOURCES = 256
#: what runs the networks: ONNX Runtime (no torch), PyTorch, or the first that applies
BACKENDS = ("auto", "onnx", "torch")


def _gpu_present() -> bool:
    """An NVIDIA driver is loaded (cheap; only then is torch imported to ask for CUDA)."""
    return Path("/proc/driver/nvidia/version").exists()


def _onnx_reason(config, path: str, device: str) -> str | None:
    """Why ONNX Runtime cannot run these networks here (None: it can)."""
    if not config.dense_capable:
        return "these networks are not padding-free and stride 1, so their whole-image pass needs torch"
    if path == "reference":
        return "the reference path (a patch per pixel) runs on torch"
    if str(device) not in ("cpu", "auto"):
        return f"device {device!r} runs on torch (ONNX Runtime runs here on the CPU)"
    if not onnxnet.available():
        return "onnxruntime is not installed"
    return None


def load_net(net: str = "initial", weights=None, *, device: str = "auto", backend: str = "auto", path: str = "fast"):
    """The ``initial`` or ``boundary`` network as :func:`fuse` runs it.

    Parameters
    ----------
    net : {"initial", "boundary"}
    weights : path-like, optional
        Folder of the networks (:func:`bamf_lib.nets.weightfile.weights_path`); default the shipped ones.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    backend : {"auto", "onnx", "torch"}
        ``"onnx"``: an :class:`~bamf_lib.runtime.onnx.OnnxNet` (ONNX Runtime on the CPU; never
        imports torch when the weights' graph exists, else exports it once, with torch).
        ``"torch"``: the :class:`~bamf_lib.nets.models.FocusResNet`.  ``"auto"``: ONNX where it
        computes the same scores (a dense-capable net, a whole-image ``path``, the CPU: ``"auto"``
        device without an NVIDIA driver), torch otherwise.
    path : str
        The scoring path that will be used (the reference path is torch's).

    Returns
    -------
    OnnxNet or FocusResNet
    """
    from bamf_lib.nets.weightfile import header_info, weights_path

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    file = weights_path(net, weights)
    reason = None
    if backend != "torch" and file.is_file():
        reason = _onnx_reason(header_info(file)[0], path, device)
        if backend == "auto" and reason is None and device == "auto" and _gpu_present():
            reason = "a GPU may be present"
        if reason is None:
            return _onnx_net(file)
        if backend == "onnx":
            raise ValueError(f"backend 'onnx' cannot run {file}: {reason}")
    from bamf_lib.nets.weightfile import load_pretrained

    if not file.is_file():
        return load_pretrained(net, weights)  # raises FileNotFoundError, saying how to train them
    try:
        from bamf_lib.nets.models import resolve_device
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        why = "--backend torch" if backend == "torch" else reason
        raise ValueError(f"{why}: that needs PyTorch, which is not installed here; pip install 'bamf[train]'") from None
    return load_pretrained(net, weights, device=resolve_device(device))


def _onnx_net(file: Path):
    try:
        return onnxnet.load_onnx(file)
    except onnxnet.StaleGraphError as exc:
        try:
            from bamf_lib.nets.export import export_weights
        except ModuleNotFoundError:
            raise exc from None
        export_weights(file, exc.cache)  # a network trained here: its graph is made once, checked, and cached
        return onnxnet.load_onnx(file)


@dataclass
class FusionResult:
    """What :func:`fuse` returns.

    Attributes
    ----------
    fused : ndarray
        The fused image, same shape and dtype as the sources.
    decision_map : ndarray of uint8, shape (H, W)
        Index of the source taken at each pixel.
    score_map : ndarray of float32
        Initial score map, (H, W) for a pair, (N - 1, H, W) for N sources (one per step).
    refined_score_map : ndarray of float32
        Score map after boundary refinement (same shape as ``score_map``).
    near_boundary : ndarray of bool
        The re-scored (near-FDB) pixels (same shape as ``score_map``).
    timings : dict[str, float]
        Seconds per stage: ``align``, ``score``, ``refine``, ``postprocess``, ``fuse``.
    """

    fused: np.ndarray
    decision_map: np.ndarray
    score_map: np.ndarray
    refined_score_map: np.ndarray
    near_boundary: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def fdb_for(initial) -> FDBConfig:
    """The FDB window and threshold tuned for ``initial``: its weights' ``"fdb"`` metadata
    (written by ``scripts/weights_report.py --store``), else :class:`FDBConfig`'s defaults,
    which were tuned for the shipped default nets."""
    tuned = (getattr(initial, "metadata", None) or {}).get("fdb")
    return FDBConfig(**tuned) if tuned else FDBConfig()


def _ecc_affine(ref: np.ndarray, mov: np.ndarray, levels: int) -> np.ndarray:
    """Affine warp (2 x 3, inverse map) taking ``mov`` onto ``ref``, coarse to fine.

    The coarsest level estimates a translation only and no level goes below 128 pixels:
    affine ECC on tiny images drifts to wild warps.  A level whose result strays far
    from a rigid-ish warp is ignored.
    """
    refs, movs = [ref], [mov]
    while len(refs) < levels and min(refs[-1].shape) >= 256:
        refs.append(cv2.pyrDown(refs[-1]))
        movs.append(cv2.pyrDown(movs[-1]))
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    for level in range(len(refs) - 1, -1, -1):
        motion = cv2.MOTION_TRANSLATION if level == len(refs) - 1 and level else cv2.MOTION_AFFINE
        try:
            _, new = cv2.findTransformECC(refs[level], movs[level], warp.copy(), motion, criteria, None, 5)
            if np.abs(new[:, :2] - np.eye(2)).max() < 0.2:
                warp = new
        except cv2.error:
            pass  # ECC did not converge at this level: keep the coarser estimate
        if level:
            warp[:, 2] *= 2.0
    return warp


def align_sources(sources: Sequence[np.ndarray], *, levels: int = 4) -> list[np.ndarray]:
    """Register every source to the first with ECC (affine), coarse to fine.

    Parameters
    ----------
    sources : sequence of uint8 ndarray
        Gray or RGB images of one size.
    levels : int
        Pyramid levels (each halves the size); the coarse levels make large shifts cheap.

    Returns
    -------
    list of ndarray
        The first source unchanged, the others warped onto it (borders mirrored).
    """
    sources = list(sources)
    ref = to_float_gray(sources[0])
    out = [sources[0]]
    h, w = ref.shape
    for src in sources[1:]:
        warp = _ecc_affine(ref, to_float_gray(src), levels)
        out.append(cv2.warpAffine(src, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT))
    return out


def _select(decision: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``D A + (1 - D) B`` for a binary ``D``, per channel, keeping the dtype."""
    d = decision[..., None] if a.ndim == 3 else decision
    return np.where(d, a, b)


def fuse(
    sources: Sequence[np.ndarray],
    *,
    path: str = "fast",
    device: str = "auto",
    align: bool = False,
    fdb: FDBConfig | None = None,
    post: PostprocessConfig = PostprocessConfig(),
    refine: bool = True,
    progress: bool = False,
    initial=None,
    boundary=None,
    weights=None,
    optimized: bool = True,
    backend: str = "auto",
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
        Register the sources to the first before fusing (:func:`align_sources`).
    fdb : FDBConfig, optional
        Window ``k`` and margin ``tau`` of the boundary band; default: the values tuned
        for the initial network (:func:`fdb_for`).
    post : PostprocessConfig
        Binarisation threshold and small-region area fraction.
    refine : bool
        Re-score the boundary band with the boundary network (False: initial net alone,
        the paper's "w/o" column).
    progress : bool
        Show progress bars while scoring.
    initial, boundary : OnnxNet or torch.nn.Module, optional
        Networks to use; by default :func:`load_net`'s.
    weights : path-like, optional
        Folder of the default networks (see :func:`bamf_lib.nets.weightfile.weights_path`); default
        the shipped ones.
    optimized : bool
        Score torch networks with their inference copies (:mod:`bamf_lib.nets.inference`; default)
        or, False, with the plain networks.
    backend : {"auto", "onnx", "torch"}
        What runs the default networks (:func:`load_net`): ``"auto"`` is ONNX Runtime on the
        CPU where it computes the same scores (the shipped nets), which never imports torch.

    Returns
    -------
    FusionResult

    Examples
    --------
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
    if len(sources) > MAX_SOURCES:
        raise ValueError(f"got {len(sources)} sources, more than the {MAX_SOURCES} a uint8 decision map can index; "
                         f"fuse them in groups, then fuse the groups' results")
    timings = dict.fromkeys(("align", "score", "refine", "postprocess", "fuse"), 0.0)
    load = dict(device=device, backend=backend, path=path)
    initial = initial if initial is not None else load_net("initial", weights, **load)
    if refine and boundary is None:
        boundary = load_net("boundary", weights, **load)
    if not all(isinstance(n, onnxnet.OnnxNet) for n in (initial, boundary) if n is not None):
        from bamf_lib.nets.models import resolve_device

        device = resolve_device(device)
    fdb = fdb if fdb is not None else fdb_for(initial)
    patch = int(getattr(getattr(initial, "config", None), "patch_size", 1))
    sources = check_sources(sources, min_size=patch)

    t0 = time.perf_counter()
    if align:
        sources = align_sources(sources)
    timings["align"] = time.perf_counter() - t0

    fused = sources[0]
    index = np.zeros(sources[0].shape[:2], np.uint8)
    scores, refined_scores, bands = [], [], []
    for i, nxt in enumerate(sources[1:], start=1):
        t0 = time.perf_counter()
        a, b = to_float_gray(fused), to_float_gray(nxt)
        if isinstance(initial, onnxnet.OnnxNet):
            score = initial.score_map(a, b, progress=progress)
        else:
            from bamf_lib.nets import scoring

            score = scoring.score_map(initial, a, b, path=path, device=device, progress=progress, optimized=optimized)
        t1 = time.perf_counter()
        if refine:
            refined, band = _boundary.refine(score, a, b, boundary, k=fdb.k, tau=fdb.tau, path=path, device=device,
                                             optimized=optimized)
        else:
            refined, band = score, np.zeros(score.shape, bool)
        t2 = time.perf_counter()
        take_running = _decision_map(refined, post)
        t3 = time.perf_counter()
        fused = _select(take_running, fused, nxt)
        index[~take_running] = i
        t4 = time.perf_counter()
        for key, dt in zip(("score", "refine", "postprocess", "fuse"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            timings[key] += dt
        scores.append(score)
        refined_scores.append(refined)
        bands.append(band)

    stack = (lambda xs: xs[0]) if len(sources) == 2 else np.stack
    return FusionResult(
        fused=np.ascontiguousarray(fused),
        decision_map=index,
        score_map=stack(scores),
        refined_score_map=stack(refined_scores),
        near_boundary=stack(bands),
        timings=timings,
    )
