from dataclasses import replace

import numpy as np
import pytest

from bamf_lib.config import SynthesisConfig
from bamf_lib.data import datasets, synthesis
from bamf_lib.evaluation import groundtruth

SMALL = SynthesisConfig(n_foregrounds=4, n_backgrounds=5, patch_size=32, pairs_per_image=4)


def _two_level_pair(alpha, fg_level=200.0, bg_level=50.0):
    """Flat foreground and background: A's value at a pixel reveals alpha there, blur changes nothing."""
    fg = np.full(alpha.shape, fg_level, np.float32)
    bg = np.full(alpha.shape, bg_level, np.float32)
    a, b = synthesis.make_source_pair(fg, alpha, bg, sigma_fg=2.0, sigma_bg=2.0)
    return a, b


def test_composition_follows_the_paper():
    rng = np.random.default_rng(0)
    fg = rng.uniform(0, 255, (48, 48)).astype(np.float32)
    bg = rng.uniform(0, 255, (48, 48)).astype(np.float32)
    alpha = np.zeros((48, 48), np.float32)
    alpha[:, :24] = 1.0
    a, b = synthesis.make_source_pair(fg, alpha, bg, sigma_fg=3.0, sigma_bg=3.0)
    # A: sharp foreground, blurred background; B the other way round
    np.testing.assert_allclose(a[:, :24], fg[:, :24], atol=1e-4)
    np.testing.assert_allclose(b[:, 24:], bg[:, 24:], atol=1e-4)
    assert np.abs(np.diff(a[:, 30:], axis=1)).mean() < 0.3 * np.abs(np.diff(bg[:, 30:], axis=1)).mean()
    assert np.abs(np.diff(b[:, :18], axis=1)).mean() < 0.3 * np.abs(np.diff(fg[:, :18], axis=1)).mean()


def test_label_is_one_where_the_centre_is_focused_in_a():
    # alpha ramps 0 -> 1 across the image, so centres fall on fractional alpha too
    alpha = np.tile(np.linspace(0, 1, 160, dtype=np.float32), (96, 1))
    a, b = _two_level_pair(alpha)
    x, y = synthesis.patches_from_pair(a, b, alpha, n=400, patch_size=16, rng=np.random.default_rng(1))
    centre_a = x[:, 0, 8, 8]
    # A = 50 + 150 G: G > 0.5 exactly when A's centre exceeds 125
    np.testing.assert_array_equal(y, (centre_a > 125).astype(np.uint8))
    assert 0 < y.mean() < 1


def test_label_matches_sharpness_on_real_synthesis():
    X, y = synthesis.generate_patches(replace(SMALL, augment=False, patch_size=32))
    c = X[:, :, 12:20, 12:20].astype(np.float32)
    energy = np.abs(np.diff(c, axis=3)).mean(axis=(2, 3))  # (N, 2) local gradient energy
    sharper_a = energy[:, 0] > energy[:, 1]
    assert np.mean(sharper_a[y == 1]) > 0.8
    assert np.mean(~sharper_a[y == 0]) > 0.8


def test_swapped_channels_carry_the_opposite_label():
    X, y = synthesis.generate_patches(SMALL, n_samples=None)
    seen = {X[i].tobytes(): int(y[i]) for i in range(len(y))}
    for i in range(0, len(y), 7):
        assert seen[X[i, ::-1].tobytes()] == 1 - y[i]
    assert y.mean() == pytest.approx(0.5)  # the swap balances the classes exactly


def test_augment_gives_swaps_and_eight_distinct_views():
    x = np.random.default_rng(0).integers(0, 256, (3, 2, 8, 8), dtype=np.uint8)
    y = np.array([1, 0, 1], np.uint8)
    xa, ya = synthesis.augment(x, y, n_transforms=8)
    assert len(xa) == 2 * 8 * 3
    views = {xa[k].tobytes() for k in range(len(xa))}
    assert len(views) == len(xa)  # all different
    np.testing.assert_array_equal(xa[3:6], x[:, ::-1])
    np.testing.assert_array_equal(ya[3:6], 1 - y)
    assert len(synthesis.augment(x, y, n_transforms=6)[0]) == 36
    with pytest.raises(ValueError, match="n_transforms"):
        synthesis.augment(x, y, n_transforms=5)


def test_boundary_mask_counts_focused_pixels():
    alpha = np.zeros((40, 60), np.float32)
    alpha[:, 30:] = 0.9
    ok = synthesis.boundary_mask(alpha, 10, 0.10)
    for x0 in range(ok.shape[1]):
        frac = np.clip(x0 + 10 - 30, 0, 10) / 10  # focused columns in [x0, x0+10)
        assert ok[0, x0] == (0.1 <= frac <= 0.9), x0


def test_boundary_patches_hold_both_classes():
    alpha = np.zeros((96, 128), np.float32)
    alpha[20:70, 30:90] = 1.0
    a, b = _two_level_pair(alpha)
    x, _ = synthesis.patches_from_pair(
        a, b, alpha, n=200, patch_size=16, rng=np.random.default_rng(2), boundary_only=True, boundary_min_fraction=0.10
    )
    assert len(x) == 200
    focused = (x[:, 0] > 125).mean(axis=(1, 2))
    assert focused.min() >= 0.10 and focused.max() <= 0.90


def test_boundary_only_set_is_near_the_boundary():
    _, y_all = synthesis.generate_patches(SMALL, n_samples=2000)
    X, y = synthesis.generate_patches(SMALL, boundary_only=True, n_samples=2000)
    assert len(y) == 2000 and y.mean() == pytest.approx(0.5, abs=0.05)
    # a boundary patch mixes sharp and blurred content in both channels: gradient energy is less one-sided
    e = np.abs(np.diff(X.astype(np.float32), axis=3)).mean(axis=(2, 3))
    assert np.median(np.minimum(e[:, 0], e[:, 1]) / np.maximum(e[:, 0], e[:, 1])) > 0.3


def test_split_is_by_source_pair_and_disjoint():
    parts = synthesis.split_pairs(200, 0.15, seed=3)
    assert len(parts["val"]) == 30 and len(parts["train"]) == 170
    assert not set(parts["val"]) & set(parts["train"])
    Xt, _ = synthesis.generate_patches(replace(SMALL, augment=False), split="train")
    Xv, _ = synthesis.generate_patches(replace(SMALL, augment=False), split="val")
    # a pair in both splits would draw the same patches (one generator per pair): none is shared
    assert not {x.tobytes() for x in Xt} & {x.tobytes() for x in Xv}
    assert len(Xv) == 3 * 4  # 15 % of 20 source pairs, 4 patches each


def test_same_seed_same_samples_other_seed_other_samples():
    X1, y1 = synthesis.generate_patches(SMALL, n_samples=500)
    X2, y2 = synthesis.generate_patches(SMALL, n_samples=500)
    X3, _ = synthesis.generate_patches(replace(SMALL, seed=1), n_samples=500)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


def test_generate_patches_contract():
    X, y = synthesis.generate_patches(replace(SMALL, patch_size=24), n_samples=333)
    assert X.shape == (333, 2, 24, 24) and X.dtype == np.uint8
    assert y.shape == (333,) and y.dtype == np.uint8 and set(np.unique(y)) <= {0, 1}
    with pytest.raises(ValueError, match="split"):
        synthesis.generate_patches(SMALL, split="test")


def test_alphamatting_source_needs_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("BAMF_DATA_DIR", str(tmp_path))
    with pytest.raises(datasets.DatasetNotFoundError, match="alphamatting"):
        synthesis.generate_patches(replace(SMALL, source="alphamatting"), n_samples=10)


@pytest.mark.requires_data("alphamatting")
def test_alphamatting_source_reads_only_training_files(monkeypatch):
    read = []
    original = datasets.path
    monkeypatch.setattr(datasets, "path", lambda name: read.append(name) or original(name))
    cfg = replace(SMALL, source="alphamatting", n_foregrounds=None, seed=5)
    fgs = synthesis.load_foregrounds(cfg)
    X, _ = synthesis.generate_patches(cfg, n_samples=100)
    assert len(fgs) == 27 and X.shape[0] == 100
    image, _ = datasets.alphamatting(1)
    assert fgs[0][1].shape == tuple(round(s / 2) for s in image.shape[:2])  # resized to half
    assert read and all(n.startswith("alphamatting/") for n in read)
    assert not any(n.startswith(datasets.TEST_DATASETS) for n in read)


def test_invalid_config_values_are_refused():
    with pytest.raises(ValueError, match="sigma_range"):
        synthesis.generate_patches(replace(SMALL, sigma_range=(3.0, 1.0)), n_samples=10)
    with pytest.raises(ValueError, match="source"):
        synthesis.generate_patches(replace(SMALL, source="lytro"), n_samples=10)
    with pytest.raises(ValueError, match="val_fraction"):
        synthesis.split_pairs(10, 1.5, 0)
    with pytest.raises(ValueError, match="boundary_min_fraction"):
        synthesis.generate_patches(replace(SMALL, boundary_min_fraction=0.7), n_samples=10)
    with pytest.raises(ValueError, match="patch_size"):
        synthesis.generate_patches(replace(SMALL, patch_size=4096), n_samples=10)


# --------------------------------------------------------------------------- ground truth


def test_groundtruth_set_is_held_out_and_consistent():
    pairs = groundtruth.groundtruth_set(3, seed=0)
    train_names = set(datasets.EMBEDDED_GROUPS["foreground"]) | set(datasets.EMBEDDED_GROUPS["background"])
    for p in pairs:
        assert not any(n in p.name for n in train_names)
        assert p.a.shape == p.b.shape == p.truth.shape and 0.1 < p.truth.mean() < 0.9
        inner = groundtruth.boundary_band(p.truth, 6)
        ga = np.abs(np.diff(p.a.astype(float), axis=1))
        gb = np.abs(np.diff(p.b.astype(float), axis=1))
        t = p.truth[:, 1:] & ~inner[:, 1:]
        assert ga[t].mean() > gb[t].mean()  # A is the sharp one where the truth says A
        f = ~p.truth[:, 1:] & ~inner[:, 1:]
        assert gb[f].mean() > ga[f].mean()  # ... and B where it says B


def test_decision_map_scores():
    truth = np.zeros((64, 64), bool)
    truth[:, 32:] = True
    perfect = groundtruth.score_decision_map(truth, truth)
    assert perfect == {"accuracy": 1.0, "boundary_accuracy": 1.0, "boundary_f": 1.0}
    shifted = groundtruth.score_decision_map(np.roll(truth, 4, axis=1), truth)
    assert shifted["accuracy"] == pytest.approx(1 - 8 / 64)  # 4 columns at the edge, 4 wrapped round
    assert shifted["boundary_accuracy"] < shifted["accuracy"]
    assert shifted["boundary_f"] < 0.5  # the edge moved beyond the 2 px tolerance
    near = groundtruth.score_decision_map(np.roll(truth, 1, axis=1), truth)
    assert near["boundary_f"] > shifted["boundary_f"]
    assert groundtruth.pixel_accuracy(~truth, truth) == 0.0
    assert groundtruth.pixel_accuracy(truth.astype(np.float32) * 0.9, truth) == 1.0  # soft maps binarised at 0.5
    with pytest.raises(ValueError, match="shape"):
        groundtruth.pixel_accuracy(truth[:10], truth)


def test_source_pair_is_what_the_stream_cuts():
    cfg = replace(SMALL, augment=False, val_fraction=0.0)
    pair = synthesis.source_pair(cfg, 0)
    x, y = next(synthesis.iter_patches(cfg))
    windows = np.lib.stride_tricks.sliding_window_view(pair.a, (cfg.patch_size,) * 2)
    for patch in x[:, 0]:
        assert (windows == patch).all(axis=(2, 3)).any()
    assert pair.a.shape == pair.b.shape == pair.alpha.shape == pair.foreground.shape
    assert cfg.sigma_range[0] <= pair.sigma_fg <= cfg.sigma_range[1]
    with pytest.raises(ValueError, match="index"):
        synthesis.source_pair(cfg, 10_000)


def test_soft_alpha_mask_has_a_soft_edge_and_bounded_coverage():
    for k in range(5):
        m = synthesis.soft_alpha_mask((120, 160), rng=np.random.default_rng(k), coverage=(0.3, 0.5))
        assert m.min() >= 0 and m.max() <= 1
        assert 0.2 < (m > 0.5).mean() < 0.6
        assert ((m > 0.05) & (m < 0.95)).any()  # fractional alpha along the outline


def test_regions_carry_the_label_of_every_patch_inside():
    from bamf_lib.data.synthesis import IGNORE, boundary_mask, label_map, regions_from_pair

    rng = np.random.default_rng(0)
    h, w, p, r = 90, 110, 16, 40
    a = rng.integers(0, 256, (h, w), dtype=np.uint8)
    b = rng.integers(0, 256, (h, w), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    alpha = (((yy - 45) ** 2 + (xx - 50) ** 2) < 25**2).astype(np.float32)
    x, y = regions_from_pair(a, b, alpha, n=5, region=r, patch_size=p, rng=np.random.default_rng(1))
    assert x.shape == (5, 2, r, r) and y.shape == (5, r - p + 1, r - p + 1)
    for k in range(5):  # find where region k was cut, then check its labels patch by patch
        ys, xs = np.argwhere((np.lib.stride_tricks.sliding_window_view(a, (r, r)) == x[k, 0]).all((2, 3)))[0]
        np.testing.assert_array_equal(
            y[k], label_map(alpha[ys + p // 2 : ys + p // 2 + r - p + 1, xs + p // 2 : xs + p // 2 + r - p + 1])
        )
    xb, yb = regions_from_pair(
        a, b, alpha, n=5, region=r, patch_size=p, rng=np.random.default_rng(2), boundary_only=True
    )
    inside = boundary_mask(alpha, p)
    for k in range(5):
        ys, xs = np.argwhere((np.lib.stride_tricks.sliding_window_view(a, (r, r)) == xb[k, 0]).all((2, 3)))[0]
        window = inside[ys : ys + r - p + 1, xs : xs + r - p + 1]
        assert window.any()  # centred on a boundary patch
        np.testing.assert_array_equal(yb[k] == IGNORE, ~window)


def test_sharpness_rule_keeps_textured_and_drops_partly_flat_or_blurred():
    import cv2

    from bamf_lib.data.sources import is_sharp_background, tile_sharpness

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (90, 90)).astype(np.uint8)
    assert tile_sharpness(texture).shape == (9,)
    assert is_sharp_background(texture)
    half_blurred = texture.copy()
    half_blurred[:, :45] = cv2.GaussianBlur(texture, (0, 0), 4)[:, :45]
    assert not is_sharp_background(half_blurred)
    assert not is_sharp_background(np.full((90, 90), 100, np.uint8))


@pytest.mark.requires_data("backgrounds")
def test_natural_and_mixed_backgrounds_hold_out_kodak():
    from bamf_lib.config import SynthesisConfig
    from bamf_lib.data.sources import load_backgrounds, natural_backgrounds

    natural = load_backgrounds(SynthesisConfig(backgrounds="natural"))
    mixed = load_backgrounds(SynthesisConfig(backgrounds="mixed"))
    names = [n for n, _ in natural]
    assert not any("kodak" in n for n in names)
    assert len(natural) == len(natural_backgrounds()) and len(mixed) == len(natural) + 16
    held = natural_backgrounds(held_out=True)
    assert held and all("kodak24" in n for n, _ in held)
    with pytest.raises(ValueError, match="backgrounds"):
        SynthesisConfig(backgrounds="coco")
