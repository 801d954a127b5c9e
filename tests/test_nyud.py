"""The nyud40 ground-truth benchmark: truth decisions, PSNR, SSIM and the evaluation loop."""

from __future__ import annotations

import numpy as np
import pytest

from bamf_lib.evaluation import nyud


def test_truth_decision_sums_colour_distances_and_skips_ties():
    gt = np.zeros((1, 3, 3), np.uint8)
    a = np.array([[[1, 1, 1], [0, 0, 5], [2, 0, 0]]], np.uint8)  # distances 3, 5, 2
    b = np.array([[[0, 0, 2], [1, 1, 1], [0, 2, 0]]], np.uint8)  # distances 2, 3, 2
    take_a, scored = nyud.truth_decision(a, b, gt)
    assert take_a.tolist() == [[False, False, False]]
    assert scored.tolist() == [[True, True, False]]


def test_truth_decision_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        nyud.truth_decision(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2)))


def test_psnr_by_hand_and_capped():
    ref = np.zeros((10, 10), np.uint8)
    img = ref.copy()
    img[0, :] = 10  # MSE = 10 * 100 / 100 = 10
    assert nyud.psnr(img, ref) == pytest.approx(10 * np.log10(255**2 / 10))
    assert nyud.psnr(ref, ref) == nyud.PSNR_CAP
    assert nyud.psnr(ref + 1, ref, cap=40.0) == 40.0


def test_ssim_is_one_for_identical_and_lower_for_noise():
    rng = np.random.default_rng(0)
    ref = np.repeat(np.linspace(60, 190, 64)[None, :, None], 64, 0).repeat(3, 2).astype(np.uint8)  # a smooth ramp
    noisy = np.clip(ref.astype(int) + rng.integers(-40, 41, ref.shape), 0, 255).astype(np.uint8)
    assert nyud.ssim(ref, ref) == pytest.approx(1.0)
    assert nyud.ssim(noisy, ref) < 0.5


def test_decision_accuracy_counts_scored_pixels_only():
    take_a = np.array([True, False, True, False])
    scored = np.array([True, True, True, False])
    assert nyud.decision_accuracy(np.array([True, True, True, True]), take_a, scored) == pytest.approx(2 / 3)
    assert np.isnan(nyud.decision_accuracy(take_a, take_a, np.zeros(4, bool)))


@pytest.mark.requires_data("nyud")
def test_oracle_method_scores_perfectly_and_source_a_does_not():
    """A method that follows the ground truth's decision gets accuracy 1; always taking A does not."""
    from bamf_lib.data import datasets

    def oracle(sources):
        a, b = sources
        take_a, _ = nyud.truth_decision(a, b, datasets.nyud_pair(51)[2])
        return np.where(take_a[..., None], a, b), take_a

    def always_a(sources):
        return sources[0], np.ones(sources[0].shape[:2], bool)

    result = nyud.evaluate_nyud({"oracle": oracle, "A": always_a}, pairs=[51], metrics=False)
    assert result["oracle"]["mean"]["accuracy"] == 1.0
    assert result["A"]["mean"]["accuracy"] < 0.9
    assert result["oracle"]["mean"]["psnr"] > result["A"]["mean"]["psnr"]
    assert result["oracle"]["worst"] == (51, 1.0)
    table = nyud.format_nyud(result)
    assert "| oracle |" in table and "nyud-51" in table
