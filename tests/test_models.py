"""Behaviour of the 2-channel ResNet: shapes, depth rules, weights round trip, dense view."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from bamf_lib.config import ModelConfig
from bamf_lib.nets.inference import dilated_copy
from bamf_lib.nets.models import architecture_table, build_model, param_count, receptive_field
from bamf_lib.nets.pretrained import load_pretrained
from bamf_lib.nets.weightfile import load_weights, save_weights


def _randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give BN layers non-trivial statistics so equivalences are not vacuous."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize(
    "version,depth,patch",
    [("v1", 8, 16), ("v1", 14, 32), ("v1", 20, 24), ("v2", 11, 16), ("v2", 20, 32)],
)
def test_shapes(version, depth, patch):
    cfg = ModelConfig(version=version, depth=depth, width=4, patch_size=patch)
    model = build_model(cfg).eval()
    x = torch.rand(3, 2, patch, patch)
    with torch.no_grad():
        logits = model(x)
        feats = model.features(x)
    assert logits.shape == (3, 2)
    assert feats.shape == (3, model.feature_channels, patch // model.total_stride, patch // model.total_stride)
    assert model.config == cfg


def test_depth_counts_layers():
    # v1: 6n+2 weighted layers on the main path; v2: 9n+2
    for version, depth in [("v1", 20), ("v1", 56), ("v2", 29), ("v2", 56)]:
        model = build_model(ModelConfig(version=version, depth=depth, width=4))
        main = 1 + sum(len(b.main_convs) for b in model.blocks) + 1  # stem + blocks + fc
        assert main == depth


def test_res56_parameter_counts_match_known_sizes():
    # CIFAR ResNet-56 (v1) has about 0.85 M parameters; Keras ResNet56v2 about 1.66 M
    v1 = param_count(build_model(ModelConfig(version="v1", depth=56, width=16)))
    v2 = param_count(build_model(ModelConfig(version="v2", depth=56, width=16)))
    assert 0.84e6 < v1 < 0.87e6
    assert 1.6e6 < v2 < 1.7e6


@pytest.mark.parametrize("version,depth", [("v1", 21), ("v1", 2), ("v2", 21), ("v3", 20)])
def test_invalid_config_rejected(version, depth):
    with pytest.raises(ValueError):
        ModelConfig(version=version, depth=depth)


def test_build_model_rejects_non_config():
    with pytest.raises(ValueError, match="ModelConfig"):
        build_model({"version": "v1"})


def test_receptive_field_grows_with_depth():
    rfs = [receptive_field(ModelConfig(version="v1", depth=d)) for d in (8, 20, 56)]
    assert rfs == sorted(rfs) and rfs[0] < rfs[-1]
    # stem 3x3 + stage 1 (one block of two 3x3 at jump 1) = 7; then +6 (jump 2) +12 (jump 4)
    assert rfs[0] == 25


@pytest.mark.parametrize("version,depth", [("v1", 8), ("v2", 11)])
def test_save_load_round_trip(tmp_path, version, depth):
    model = build_model(ModelConfig(version=version, depth=depth, width=4, patch_size=16)).eval()
    _randomise_batchnorm(model)
    path = save_weights(model, tmp_path / "net.safetensors", {"profile": "test", "epochs": 3})
    loaded = load_weights(path)
    x = torch.rand(4, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.config == model.config
    assert loaded.metadata == {"profile": "test", "epochs": 3}
    assert not loaded.training


def test_save_refuses_unserialisable_metadata(tmp_path):
    model = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16))
    with pytest.raises(ValueError, match="JSON"):
        save_weights(model, tmp_path / "net.safetensors", {"bad": object()})
    assert not (tmp_path / "net.safetensors").exists()


def test_load_refuses_pickle(tmp_path):
    model = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16))
    path = tmp_path / "net.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match="safetensors"):
        load_weights(path)
    path2 = tmp_path / "net2.safetensors"
    path2.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError):
        load_weights(path2)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "nope.safetensors")


def test_load_pretrained_rejects_unknown_net():
    with pytest.raises(ValueError, match="net"):
        load_pretrained("normal")


def test_load_pretrained_missing_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="bamf train --profile quick --net boundary"):
        load_pretrained("boundary", tmp_path)


def test_load_pretrained_loads_once_and_again_after_a_change(tmp_path):
    model = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16))
    save_weights(model, tmp_path / "initial.safetensors", {"n": 1})
    first = load_pretrained("initial", tmp_path)
    assert load_pretrained("initial", tmp_path) is first and first.metadata == {"n": 1}
    save_weights(model, tmp_path / "initial.safetensors", {"n": 2})
    os.utime(tmp_path / "initial.safetensors", ns=(1, 1))  # a different mtime whatever the clock's resolution
    assert load_pretrained("initial", tmp_path).metadata == {"n": 2}


@pytest.mark.parametrize("version,depth", [("v1", 8), ("v2", 11)])
def test_dilated_copy_samples_to_strided_features(version, depth):
    model = build_model(ModelConfig(version=version, depth=depth, width=4, patch_size=16)).eval()
    _randomise_batchnorm(model)
    dense = dilated_copy(model)
    x = torch.rand(1, 2, 40, 44)
    with torch.no_grad():
        strided = model.features(x)
        full = dense.features(x)
    assert full.shape[-2:] == x.shape[-2:]
    s = model.total_stride
    torch.testing.assert_close(full[..., ::s, ::s], strided, atol=1e-4, rtol=1e-4)
    # the original model is untouched
    assert model.features(x).shape[-1] == 44 // s


@pytest.mark.parametrize("version,depth", [("v1", 14), ("v2", 20)])
def test_architecture_table_accounts_for_every_parameter(version, depth):
    cfg = ModelConfig(version=version, depth=depth, width=8, patch_size=24)
    rows = architecture_table(cfg)
    assert [r["stage"] for r in rows] == ["stem", "stage 1", "stage 2", "stage 3", "head"]
    assert sum(r["params"] for r in rows) == param_count(build_model(cfg))
    # by hand: v1 ends in 4 * 8 = 32 channels, linear 32 -> 2 (64 + 2); v2 in 16 * 8 = 128,
    # its final BN (2 * 128) and linear 128 -> 2 (256 + 2)
    assert rows[-1]["params"] == {"v1": 66, "v2": 514}[version]
    assert [r["size"] for r in rows[:4]] == [24, 24, 12, 6]


# --- padding-free ("valid") networks ----------------------------------------------------

VALID = ModelConfig(version="v1", depth=8, width=4, patch_size=64, padding="valid", stem_stride=2)


def _random_stats(model):
    """BatchNorm with non-trivial running statistics, so folding and cropping are tested."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def test_valid_net_sees_only_its_patch():
    """No padding: a patch's logits are the same whether it stands alone or sits inside an image."""
    torch.manual_seed(0)
    model = _random_stats(build_model(VALID))
    assert model.total_stride == 8 and model.final_size == 3
    img = torch.rand(1, 2, 64 + 8 * 5, 64 + 8 * 4)
    with torch.no_grad():
        feats = model.features(img)
        assert feats.shape[-2:] == (3 + 5, 3 + 4)
        for qy, qx in [(0, 0), (5, 4), (2, 3)]:
            alone = model(img[..., 8 * qy : 8 * qy + 64, 8 * qx : 8 * qx + 64])
            inside = model.fc(feats[..., qy : qy + 3, qx : qx + 3].mean((2, 3)))
            assert torch.allclose(alone, inside, atol=1e-5)


def test_valid_dilated_copy_is_every_patch():
    torch.manual_seed(0)
    model = _random_stats(build_model(VALID))
    dense = dilated_copy(model)
    img = torch.rand(1, 2, 80, 75)
    with torch.no_grad():
        feats = dense.features(img)
        for y, x in [(0, 0), (7, 11), (16, 3)]:
            alone = model(img[..., y : y + 64, x : x + 64])
            inside = model.fc(feats[..., y : y + 24 : 8, x : x + 24 : 8].mean((2, 3)))
            assert torch.allclose(alone, inside, atol=1e-5)


def test_valid_net_needs_room_and_v1():
    with pytest.raises(ValueError, match="larger patch"):
        build_model(ModelConfig(version="v1", depth=20, width=4, patch_size=32, padding="valid"))
    with pytest.raises(ValueError, match="'v1' only"):
        ModelConfig(version="v2", depth=11, padding="valid")
    with pytest.raises(ValueError, match="padding"):
        ModelConfig(padding="reflect")
    with pytest.raises(ValueError, match="stem_stride"):
        ModelConfig(stem_stride=3)


def test_valid_net_round_trips(tmp_path):
    model = _random_stats(build_model(VALID))
    path = save_weights(model, tmp_path / "v.safetensors")
    back = load_weights(path)
    assert back.config == VALID
    x = torch.rand(2, 2, 64, 64)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


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


def test_dense_logits_are_every_patchs_logits():
    torch.manual_seed(0)
    model = _random_stats(build_model(DENSE))
    with torch.no_grad():
        model.pool_width.fill_(-1.5)  # a narrow, clearly non-uniform pool
    kernel = model.pool_kernel()[0, 0]
    assert kernel.sum().item() == pytest.approx(1.0)
    assert kernel.argmax().item() == (model.final_size // 2) * (model.final_size + 1)  # peaks at the centre
    x = torch.rand(2, 2, 45, 39)
    with torch.no_grad():
        dense = model(x)  # a region larger than the patch: every patch at once
        assert dense.shape == (2, 2, 45 - 31, 39 - 31)
        for y, x0 in [(0, 0), (13, 7), (4, 2)]:
            alone = model(x[..., y : y + 32, x0 : x0 + 32])
            assert torch.allclose(dense[:, :, y, x0], alone, atol=1e-5)


def test_dense_logits_need_a_dense_capable_net():
    model = build_model(VALID)  # padding-free but strided
    assert not model.dense_capable
    with pytest.raises(ValueError, match="stride 1"):
        model.dense_logits(torch.rand(1, 2, 80, 80))


def test_shipped_weight_sets_are_found_by_name(tmp_path):
    from bamf_lib.runtime.locate import WEIGHTS_DIR, weights_folder, weights_path

    assert weights_folder("padded") == WEIGHTS_DIR / "padded"
    assert weights_path("boundary") == WEIGHTS_DIR / "boundary.safetensors"
    assert weights_path("initial", tmp_path) == tmp_path / "initial.safetensors"  # missing: the plain name
    (tmp_path / "a-initial.safetensors").touch()
    assert weights_path("initial", tmp_path) == tmp_path / "a-initial.safetensors"
    (tmp_path / "b-initial.safetensors").touch()
    with pytest.raises(ValueError, match="several"):
        weights_path("initial", tmp_path)
