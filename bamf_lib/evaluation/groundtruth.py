"""A synthetic test set with a known decision map, and scores of a decision map against it.

Real multi-focus pairs (Lytro, the grayscale and classic pairs) have no ground truth.  Here
source pairs are composed exactly as the training data (:mod:`bamf_lib.data.synthesis`) but from
foregrounds and backgrounds that training never sees (the held-out scikit-image groups
``test_foreground`` and ``test_background`` of :data:`bamf_lib.data.datasets.EMBEDDED_GROUPS`), so
the true decision map is known: 1 where A is focused, i.e. where ``alpha > 0.5``.

A decision map ``D`` follows the fusion rule ``F = D A + (1 - D) B``: 1 (True) where source A
is chosen.  :func:`evaluate_decisions` scores the decision maps of several methods
(:func:`default_deciders`) on such pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from bamf_lib.config import SynthesisConfig
from bamf_lib.data.patches import label_map
from bamf_lib.data.sources import load_backgrounds, load_foregrounds, natural_backgrounds, soft_alpha_mask
from bamf_lib.data.synthesis import blurred_pair

__all__ = [
    "GroundTruthPair",
    "groundtruth_set",
    "camera_validation_set",
    "pixel_accuracy",
    "boundary_band",
    "boundary_accuracy",
    "boundary_fscore",
    "decision_edges",
    "score_decision_map",
    "Decider",
    "default_deciders",
    "evaluate_decisions",
]


@dataclass(frozen=True)
class GroundTruthPair:
    """One synthetic test pair: gray uint8 sources, the true decision map and how it was made."""

    name: str
    a: np.ndarray  # uint8 (H, W), foreground focused
    b: np.ndarray  # uint8 (H, W), background focused
    truth: np.ndarray  # bool (H, W), True where A is the focused source
    alpha: np.ndarray  # float32 (H, W), the matte
    sigma_fg: float
    sigma_bg: float


def groundtruth_set(
    n_pairs: int = 6,
    *,
    seed: int = 0,
    sigma_range: tuple[float, float] = (2.0, 5.0),
    foreground_scale: float = 0.5,
    images: str = "embedded",
    camera: SynthesisConfig | None = None,
) -> list[GroundTruthPair]:
    """Source pairs from held-out foreground/background combinations, with true decision maps.

    Parameters
    ----------
    n_pairs : int
        Number of pairs; pair ``k`` combines held-out foreground ``k mod 2`` (each with its own
        procedural matte) with held-out background ``k mod 2`` (and its rotations).
    seed : int
        Fixes the mattes, blurs and background crops.
    sigma_range : (float, float)
        Blur sigma range, as in training.
    foreground_scale : float
        Resize factor of the foreground images; half, as in training (200x300 and 152x192).
        Ignored for ``images="kodak"``.
    images : {"embedded", "kodak", "matting"}
        ``"embedded"``: the held-out scikit-image groups (small pairs).  ``"kodak"``: the sharp
        Kodak24 photographs, which training never sees (:data:`bamf_lib.data.sources.HELD_OUT_BACKGROUNDS`),
        at full size (500x500): pair ``k`` puts photograph ``k`` over photograph ``k + 1``
        (cyclically, shifted by one more every round) through a procedural matte.  Needs
        ``BAMF_DATA_DIR`` or the download.  This is the synthetic validation set on which
        candidate networks and their (k, tau) are chosen.  ``"matting"``: the 27 alpha-matting
        foregrounds with their true mattes, resized by ``foreground_scale``, over the Kodak24
        photographs: objects training has seen, on backgrounds it never has.
    camera : SynthesisConfig, optional
        The blur model (PSF family, sigma law, depth ramp, noise, JPEG) of
        :func:`~bamf_lib.data.synthesis.blurred_pair`; None is the paper's Gaussian.  Its
        ``sigma_range`` is not used: ``sigma_range`` is.

    Returns
    -------
    list of GroundTruthPair

    Examples
    --------
    >>> pair = groundtruth_set(1)[0]
    >>> pair.a.shape == pair.truth.shape, pair.truth.dtype
    (True, dtype('bool'))
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    lo, hi = sigma_range
    if not 0 < lo <= hi:
        raise ValueError(f"sigma_range must satisfy 0 < low <= high, got {sigma_range}")
    if images not in ("embedded", "kodak", "matting"):
        raise ValueError(f"images must be 'embedded', 'kodak' or 'matting', got {images!r}")
    if images == "matting":
        photos = natural_backgrounds(held_out=True)
        mats = load_foregrounds(SynthesisConfig(source="alphamatting", foreground_scale=foreground_scale))
        fgs = [mats[k % len(mats)] for k in range(n_pairs)]
        bgs = [photos[(k + k // len(mats)) % len(photos)] for k in range(n_pairs)]
    elif images == "kodak":
        photos = natural_backgrounds(held_out=True)
        m = len(photos)
        fgs, bgs = [], []
        for k in range(n_pairs):
            name, fg = photos[k % m]
            fgs.append((name, fg, soft_alpha_mask(fg.shape, rng=np.random.default_rng([seed, 12, k]))))
            bgs.append(photos[(k + 1 + k // m) % m])
    else:
        cfg = SynthesisConfig(
            source="embedded",
            foreground_scale=foreground_scale,
            seed=seed,
            n_foregrounds=n_pairs,
            n_backgrounds=n_pairs,
            sigma_range=sigma_range,
        )
        fgs = load_foregrounds(cfg, role="test")
        bgs = load_backgrounds(cfg, role="test")
    out = []
    for k in range(n_pairs):
        name, fg, alpha = fgs[k]
        bg_name, bg = bgs[k]
        _, a, b, s_fg, s_bg = blurred_pair(
            fg, alpha, bg, np.random.default_rng([seed, 11, k]), sigma_range, camera=camera
        )
        out.append(GroundTruthPair(f"gt{k:02d}-{name}-on-{bg_name}", a, b, label_map(alpha), alpha, s_fg, s_bg))
    return out


def camera_validation_set(n_pairs: int = 24, *, seed: int = 2) -> list[GroundTruthPair]:
    """The training campaign's validation set: pairs blurred as the ``camera`` profile's
    synthesis blurs (disc or Gaussian PSF, sigma log-uniform from mild to strong, depth ramp,
    noise, JPEG), half Kodak24 over Kodak24 through procedural mattes, half alpha-matting
    foregrounds over Kodak24 (:func:`groundtruth_set` with ``images="kodak"`` and
    ``"matting"``).  No test pair is read.  Seed 1 is for tuning (k, tau), seed 2 for scoring.
    """
    from bamf_lib.config import get_profile

    cam = get_profile("camera").synthesis
    half = n_pairs // 2
    common = {"seed": seed, "sigma_range": cam.sigma_range, "camera": cam}
    kodak = groundtruth_set(half, images="kodak", **common) if half else []
    matting = groundtruth_set(n_pairs - half, images="matting", foreground_scale=cam.foreground_scale, **common)
    return kodak + matting


def _as_masks(decision: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    decision = np.asarray(decision)
    truth = np.asarray(truth)
    if decision.shape != truth.shape or decision.ndim != 2:
        raise ValueError(f"decision shape {decision.shape} must equal truth shape {truth.shape} (2-D)")
    d = decision > 0.5 if decision.dtype != bool else decision
    t = truth > 0.5 if truth.dtype != bool else truth
    return d, t


def pixel_accuracy(decision: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pixels where the decision map (binarised at 0.5) equals the truth.

    >>> pixel_accuracy(np.eye(4), np.eye(4, dtype=bool))
    1.0
    """
    d, t = _as_masks(decision, truth)
    return float(np.mean(d == t))


def boundary_band(truth: np.ndarray, radius: float = 8) -> np.ndarray:
    """Pixels within ``radius`` px (Euclidean) of the focused/defocused boundary of ``truth``."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    t = np.asarray(truth, dtype=bool)
    if t.all() or not t.any():
        return np.zeros_like(t)
    # distance of each pixel to the nearest pixel of the other class
    to_other = np.where(t, ndimage.distance_transform_edt(t), ndimage.distance_transform_edt(~t))
    return to_other <= radius


def boundary_accuracy(decision: np.ndarray, truth: np.ndarray, *, radius: float = 8) -> float:
    """Pixel accuracy restricted to the pixels within ``radius`` px of the true boundary (NaN if none)."""
    d, t = _as_masks(decision, truth)
    band = boundary_band(t, radius)
    return float(np.mean(d[band] == t[band])) if band.any() else float("nan")


def decision_edges(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` or its complement that touch the other class (4-neighbourhood)."""
    m = mask.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return cv2.morphologyEx(m, cv2.MORPH_GRADIENT, kernel, borderType=cv2.BORDER_REPLICATE) > 0


def boundary_fscore(decision: np.ndarray, truth: np.ndarray, *, tolerance: float = 2) -> float:
    """F-measure of the decision map's boundary against the true one, matched within ``tolerance`` px.

    Precision: fraction of predicted boundary pixels within ``tolerance`` of a true boundary
    pixel; recall the converse (the DAVIS/BSDS contour measure without one-to-one matching).
    1.0 when neither map has a boundary, 0.0 when only one has.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    d, t = _as_masks(decision, truth)
    ed, et = decision_edges(d), decision_edges(t)
    if not ed.any() and not et.any():
        return 1.0
    if not ed.any() or not et.any():
        return 0.0
    precision = float(np.mean(ndimage.distance_transform_edt(~et)[ed] <= tolerance))
    recall = float(np.mean(ndimage.distance_transform_edt(~ed)[et] <= tolerance))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_decision_map(
    decision: np.ndarray, truth: np.ndarray, *, radius: float = 8, tolerance: float = 2
) -> dict[str, float]:
    """All three scores: ``{"accuracy", "boundary_accuracy", "boundary_f"}``.

    >>> t = np.zeros((32, 32), bool); t[:, 16:] = True
    >>> score_decision_map(t, t)["boundary_f"]
    1.0
    """
    return {
        "accuracy": pixel_accuracy(decision, truth),
        "boundary_accuracy": boundary_accuracy(decision, truth, radius=radius),
        "boundary_f": boundary_fscore(decision, truth, tolerance=tolerance),
    }


Decider = Callable[[np.ndarray, np.ndarray], np.ndarray]


def default_deciders(fdb=None, weights=None) -> dict[str, Decider]:
    """Decision-map makers ``(a, b) -> bool (H, W)`` (True where A is taken) for
    :func:`evaluate_decisions`: ``bamf-initial``, ``bamf`` (the shipped weights or the folder
    ``weights``'s, CPU, ``fdb`` or the values tuned for the initial net,
    :func:`bamf_lib.fusion.boundary.fdb_for`) and ``gff`` (:func:`bamf_lib.fusion.baselines.gff_decision_map`)."""
    from bamf_lib.fusion.baselines import gff_decision_map

    def bamf(refine: bool) -> Decider:
        def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            from bamf_lib.fusion.pipeline import fuse

            return fuse([a, b], refine=refine, fdb=fdb, device="cpu", weights=weights).decision_map == 0

        return run

    return {"bamf-initial": bamf(False), "bamf": bamf(True), "gff": lambda a, b: gff_decision_map([a, b])}


def evaluate_decisions(
    pairs: Sequence, deciders: Mapping[str, Decider], *, radius: float = 8, tolerance: float = 2
) -> dict[str, dict]:
    """Score decision maps against a known truth (:func:`score_decision_map`).

    Parameters
    ----------
    pairs : sequence
        Items with uint8 ``a``, ``b``, bool ``truth`` and a ``name``, e.g.
        :func:`groundtruth_set`.
    deciders : mapping name -> callable
        ``(a, b) -> decision (H, W)``, True (or > 0.5) where A is taken; see :func:`default_deciders`.
    radius, tolerance : float
        Boundary band and boundary-matching tolerance in pixels.

    Returns
    -------
    dict
        ``name -> {"per_pair": {pair: {"accuracy", "boundary_accuracy", "boundary_f"}},
        "mean": {score: mean over pairs}, "seconds": {pair: time to decide}, "decisions":
        {pair: bool map}}``.
    """
    if not pairs:
        raise ValueError("pairs is empty")
    if not deciders:
        raise ValueError("deciders is empty")
    out: dict[str, dict] = {}
    for name, decide in deciders.items():
        per_pair, seconds, decisions = {}, {}, {}
        for pair in pairs:
            t0 = time.perf_counter()
            d = np.asarray(decide(pair.a, pair.b)) > 0.5
            seconds[pair.name] = time.perf_counter() - t0
            decisions[pair.name] = d
            per_pair[pair.name] = score_decision_map(d, pair.truth, radius=radius, tolerance=tolerance)
        keys = next(iter(per_pair.values()))
        mean = {k: float(np.nanmean([s[k] for s in per_pair.values()])) for k in keys}
        out[name] = {"per_pair": per_pair, "mean": mean, "seconds": seconds, "decisions": decisions}
    return out
