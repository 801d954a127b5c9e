"""Figure helpers: the paper's Fig. 5 difference maps."""

from __future__ import annotations

import numpy as np
import pytest

from bamf_lib.book.figures import captioned_table, compare_maps, difference_map, provenance, top_windows


def test_difference_map_is_bright_where_fused_copies_the_source():
    # gray levels worked by hand: DM = 255 - 10 |F - S|, clipped at 0
    src = np.full((1, 5), 100, np.uint8)
    fused = np.array([[100, 105, 95, 120, 200]], np.uint8)
    assert difference_map(fused, src).tolist() == [[255.0, 205.0, 205.0, 55.0, 0.0]]
    assert difference_map(fused, src, lam=1).tolist() == [[255.0, 250.0, 250.0, 235.0, 155.0]]
    # colour is compared through MATLAB's rgb2gray: pure red 255 is gray round(0.2989 * 255) = 76
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    assert difference_map(red, np.full((1, 1, 3), 76, np.uint8)).tolist() == [[255.0]]
    assert difference_map(red, np.full((1, 1, 3), 70, np.uint8)).tolist() == [[195.0]]
    src, fused = np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        difference_map(fused, src[:, :8])
    with pytest.raises(ValueError, match="lam"):
        difference_map(fused, src, lam=0)


def test_compare_maps_measures_differences_and_decision_agreement():
    x = np.array([[0.1, 0.4], [0.7, 0.9]])
    y = np.array([[0.2, 0.6], [0.7, 0.8]])
    r = compare_maps(x, y)
    assert r["pixels"] == 4 and r["agreement"] == 0.75
    assert abs(r["mean_abs"] - 0.1) < 1e-12 and abs(r["max_abs"] - 0.2) < 1e-12
    only = compare_maps(x, y, np.array([[True, False], [True, False]]))
    assert only == {"pixels": 2, "mean_abs": 0.05, "max_abs": 0.1, "agreement": 1.0}
    assert compare_maps(x, x) == {"pixels": 4, "mean_abs": 0.0, "max_abs": 0.0, "agreement": 1.0}
    # a map against its complement (what swapping the sources gives): every decision flips
    flipped = compare_maps(x, 1 - x)
    assert flipped["agreement"] == 0.0 and abs(flipped["max_abs"] - 0.8) < 1e-12
    with pytest.raises(ValueError, match="shapes"):
        compare_maps(x, y[:1])
    with pytest.raises(ValueError, match="select"):
        compare_maps(x, y, np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="NaN"):
        compare_maps(np.full((2, 2), np.nan), y)


def test_top_windows_are_greedy_inside_and_disjoint():
    w = np.zeros((40, 50))
    w[30:36, 40:46] = 1.0  # the heaviest blob
    w[2:6, 3:7] = 0.5
    corners = top_windows(w, 8, 3)
    y, x = corners[0]
    assert w[y : y + 8, x : x + 8].sum() == 36  # the first window holds the whole heaviest blob
    assert len(corners) == 2  # nothing else has weight
    (y0, x0), (y1, x1) = corners
    assert abs(y0 - y1) >= 8 or abs(x0 - x1) >= 8
    for y, x in corners:
        assert 0 <= y <= 32 and 0 <= x <= 42
    assert w[y1 : y1 + 8, x1 : x1 + 8].sum() == 8.0
    with pytest.raises(ValueError, match="side"):
        top_windows(w, 41, 1)
    with pytest.raises(ValueError, match="non-negative"):
        top_windows(-w, 4, 1)


def test_captioned_table_is_a_myst_table_directive_with_notes_below():
    text = captioned_table("| m | `Q_G` |\n|---|---|\n| x | 1 |\n\nMeans over 3 pairs.", "Scores of `bamf`.", "tab-x")
    assert text.startswith(":::{table} Scores of `bamf`.\n:name: tab-x\n\n| m |")
    assert text.endswith(":::\n\nMeans over 3 pairs.")
    with pytest.raises(ValueError, match="pipe table"):
        captioned_table("no table", "c", "tab-x")
    with pytest.raises(ValueError, match="name"):
        captioned_table("| a |\n|---|", "c", "tab x")
    with pytest.raises(ValueError, match="caption"):
        captioned_table("| a |\n|---|", " ", "tab-x")


def test_provenance_names_profile_net_and_training_once():
    meta = {
        "profile": "gpu",
        "architecture": "ResNet v1 depth 20 width 16, 32x32 patches, 2 channels",
        "seconds": 120.0,
        "device": "cuda",
    }
    text = provenance(meta, where="padded")
    assert text == "padded `gpu` weights (ResNet v1-20, width 16, 32x32 patches; trained 2 min on cuda)"
    assert provenance({"profile": "p", "architecture": "odd net, more"}) == "shipped `p` weights (odd net)"
    with pytest.raises(ValueError, match="profile"):
        provenance({"architecture": "x"})
