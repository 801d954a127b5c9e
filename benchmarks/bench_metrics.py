"""Time the four fusion metrics on one 520 x 520 RGB triple, on one core.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_metrics.py [--repeat 7]

Uses Lytro pair 01 and the published CNN fusion when ``BAMF_DATA_DIR`` is set, a synthetic
triple of the same size otherwise. Prints each metric's time, the four together through
``all_metrics`` (best and median of ``--repeat`` runs) and the ratio to the 0.4 s budget.
"""

from __future__ import annotations

import os

# one core for every threaded library; set before numpy, OpenCV and torch load
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bamf_lib.evaluation import metrics  # noqa: E402

BUDGET_S = 0.4


def _triple() -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], str]:
    if os.environ.get("BAMF_DATA_DIR"):
        from bamf_lib.data import datasets

        a, b = datasets.lytro_pair(1)
        return (a, b, datasets.published_fused("cnn", "color", 1)), "Lytro pair 01 with the published CNN fusion"
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (520, 520, 3)), (0, 0), 1.5).astype(np.uint8)
    blurred = cv2.GaussianBlur(scene, (0, 0), 3.0)
    left = np.zeros((520, 520, 1), bool)
    left[:, :260] = True
    return (np.where(left, scene, blurred), np.where(left, blurred, scene), scene), "synthetic 520x520 RGB triple"


def _time(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up: first-call allocations and FFT plans
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    (a, b, f), what = _triple()
    print(f"data: {what}, shape {a.shape}; threads: OpenCV {cv2.getNumThreads()}, OMP {os.environ['OMP_NUM_THREADS']}")
    for name, fn in (("Q_MI", metrics.q_mi), ("Q_G", metrics.q_g), ("Q_Y", metrics.q_y), ("Q_CB", metrics.q_cb)):
        best, median = _time(lambda fn=fn: fn(a, b, f), args.repeat)
        print(f"{name:5s} best {best * 1e3:7.1f} ms   median {median * 1e3:7.1f} ms")
    best, median = _time(lambda: metrics.all_metrics(a, b, f), args.repeat)
    print(
        f"all_metrics best {best:.3f} s   median {median:.3f} s   budget {BUDGET_S} s   median/budget {median / BUDGET_S:.2f}"
    )


if __name__ == "__main__":
    main()
