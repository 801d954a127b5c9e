"""Score maps: the per-patch reference path, the whole-image paths, masks and validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from bamf_lib.config import ModelConfig
from bamf_lib.nets.models import build_model
from bamf_lib.nets.pretrained import load_pretrained
from bamf_lib.nets.scoring import PATHS, score_map, score_masked

P = 16
CFG = ModelConfig(version="v1", depth=8, width=8, patch_size=P)


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Band-limited noise at a few scales, in [0, 1]: enough detail for blur to show."""
    t = sum(ndi.gaussian_filter(rng.standard_normal(shape), s) * s for s in (0.7, 1.5, 3.0))
    t = (t - t.min()) / (t.max() - t.min())
    return t.astype(np.float32)


def _half_focused_pair(rng: np.random.Generator, shape=(44, 52), sigma=2.5):
    """A is sharp on the left half, B on the right; ground truth 1 on the left."""
    t = _texture(rng, shape)
    blurred = ndi.gaussian_filter(t, sigma).astype(np.float32)
    left = np.zeros(shape, bool)
    left[:, : shape[1] // 2] = True
    return np.where(left, t, blurred), np.where(left, blurred, t), left


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is faster, and far faster on a busy shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(one_thread):
    """A tiny net taught sharp-vs-blurred on synthetic textures in a few seconds."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model(CFG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    tex = _texture(rng, (256, 256))
    for _ in range(150):
        sigma = rng.uniform(1.5, 4.0)
        blur = ndi.gaussian_filter(tex, sigma)
        ys, xs = rng.integers(0, 256 - P, 64), rng.integers(0, 256 - P, 64)
        sharp = np.stack([tex[y : y + P, x : x + P] for y, x in zip(ys, xs)])
        soft = np.stack([blur[y : y + P, x : x + P] for y, x in zip(ys, xs)])
        label = rng.integers(0, 2, 64)
        a = np.where(label[:, None, None] == 1, sharp, soft)
        b = np.where(label[:, None, None] == 1, soft, sharp)
        x = torch.from_numpy(np.stack([a, b], 1).astype(np.float32))
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(label))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_reference_is_one_patch_per_pixel():
    model = build_model(CFG).eval()
    rng = np.random.default_rng(1)
    a, b = rng.random((20, 23), dtype=np.float32), rng.random((20, 23), dtype=np.float32)
    s = score_map(model, a, b, path="reference", batch_size=97)
    pair = np.pad(np.stack([a, b]), ((0, 0), (P // 2, P // 2 - 1), (P // 2, P // 2 - 1)), mode="reflect")
    for y, x in [(0, 0), (19, 22), (5, 17), (10, 0)]:
        patch = torch.from_numpy(pair[None, :, y : y + P, x : x + P].copy())
        with torch.no_grad():
            expected = torch.softmax(model(patch), 1)[0, 1].item()
        assert s[y, x] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("path", ["fast", "strided", "dilated", "coarse-to-fine"])
def test_whole_image_agrees_with_reference(trained, path):
    a, b, truth = _half_focused_pair(np.random.default_rng(2))
    ref = score_map(trained, a, b, path="reference")
    fast = score_map(trained, a, b, path=path)
    inner = (slice(P // 2, -P // 2), slice(P // 2, -P // 2))
    # the net learned the task, so the comparison is not between two noise maps
    assert ((ref[inner] > 0.5) == truth[inner]).mean() > 0.85
    assert np.abs(fast[inner] - ref[inner]).mean() < 0.08
    assert ((fast[inner] > 0.5) == (ref[inner] > 0.5)).mean() > 0.95


def test_coarse_to_fine_is_reference_where_unsure_and_strided_elsewhere(trained):
    from bamf_lib.nets.scoring import UNCERTAIN

    a, b, _ = _half_focused_pair(np.random.default_rng(8), shape=(36, 44))
    strided = score_map(trained, a, b, path="strided")
    unsure = np.abs(strided - 0.5) < UNCERTAIN
    assert unsure.any() and not unsure.all()
    c2f = score_map(trained, a, b, path="coarse-to-fine")
    ref = score_masked(trained, a, b, unsure, path="reference")
    np.testing.assert_allclose(c2f[unsure], ref[unsure], atol=1e-5)
    np.testing.assert_array_equal(c2f[~unsure], strided[~unsure])


def test_dilated_equals_strided_on_the_stride_grid():
    model = build_model(CFG).eval()
    rng = np.random.default_rng(3)
    a, b = rng.random((41, 37), dtype=np.float32), rng.random((41, 37), dtype=np.float32)
    strided = score_map(model, a, b, path="strided")
    dilated = score_map(model, a, b, path="dilated")
    np.testing.assert_allclose(strided[::4, ::4], dilated[::4, ::4], atol=1e-5)


@pytest.mark.parametrize("path", ["strided", "dilated"])
def test_tiling_does_not_show(path):
    model = build_model(CFG).eval()
    rng = np.random.default_rng(4)
    a, b = rng.random((50, 61), dtype=np.float32), rng.random((50, 61), dtype=np.float32)
    whole = score_map(model, a, b, path=path)
    tiled = score_map(model, a, b, path=path, tile=12)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("path", ["reference", "strided", "dilated", "coarse-to-fine"])
def test_score_masked_matches_score_map(trained, path):
    a, b, _ = _half_focused_pair(np.random.default_rng(5), shape=(34, 40))
    mask = np.zeros(a.shape, bool)
    mask[10:20, 15:25] = True
    mask[0, 0] = True
    full = score_map(trained, a, b, path=path)
    part = score_masked(trained, a, b, mask, path=path)
    assert part.dtype == np.float32
    assert np.isnan(part[~mask]).all()
    np.testing.assert_allclose(part[mask], full[mask], atol=1e-5)


def test_output_type_and_range():
    model = build_model(CFG)
    rng = np.random.default_rng(6)
    a, b = rng.random((P, P + 3)).astype(np.float32), rng.random((P, P + 3)).astype(np.float32)
    for path in PATHS:
        s = score_map(model, a, b, path=path)
        assert s.dtype == np.float32 and s.shape == a.shape
        assert np.isfinite(s).all() and s.min() >= 0 and s.max() <= 1
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize(
    "a,b,match",
    [
        (np.zeros((10, 40), np.float32), np.zeros((10, 40), np.float32), "10x40.*16x16"),
        (np.zeros((20, 20), np.float32), np.zeros((20, 21), np.float32), "differ in size"),
        (np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8), "dtype uint8"),
        (np.full((20, 20), 255.0, np.float32), np.zeros((20, 20), np.float32), r"\[0, 1\]"),
        (np.zeros((20, 20, 3), np.float32), np.zeros((20, 20, 3), np.float32), "gray"),
    ],
)
def test_bad_inputs_raise(a, b, match):
    with pytest.raises(ValueError, match=match):
        score_map(build_model(CFG), a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("path", ["reference", "strided", "dilated"])
def test_cuda_matches_cpu(trained, path):
    a, b, _ = _half_focused_pair(np.random.default_rng(9), shape=(30, 34))
    cpu = score_map(trained, a, b, path=path, device="cpu")
    gpu = score_map(trained, a, b, path=path, device="cuda")
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)
    assert next(trained.parameters()).device.type == "cpu"  # the model goes back where it was


def test_bad_path_and_mask_raise():
    model = build_model(CFG)
    a = np.zeros((20, 20), np.float32)
    with pytest.raises(ValueError, match="path"):
        score_map(model, a, a, path="exact")
    with pytest.raises(ValueError, match="mask"):
        score_masked(model, a, a, np.ones((20, 19), bool))
    with pytest.raises(ValueError, match="device"):
        score_map(model, a, a, device="gpu0")


def test_swap_symmetry_of_shipped_weights():
    model = load_pretrained("initial")
    p = model.config.patch_size
    a, b, _ = _half_focused_pair(np.random.default_rng(7), shape=(p + 24, p + 32), sigma=3.0)
    s_ab = score_map(model, a, b)
    s_ba = score_map(model, b, a)
    assert np.abs(s_ab + s_ba - 1).mean() < 0.1


def _with_running_stats(model, seed: int):
    """Non-trivial BatchNorm statistics and affine terms, so folding them is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


# The optimised network (BN folded into the convolutions, channels_last, oneDNN's fused
# conv+add+ReLU) is the same function in a different float32 evaluation order.  Logits of
# the shipped and test nets differ by a few 1e-6 (rounding of the folded weights and of the
# summation order, ~1e-7 relative per layer over ~20 layers); the score is a sigmoid of the
# logit gap (slope <= 1/4), so 1e-5 on the score leaves a margin of ~10x over what is seen.
OPT_ATOL = 1e-5


@pytest.mark.parametrize("version,depth", [("v1", 8), ("v2", 11)])
@pytest.mark.parametrize("path", ["strided", "dilated"])
def test_optimised_network_gives_the_plain_networks_scores(version, depth, path):
    torch.manual_seed(depth)
    model = _with_running_stats(build_model(ModelConfig(version=version, depth=depth, width=8, patch_size=P)), 3)
    rng = np.random.default_rng(11)
    a, b = rng.random((45, 53), dtype=np.float32), rng.random((45, 53), dtype=np.float32)
    plain = score_map(model, a, b, path=path, optimized=False)
    fast = score_map(model, a, b, path=path, optimized=True)
    assert np.ptp(plain) > 0.01  # scores that vary 1000x more than the tolerance
    np.testing.assert_allclose(fast, plain, atol=OPT_ATOL)
    mask = np.zeros(a.shape, bool)
    mask[5:30, 10:40] = True
    np.testing.assert_allclose(score_masked(model, a, b, mask, path=path)[mask], plain[mask], atol=OPT_ATOL)


def test_optimised_network_follows_further_training():
    torch.manual_seed(1)
    model = _with_running_stats(build_model(CFG), 4)
    rng = np.random.default_rng(12)
    a, b = rng.random((30, 30), dtype=np.float32), rng.random((30, 30), dtype=np.float32)
    before = score_map(model, a, b)
    with torch.no_grad():  # an optimiser step changes the weights in place
        model.fc.bias[1] += 1.0
        model.layer1[0].bn1.running_mean += 0.5
    after = score_map(model, a, b)
    assert np.abs(after - before).min() > 0.01  # no stale cached copy
    np.testing.assert_allclose(after, score_map(model, a, b, optimized=False), atol=OPT_ATOL)


@pytest.mark.parametrize("net", ["initial", "boundary"])
def test_optimised_shipped_weights_decide_as_the_plain_ones(net):
    model = load_pretrained(net)
    a, b, _ = _half_focused_pair(np.random.default_rng(13), shape=(72, 80), sigma=3.0)
    plain = score_map(model, a, b, optimized=False)
    fast = score_map(model, a, b)
    np.testing.assert_allclose(fast, plain, atol=OPT_ATOL)
    clear = np.abs(plain - 0.5) > OPT_ATOL
    np.testing.assert_array_equal(fast[clear] > 0.5, plain[clear] > 0.5)


# --- padding-free nets: the whole-image paths are the reference ------------------------

VALID = ModelConfig(version="v1", depth=8, width=8, patch_size=64, padding="valid", stem_stride=2)
# the exact profile's shape: stride 1, dilated stages, centre-weighted pool
DENSE = ModelConfig(
    version="v1",
    depth=8,
    width=4,
    patch_size=32,
    padding="valid",
    stage_strides=(1, 1, 1),
    stage_widths=(1, 1, 1),
    stage_dilations=(1, 2, 3),
    head="centre",
)


@pytest.fixture(scope="module")
def valid_net():
    torch.manual_seed(5)
    return _with_running_stats(build_model(VALID), 3)


@pytest.mark.parametrize("optimized", [False, True])
def test_dense_capable_net_is_the_reference_on_every_path(optimized):
    torch.manual_seed(6)
    net = _with_running_stats(build_model(DENSE), 3)
    with torch.no_grad():
        net.pool_width.fill_(-1.0)
    rng = np.random.default_rng(23)
    a = rng.random((50, 61), dtype=np.float32)
    b = np.clip(ndi.gaussian_filter(a, 1.5) + 0.05 * rng.random(a.shape), 0, 1).astype(np.float32)
    ref = score_map(net, a, b, path="reference")
    assert np.ptp(ref) > 0.01
    for path in ("fast", "strided", "dilated", "coarse-to-fine"):
        np.testing.assert_allclose(score_map(net, a, b, path=path, optimized=optimized, tile=20), ref, atol=OPT_ATOL)


@pytest.mark.parametrize("optimized", [False, True])
def test_valid_net_whole_image_paths_are_exact(valid_net, optimized):
    """Strided scores equal the reference on the stride grid, dilated ones everywhere
    (in float32, whatever the tile)."""
    rng = np.random.default_rng(21)
    a = rng.random((75, 90), dtype=np.float32)
    b = np.clip(ndi.gaussian_filter(a, 2.0) + 0.05 * rng.random(a.shape), 0, 1).astype(np.float32)
    ref = score_map(valid_net, a, b, path="reference")
    assert np.ptp(ref) > 0.01
    s = valid_net.total_stride
    strided = score_map(valid_net, a, b, path="strided", optimized=optimized, tile=24)
    np.testing.assert_allclose(strided[::s, ::s], ref[::s, ::s], atol=OPT_ATOL)
    np.testing.assert_allclose(score_map(valid_net, a, b, path="dilated", optimized=optimized), ref, atol=OPT_ATOL)


def test_valid_coarse_to_fine_is_exact_near_decisions(valid_net):
    """Coarse-to-fine: the exact score next to a decision change, the interpolated strided
    one elsewhere."""
    from bamf_lib.nets import scoring

    rng = np.random.default_rng(22)
    a = rng.random((80, 96), dtype=np.float32)
    b = rng.random((80, 96), dtype=np.float32)
    strided = score_map(valid_net, a, b, path="strided")
    unsure = scoring._near_decision(strided, valid_net.total_stride)
    assert unsure.any() and not unsure.all()
    c2f = score_map(valid_net, a, b, path="coarse-to-fine")
    np.testing.assert_array_equal(c2f[~unsure], strided[~unsure])
    ref = score_map(valid_net, a, b, path="reference")
    np.testing.assert_allclose(c2f[unsure], ref[unsure], atol=OPT_ATOL)
    # on a mask: exact at least where the whole-image run was (the mask's edge may add some)
    mask = np.zeros(a.shape, bool)
    mask[20:50, 30:70] = True
    part = score_masked(valid_net, a, b, mask, path="coarse-to-fine")
    assert np.isnan(part[~mask]).all()
    np.testing.assert_allclose(part[mask & unsure], ref[mask & unsure], atol=OPT_ATOL)
    kept = mask & (np.abs(part - strided) > 0)
    np.testing.assert_allclose(part[kept], ref[kept], atol=OPT_ATOL)


@pytest.mark.parametrize("net", ["initial", "boundary"])
def test_shipped_fast_path_is_the_per_patch_reference(net):
    """The shipped nets are padding-free and stride 1: the whole-image pass computes exactly the
    paper's one-patch-per-pixel scores (here on 300 random pixels, edges included)."""
    model = load_pretrained(net)
    assert model.dense_capable
    a, b, _ = _half_focused_pair(np.random.default_rng(14), shape=(96, 120), sigma=3.0)
    rng = np.random.default_rng(15)
    mask = np.zeros(a.shape, bool)
    mask[rng.integers(0, a.shape[0], 300), rng.integers(0, a.shape[1], 300)] = True
    mask[0, 0] = mask[-1, -1] = True
    reference = score_masked(model, a, b, mask, path="reference", optimized=False)[mask]
    fast = score_map(model, a, b, path="fast")[mask]
    assert np.ptp(reference) > 0.1
    np.testing.assert_allclose(fast, reference, atol=OPT_ATOL)
    assert np.array_equal(fast > 0.5, reference > 0.5)
