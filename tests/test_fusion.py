import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from bamf_lib.config import FDBConfig, PostprocessConfig
from bamf_lib.fusion.align import align_sources
from bamf_lib.fusion.pipeline import FusionResult, fuse
from bamf_lib.io import read_image
from bamf_lib.nets.device import resolve_device

DATA = Path(os.environ.get("BAMF_DATA_DIR", "."))


@pytest.fixture
def nets(stand_in):
    return {"initial": stand_in(), "boundary": stand_in()}


def test_pair_fuses_to_the_sharp_image_and_reports_every_stage(textured_pair, nets):
    a, b, sharp, truth = textured_pair()
    r = fuse([a, b], device="cpu", **nets)
    assert isinstance(r, FusionResult)
    assert r.fused.shape == a.shape and r.fused.dtype == np.uint8
    assert r.decision_map.dtype == np.uint8 and set(np.unique(r.decision_map)) == {0, 1}
    assert np.mean(r.decision_map == np.where(truth, 0, 1)) > 0.97
    assert np.mean(r.fused == sharp) > 0.95
    for m in (r.score_map, r.refined_score_map, r.near_boundary):
        assert m.shape == a.shape
    assert r.near_boundary.any() and not r.near_boundary.all()
    assert set(r.timings) == {"align", "score", "refine", "postprocess", "fuse"}
    assert all(t >= 0 for t in r.timings.values())


def test_every_fused_pixel_comes_from_the_source_the_map_names(textured_pair, nets):
    a, b, _, _ = textured_pair(colour=True, seed=3)
    r = fuse([a, b], device="cpu", post=PostprocessConfig(area_fraction=0.0), **nets)
    stack = np.stack([a, b])
    rows, cols = np.indices(r.decision_map.shape)
    assert np.array_equal(r.fused, stack[r.decision_map, rows, cols])
    assert r.fused.shape == a.shape


def test_colour_follows_the_gray_decision(textured_pair, nets):
    a, b, _, _ = textured_pair(colour=True, seed=2)
    r = fuse([a, b], device="cpu", **nets)
    gray = fuse([cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)], device="cpu", **nets)
    assert r.fused.shape == a.shape and r.fused.dtype == np.uint8
    assert np.mean(r.decision_map == gray.decision_map) > 0.98


def test_swapping_the_sources_swaps_the_decision(textured_pair, nets):
    a, b, _, _ = textured_pair(seed=4)
    ab = fuse([a, b], device="cpu", **nets)
    ba = fuse([b, a], device="cpu", **nets)
    assert np.mean(ab.decision_map != ba.decision_map) > 0.97
    assert np.mean(ab.fused == ba.fused) > 0.97


def test_refine_false_uses_the_initial_net_alone(textured_pair, nets):
    a, b, _, _ = textured_pair()
    r = fuse([a, b], device="cpu", refine=False, initial=nets["initial"])
    assert not r.near_boundary.any() and np.array_equal(r.score_map, r.refined_score_map)
    assert len(nets["initial"].calls) == 1


def test_fdb_config_sets_the_band(textured_pair, nets):
    a, b, _, _ = textured_pair()
    narrow = fuse([a, b], device="cpu", fdb=FDBConfig(k=3, tau=0.2), **nets).near_boundary.sum()
    wide = fuse([a, b], device="cpu", fdb=FDBConfig(k=31, tau=0.01), path="reference", **nets).near_boundary.sum()
    assert 0 < narrow < wide
    assert nets["boundary"].calls[-1] == wide  # the reference path evaluates the band only


def test_three_sources_take_each_from_where_it_is_sharp(nets):
    rng = np.random.default_rng(5)
    sharp = cv2.resize(rng.integers(0, 256, (48, 72)).astype(np.uint8), (144, 96), interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    thirds = np.repeat(np.arange(3), 48)[None, :].repeat(96, axis=0)
    stack = [np.where(thirds == i, sharp, blurred) for i in range(3)]
    seq = fuse(stack, device="cpu", stack="sequential", **nets)
    assert seq.score_map.shape == (2, 96, 144) and seq.near_boundary.shape == (2, 96, 144)
    joint = fuse(stack, device="cpu", **nets)  # the default for more than two: one joint decision
    assert joint.score_map is None and joint.near_boundary.shape == (96, 144)
    for r in (seq, joint):
        assert np.mean(r.decision_map == thirds) > 0.95
        assert np.mean(r.fused == sharp) > 0.9
    with pytest.raises(ValueError, match="stack must be"):
        fuse(stack, device="cpu", stack="pairwise", **nets)


def test_bad_input_raises_value_error(textured_pair, nets):
    a, b, _, _ = textured_pair()
    with pytest.raises(ValueError, match="at least two"):
        fuse([a], device="cpu", **nets)
    with pytest.raises(ValueError, match="differ in size"):
        fuse([a, b[:-1]], device="cpu", **nets)
    with pytest.raises(ValueError, match="patch"):
        fuse([a[:10], b[:10]], device="cpu", **nets)
    with pytest.raises(ValueError, match="path"):
        fuse([a, b], path="slow", device="cpu", **nets)
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_auto_device_falls_back_to_cpu_without_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_align_undoes_a_known_shift(textured_pair, nets):
    _, _, sharp, _ = textured_pair(160, 200, seed=7)
    sharp = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    m = np.float32([[1, 0, 6.0], [0, 1, -4.0]])
    moved = cv2.warpAffine(sharp, m, (200, 160), borderMode=cv2.BORDER_REFLECT)
    ref, back = align_sources([sharp, moved])
    inner = (slice(20, -20), slice(20, -20))
    err_before = np.abs(moved[inner].astype(int) - sharp[inner]).mean()
    err_after = np.abs(back[inner].astype(int) - sharp[inner]).mean()
    assert ref is sharp and err_after < 0.2 * err_before
    r = fuse([sharp, moved], device="cpu", align=True, **nets)
    assert r.timings["align"] > 0


@pytest.mark.requires_data("lytro/triple")
def test_lytro_triple_fuses_all_three(nets):
    stack = [
        cv2.resize(read_image(DATA / "lytro" / "triple" / f"lytro-01-{c}.jpg"), (0, 0), fx=0.5, fy=0.5) for c in "ABC"
    ]
    r = fuse(stack, device="cpu", **nets)
    assert r.fused.shape == stack[0].shape and r.fused.dtype == np.uint8
    assert set(np.unique(r.decision_map)) <= {0, 1, 2} and len(np.unique(r.decision_map)) >= 2


def test_real_networks_and_scoring_keep_the_contract(textured_pair):
    """The untrained quick-profile net through the real scoring module: shapes and types."""
    import torch

    from bamf_lib.config import ModelConfig
    from bamf_lib.nets.models import build_model

    torch.manual_seed(0)
    net = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16))
    a, b, _, _ = textured_pair(48, 56, colour=True)
    r = fuse([a, b], device="cpu", initial=net, boundary=net, fdb=FDBConfig(k=5, tau=0.2))
    assert r.fused.shape == a.shape and r.fused.dtype == np.uint8
    assert r.score_map.dtype == np.float32 and r.score_map.shape == a.shape[:2]
    assert np.isfinite(r.refined_score_map).all()
    assert ((r.refined_score_map >= 0) & (r.refined_score_map <= 1)).all()
    assert np.array_equal(r.refined_score_map[~r.near_boundary], r.score_map[~r.near_boundary])


def test_shipped_weights_fuse_a_pair_with_a_known_answer():
    from bamf_lib.evaluation.groundtruth import groundtruth_set, pixel_accuracy

    pair = groundtruth_set(1, seed=3)[0]
    r = fuse([pair.a, pair.b], device="cpu")
    assert pixel_accuracy(r.decision_map == 0, pair.truth) > 0.85


def test_optimised_networks_fuse_as_the_plain_ones():
    from bamf_lib.evaluation.groundtruth import groundtruth_set

    pair = groundtruth_set(1, seed=4)[0]
    fast = fuse([pair.a, pair.b], device="cpu", backend="torch")
    plain = fuse([pair.a, pair.b], device="cpu", backend="torch", optimized=False)
    assert plain.near_boundary.any()  # the boundary net was used
    # same function, different float32 order: see tests/test_scoring.py's OPT_ATOL
    np.testing.assert_allclose(fast.refined_score_map, plain.refined_score_map, atol=1e-5)
    np.testing.assert_array_equal(fast.near_boundary, plain.near_boundary)
    np.testing.assert_array_equal(fast.decision_map, plain.decision_map)


def test_fuse_uses_the_fdb_values_stored_with_the_initial_net_and_reports_them(stand_in, textured_pair):
    """fuse() takes (k, tau) from the initial net's metadata (fdb_for) unless told, and says which it used."""
    from bamf_lib.fusion.boundary import fdb_for, near_boundary

    a, b, _, _ = textured_pair()
    stored = {"k": 31, "tau": 0.3}  # far from FDBConfig()'s 15 / 0.1, so the bands differ
    initial = stand_in(metadata={"fdb": stored})
    r = fuse([a, b], initial=initial, boundary=stand_in())
    assert fdb_for(initial) == FDBConfig(**stored) and r.fdb == FDBConfig(**stored)
    assert np.array_equal(r.near_boundary, near_boundary(r.score_map, 31, 0.3))
    assert not np.array_equal(r.near_boundary, near_boundary(r.score_map, 15, 0.1))
    told = fuse([a, b], initial=initial, boundary=stand_in(), fdb=FDBConfig(k=5, tau=0.2))
    assert told.fdb == FDBConfig(k=5, tau=0.2)
    assert np.array_equal(told.near_boundary, near_boundary(told.score_map, 5, 0.2))
    assert fdb_for(stand_in()) == FDBConfig()  # weights without tuned values: the fallback


def test_swap_average_scores_both_orders_of_the_pair():
    """fuse(swap_average=True): the initial score map is the mean of the two orders' (and differs
    from one order's: the shipped net leans on this pair), and the decision follows it."""
    from bamf_lib.colour import to_float_gray
    from bamf_lib.evaluation.groundtruth import groundtruth_set
    from bamf_lib.fusion.scorers import load_scorer

    pair = groundtruth_set(1, seed=4)[0]
    plain = fuse([pair.a, pair.b], device="cpu")
    both = fuse([pair.a, pair.b], device="cpu", swap_average=True)
    net = load_scorer("initial", device="cpu")
    a, b = to_float_gray(pair.a), to_float_gray(pair.b)
    np.testing.assert_allclose(both.score_map, (net.score_map(a, b) + 1 - net.score_map(b, a)) / 2, atol=1e-6)
    assert np.abs(both.score_map - plain.score_map).max() > 1e-3
    assert both.fused.shape == plain.fused.shape
