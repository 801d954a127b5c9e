"""Tests for bamf_lib.evaluation.metrics: behaviour on synthetic images, input validation, the CLI,
and agreement with the survey toolbox's published scores on all 180 (method, image) pairs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from bamf_lib.colour import rgb2gray
from bamf_lib.evaluation import metrics, published
from bamf_lib.evaluation.metrics import all_metrics, q_cb, q_g, q_mi, q_y
from bamf_lib.io import write_image

METRICS = {"Q_MI": q_mi, "Q_G": q_g, "Q_Y": q_y, "Q_CB": q_cb}


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A textured scene, and two sources each blurred on one half: (a, b, sharp fusion, blurred fusion)."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (96, 96)), (0, 0), 1.0)
    scene = np.clip(scene * 2.0 - 128.0, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(scene, (0, 0), 3.0)
    left = np.zeros(scene.shape, bool)
    left[:, :48] = True
    a = np.where(left, scene, blurred)
    b = np.where(left, blurred, scene)
    return a, b, scene, blurred


@pytest.mark.parametrize("name", list(METRICS))
def test_sharp_fusion_beats_blurred_fusion(pair, name):
    a, b, sharp, blurred = pair
    assert METRICS[name](a, b, sharp) > METRICS[name](a, b, blurred) + 0.02


@pytest.mark.parametrize("name", list(METRICS))
def test_metrics_are_symmetric_in_the_sources(pair, name):
    a, b, sharp, _ = pair
    assert METRICS[name](a, b, sharp) == pytest.approx(METRICS[name](b, a, sharp), abs=1e-12)


def test_identical_images_score_the_maximum(pair):
    a = pair[2]
    assert q_mi(a, a, a) == pytest.approx(2.0, abs=1e-12)
    assert q_y(a, a, a) == pytest.approx(1.0, abs=1e-12)
    assert q_cb(a, a, a) == pytest.approx(1.0, abs=1e-12)
    # Q_G's sigmoids at perfect strength (1) and orientation (1) agreement fall a bit short of 1
    best = 0.9994 / (1 + np.exp(-15 * 0.5)) * 0.9879 / (1 + np.exp(-22 * 0.2))
    assert q_g(a, a, a) == pytest.approx(best, abs=1e-12)


def test_colour_is_scored_through_matlab_rgb2gray(pair):
    rng = np.random.default_rng(1)
    tint = rng.integers(0, 40, 3)
    rgb = [np.clip(np.stack([x.astype(int) - t for t in tint], axis=-1), 0, 255).astype(np.uint8) for x in pair[:3]]
    assert all_metrics(*rgb) == all_metrics(*(rgb2gray(x) for x in rgb))


def test_all_metrics_matches_the_single_metrics(pair):
    a, b, f, _ = pair
    values = all_metrics(a, b, f)
    assert list(values) == ["Q_MI", "Q_G", "Q_Y", "Q_CB"]
    for name, fn in METRICS.items():
        assert values[name] == fn(a, b, f)


def test_q_y_treats_constant_windows_exactly():
    # constant sources 100 and fused 50: every SSIM is (2xy)/(x^2+y^2) exactly, lambda = 1/2
    a = np.full((20, 20), 100, np.uint8)
    f = np.full((20, 20), 50, np.uint8)
    assert q_y(a, a, f) == pytest.approx(2 * 100 * 50 / (100**2 + 50**2), abs=1e-12)
    # B textured, A and F flat: SSIM(A, B) ~ 0 < 0.75, so Q_Y = max(SSIM(A, F), SSIM(B, F)) = 0.8
    # exactly; a plain float64 port divides rounding noise by rounding noise in SSIM(A, F)
    rng = np.random.default_rng(2)
    b = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    assert q_y(a, b, f) == pytest.approx(0.8, abs=1e-9)


def test_q_y_flat_window_rule_changes_nothing_without_flat_windows(pair):
    a, b, f, _ = pair
    assert q_y(a, b, f, exact_flat=False) == pytest.approx(q_y(a, b, f), abs=1e-12)


def test_normalize1_rounds_half_away_from_zero():
    # 255 * (0, 1, 3, 6) / 6 = (0, 42.5, 127.5, 255): half-to-even would give 42 for 42.5
    x = np.array([[0.0, 1.0, 3.0, 6.0]])
    assert metrics._normalize1(x).tolist() == [[0.0, 43.0, 128.0, 255.0]]


@pytest.mark.parametrize(
    "shapes, dtypes, fragment",
    [
        (((16, 16), (16, 16), (16, 17)), ("uint8",) * 3, "(16, 17)"),
        (((16, 16), (16, 16, 3), (16, 16)), ("uint8",) * 3, "(16, 16, 3)"),
        (((16, 16), (16, 16), (16, 16)), ("uint8", "float64", "uint8"), "float64"),
        (((16, 16, 4),) * 3, ("uint8",) * 3, "(16, 16, 4)"),
    ],
    ids=["size", "gray-with-colour", "dtype", "channels"],
)
@pytest.mark.parametrize("name", list(METRICS) + ["all"])
def test_bad_input_raises_value_error(shapes, dtypes, fragment, name):
    images = [np.zeros(s, d) for s, d in zip(shapes, dtypes)]
    fn = METRICS.get(name, all_metrics)
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        fn(*images)


def test_cli_metrics_prints_json(pair, tmp_path, capsys):
    from bamf_lib.cli import main

    paths = []
    for label, image in zip("abf", pair[:3]):
        paths.append(str(write_image(tmp_path / f"{label}.png", image)))
    assert main(["metrics", *paths, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == pytest.approx(all_metrics(*pair[:3]), abs=1e-12)


# --------------------------------------------------------------------------- published scores
needs_toolbox_scores = pytest.mark.requires_data("published/Q_color.mat", "published/Q_grayscale.mat")


@needs_toolbox_scores
def test_csv_and_mat_agree_under_the_method_order():
    """The method order assumed for Q_*.mat matches the csv's method names, for all 18 methods."""
    import csv

    from bamf_lib.data import datasets

    for kind in published.PUBLISHED_PAIRS:
        table = published.toolbox_scores(kind)
        with open(datasets.path(f"published/scores_{kind}.csv"), newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert {r["method"] for r in rows} == set(published.TOOLBOX_METHODS)
        for row in rows:
            for name, col in published.METRIC_COLUMNS.items():
                assert float(row[col]) == pytest.approx(
                    table[row["method"]][name][int(row["image_index"]) - 1], abs=1e-6
                )


@pytest.fixture(scope="module")
def summary() -> dict[str, dict[str, float]]:
    records = published.compare_published()
    assert len({(r["kind"], r["method"], r["index"]) for r in records}) == 180
    assert {r["method"] for r in records} == {"nsct", "sr", "nsct-sr", "gff", "dsift", "cnn"}
    return published.error_summary(records)


@needs_toolbox_scores
@pytest.mark.parametrize("name", ["Q_MI", "Q_G", "Q_CB"])
def test_reproduces_published_scores(summary, name):
    assert summary[name]["n"] == 180
    # measured worst: Q_MI 4.2e-15, Q_G 2.0e-15, Q_CB 1.9e-14 (float64 summation order)
    assert summary[name]["max"] < 1e-12, f"{name}: max abs error {summary[name]['max']:.3g}"


@needs_toolbox_scores
def test_reproduces_published_q_y(summary):
    s = summary["Q_Y"]
    assert s["n"] == 180
    assert s["within"] >= 160, f"Q_Y within 1e-4 on only {s['within']} of 180"
    assert s["max"] < 5e-3, f"Q_Y: max abs error {s['max']:.3g}"


def test_error_summary_counts_per_metric():
    records = [
        {"metric": "Q_MI", "abs_error": 0.0},
        {"metric": "Q_MI", "abs_error": 2e-4},
        {"metric": "Q_Y", "abs_error": 1e-5},
    ]
    s = published.error_summary(records)
    assert s["Q_MI"] == {"n": 2, "max": 2e-4, "mean": 1e-4, "within": 1}
    assert s["Q_Y"]["within"] == 1 and "Q_G" not in s
