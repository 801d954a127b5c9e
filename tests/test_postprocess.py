import numpy as np
import pytest

from bamf_lib.config import PostprocessConfig
from bamf_lib.fusion.postprocess import binarize, decision_map, fill_uncertain, remove_small_regions


def test_binarize_takes_a_above_threshold_and_ties_go_to_b():
    s = np.array([[0.0, 0.49, 0.5, 0.51, 1.0]])
    assert binarize(s).tolist() == [[False, False, False, True, True]]
    assert binarize(s, 0.3).tolist() == [[False, True, True, True, True]]


def test_small_regions_of_either_class_flip_and_large_ones_stay():
    d = np.zeros((100, 100), bool)
    d[:, 50:] = True  # two halves: both large
    d[10:15, 10:15] = True  # 25 px island of A in B (< 100 = 1 %)
    d[60:65, 70:75] = False  # 25 px hole of B in A
    d[80:92, 10:22] = True  # 144 px island: kept
    out = remove_small_regions(d, 0.01)
    assert not out[10:15, 10:15].any() and out[60:65, 70:75].all()
    assert out[80:92, 10:22].all()
    assert np.array_equal(out[:, 50:], np.ones((100, 50), bool))


def test_threshold_scales_with_the_area_fraction():
    d = np.zeros((100, 100), bool)
    d[10:20, 10:20] = True  # 100 px = 1 % exactly: kept at 0.01, flipped at 0.02
    assert remove_small_regions(d, 0.01)[10:20, 10:20].all()
    assert not remove_small_regions(d, 0.02).any()
    assert np.array_equal(remove_small_regions(d, 0.0), d)


def test_diagonal_neighbours_are_one_region():
    d = np.zeros((30, 30), bool)
    idx = np.arange(10)
    d[idx, idx] = True  # a 10-pixel diagonal line: 8-connected, one region
    assert remove_small_regions(d, 10 / 900).sum() == 10
    assert remove_small_regions(d, 11 / 900).sum() == 0


def test_uniform_maps_survive():
    assert remove_small_regions(np.ones((20, 20), bool)).all()
    assert not remove_small_regions(np.zeros((20, 20), bool)).any()


def test_decision_map_follows_the_config():
    s = np.full((50, 50), 0.2, np.float32)
    s[:, 25:] = 0.8
    s[5, 5] = 0.9
    d = decision_map(s, PostprocessConfig())
    assert d.dtype == bool and not d[:, :25].any() and d[:, 25:].all()
    assert decision_map(s, PostprocessConfig(threshold=0.1)).all()
    assert decision_map(s, PostprocessConfig(area_fraction=0.0))[5, 5]


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: binarize(np.zeros((3, 3)), 1.5), "threshold"),
        (lambda: binarize(np.zeros(3)), "score"),
        (lambda: remove_small_regions(np.zeros((3, 3)), 1.0), "area_fraction"),
        (lambda: remove_small_regions(np.zeros((3, 3, 3))), "decision"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_unsure_pixels_take_the_nearest_sure_decision():
    """A flat region scored near 0.5 with a lean to B, between a sure A region (left) and a sure
    B region (right): with a margin each unsure pixel takes its nearest sure side, so the split
    moves to the middle; margin 0 (the paper) keeps the lean."""
    score = np.full((20, 40), 0.45, np.float32)  # unsure, leaning to B
    score[:, :5] = 0.95
    score[:, -5:] = 0.05
    plain = decision_map(score, PostprocessConfig(area_fraction=0))
    assert plain[:, 5:-5].sum() == 0  # the lean decides the whole flat region
    filled = decision_map(score, PostprocessConfig(area_fraction=0, fill_margin=0.1))
    assert filled[:, :20].all() and not filled[:, 20:].any()
    # pixels outside the margin are never changed
    sure = np.abs(score - 0.5) >= 0.1
    assert (fill_uncertain(score, score > 0.5, 0.1)[sure] == (score > 0.5)[sure]).all()
    # all unsure, or margin 0: unchanged
    flat = np.full((8, 8), 0.45)
    assert not fill_uncertain(flat, flat > 0.5, 0.1).any()
    assert (fill_uncertain(score, score > 0.5, 0.0) == (score > 0.5)).all()
    with pytest.raises(ValueError, match="fill_margin"):
        fill_uncertain(score, score > 0.5, 0.5)
    with pytest.raises(ValueError, match="one shape"):
        fill_uncertain(score, score[:, :10] > 0.5, 0.1)
