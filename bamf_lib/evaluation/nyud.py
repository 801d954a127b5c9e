"""The ground-truth benchmark ``nyud40``: fusion scored against the all-in-focus image.

The Lytro and grayscale pairs have no ground truth, so Table 1 can only score a fused image
against its sources.  The 40 NYU-Depth-V2 pairs of ``nyud/`` (Silberman et al. 2012, blurred by
depth into a near- and a far-focused source and redistributed with FusionDiff, Li et al. 2024)
come with the all-in-focus image ``GT``, so here a fused image ``F`` is scored against it:

* **PSNR** in dB over all pixels and channels, ``10 log10(255^2 / MSE(F, GT))``, capped at 60 dB
  (in some pairs a source equals ``GT`` in places, and a perfect copy would be infinite);
* **SSIM** (Wang et al. 2004, scikit-image's ``structural_similarity`` on the colour image,
  Gaussian-weighted, as in the original paper);
* **decision accuracy** against the decision the ground truth implies: a pixel should come from A
  where ``|A - GT| < |B - GT|`` (summed over the colour channels), from B where the inequality is
  reversed; ties (equal distances) are not scored.  A method's decision map says which source
  each fused pixel came from (GFF blends, so its map is the argmax of its weights);
* the four metrics of Table 1 (:func:`bamf_lib.evaluation.metrics.all_metrics`).

These pairs are **test data only**: no network is trained and no threshold is tuned on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from skimage.metrics import structural_similarity

from bamf_lib.data import datasets

__all__ = [
    "PSNR_CAP",
    "truth_decision",
    "psnr",
    "ssim",
    "decision_accuracy",
    "Method",
    "default_methods",
    "evaluate_nyud",
    "format_nyud",
]

PSNR_CAP = 60.0

# (sources) -> (fused uint8 like the sources, decision bool (H, W): True where A is taken)
Method = Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]]


def truth_decision(a: np.ndarray, b: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth's decision and where it is defined: ``(take_a, scored)``, bool (H, W).

    Examples
    --------
    >>> gt = np.array([[10, 10, 10]], np.uint8)
    >>> take_a, scored = truth_decision(np.array([[10, 0, 7]], np.uint8), np.array([[0, 10, 13]], np.uint8), gt)
    >>> take_a.tolist(), scored.tolist()
    ([[True, False, False]], [[True, True, False]])
    """
    a, b, gt = (np.asarray(x, np.int32) for x in (a, b, gt))
    if not a.shape == b.shape == gt.shape:
        raise ValueError(f"A, B and GT must have one shape, got {a.shape}, {b.shape}, {gt.shape}")
    da, db = np.abs(a - gt), np.abs(b - gt)
    if da.ndim == 3:
        da, db = da.sum(2), db.sum(2)
    return da < db, da != db


def psnr(image: np.ndarray, reference: np.ndarray, *, cap: float = PSNR_CAP) -> float:
    """PSNR (dB) of a uint8 image against its reference, at most ``cap``.

    Examples
    --------
    >>> ref = np.zeros((4, 4), np.uint8)
    >>> psnr(ref + 1, ref), psnr(ref, ref)
    (48.1308036086791, 60.0)
    """
    err = np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2)
    return float(cap) if err == 0 else float(min(cap, 10.0 * np.log10(255.0**2 / err)))


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of a uint8 image against its reference (Gaussian window, sigma 1.5, as Wang et al.)."""
    channel_axis = 2 if np.ndim(reference) == 3 else None
    return float(
        structural_similarity(
            image,
            reference,
            data_range=255,
            channel_axis=channel_axis,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def decision_accuracy(decision: np.ndarray, take_a: np.ndarray, scored: np.ndarray) -> float:
    """Fraction of the scored pixels where ``decision`` (True = A) agrees with the truth."""
    if not scored.any():
        return float("nan")
    return float((np.asarray(decision, bool) == take_a)[scored].mean())


def _bamf(refine: bool, weights=None, path: str = "fast", swap_average: bool = False) -> Method:
    def run(sources: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        from bamf_lib.fusion.pipeline import fuse

        r = fuse(sources, refine=refine, weights=weights, path=path, device="cpu", swap_average=swap_average)
        return r.fused, r.decision_map == 0

    return run


def _gff(sources: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    from bamf_lib.fusion.baselines import gff_decision_map, gff_fuse

    return gff_fuse(sources), np.asarray(gff_decision_map(sources)) > 0.5


def default_methods(weights=None, path: str = "fast", swap_average: bool = False) -> dict[str, Method]:
    """``bamf``, ``bamf-initial`` (the networks in the folder ``weights``, default the shipped
    ones, scored on ``path``, each pair in both orders with ``swap_average``) and ``gff`` (this
    project's GFF)."""
    nets = dict(weights=weights, path=path, swap_average=swap_average)
    return {"bamf": _bamf(True, **nets), "bamf-initial": _bamf(False, **nets), "gff": _gff}


def evaluate_nyud(
    methods: Mapping[str, Method] | None = None,
    pairs: Sequence[int] = datasets.NYUD_INDICES,
    *,
    metrics: bool = True,
    progress: bool = False,
) -> dict[str, dict]:
    """Score every method on every pair of ``nyud40`` (or the given pair numbers).

    Returns
    -------
    dict
        ``method -> {"per_pair": {n: {"psnr", "ssim", "accuracy", "Q_MI", ...}}, "mean": {...},
        "worst": (pair, accuracy), "seconds": total}``.
    """
    from tqdm.auto import tqdm

    from bamf_lib.evaluation.metrics import all_metrics

    methods = default_methods() if methods is None else methods
    out: dict[str, dict] = {name: {"per_pair": {}, "seconds": 0.0} for name in methods}
    for n in tqdm(list(pairs), desc="nyud40", unit="pair", disable=not progress):
        a, b, gt = datasets.nyud_pair(n)
        take_a, scored = truth_decision(a, b, gt)
        for name, method in methods.items():
            t0 = time.perf_counter()
            fused, decision = method([a, b])
            out[name]["seconds"] += time.perf_counter() - t0
            row = {
                "psnr": psnr(fused, gt),
                "ssim": ssim(fused, gt),
                "accuracy": decision_accuracy(decision, take_a, scored),
            }
            if metrics:
                row.update({k: float(v) for k, v in all_metrics(a, b, fused).items()})
            out[name]["per_pair"][int(n)] = row
    for res in out.values():
        rows = res["per_pair"]
        keys = next(iter(rows.values())).keys()
        res["mean"] = {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}
        worst = min(rows, key=lambda n: rows[n]["accuracy"])
        res["worst"] = (worst, rows[worst]["accuracy"])
    return out


def format_nyud(result: Mapping[str, dict]) -> str:
    """The benchmark as a Markdown table, methods as rows."""
    keys = list(next(iter(result.values()))["mean"])
    head = ["method", *(k.replace("psnr", "PSNR (dB)").replace("ssim", "SSIM") for k in keys), "worst pair (acc.)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in result.items():
        cells = [f"{res['mean'][k]:.2f}" if k == "psnr" else f"{res['mean'][k]:.4f}" for k in keys]
        n, acc = res["worst"]
        lines.append("| " + " | ".join([name, *cells, f"nyud-{n} ({acc:.3f})"]) + " |")
    return "\n".join(lines)
