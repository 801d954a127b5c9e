"""The paper's own network (profile ``paper``): Res56 v2 at 64x64, the authors' Keras head, one training step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from test_models import _random_stats  # BatchNorm with non-trivial running statistics
from torch.utils.data import TensorDataset

from bamf_lib.config import ModelConfig, get_profile
from bamf_lib.nets.models import build_model, param_count
from bamf_lib.nets.training import train

PAPER = get_profile("paper")


def test_paper_profile_is_res56_v2_at_64():
    assert (PAPER.model.version, PAPER.model.depth, PAPER.model.patch_size) == ("v2", 56, 64)


def test_res56_v2_forward_at_64_gives_two_logits_per_patch():
    torch.manual_seed(0)
    model = build_model(PAPER.model).eval()
    # three stages, strides 1/2/2: a 64x64 patch ends as a 16x16 map of 16 * 16 = 256 channels
    assert model.final_size == 16 and model.feature_channels == 256
    with torch.no_grad():
        out = model(torch.rand(3, 2, 64, 64))
    assert out.shape == (3, 2) and torch.isfinite(out).all()


def test_keras_head_is_pooled_to_2x2_and_flattened():
    """The authors' head: 8x8 average pools on the 16x16 map -> 2 x 2 x 256 -> dense(2)."""
    gap = build_model(PAPER.model)
    keras = build_model(replace(PAPER.model, head="keras"))
    assert keras.fc.in_features == 2 * 2 * 256
    # only the dense layer differs: (1024 + 1) x 2 against (256 + 1) x 2 parameters
    assert param_count(keras) - param_count(gap) == (1024 + 1) * 2 - (256 + 1) * 2


def test_keras_head_by_hand():
    """A head weight on one grid cell and one channel reads that cell's mean of that channel."""
    torch.manual_seed(0)
    model = _random_stats(build_model(replace(PAPER.model, head="keras")))
    x = torch.rand(1, 2, 64, 64)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        # flatten order of (C, 2, 2): channel 5, grid cell (row 1, column 0)
        model.fc.weight[1, 5 * 4 + 1 * 2 + 0] = 1.0
        feats = model.features(x)
        expected = feats[0, 5, 8:16, 0:8].mean()
        assert model(x)[0, 1].item() == pytest.approx(expected.item(), rel=1e-5)


def test_keras_head_at_every_position_is_every_patch():
    """pooled_logits (the fast path's head) gives, on a padding-free net, each patch's own logits."""
    cfg = ModelConfig(
        version="v1",
        depth=8,
        width=4,
        patch_size=32,
        padding="valid",
        stage_strides=(1, 1, 1),
        stage_widths=(1, 1, 1),
        head="keras",
    )
    torch.manual_seed(0)
    model = _random_stats(build_model(cfg))
    img = torch.rand(1, 2, 41, 38)
    with torch.no_grad():
        dense = model.pooled_logits(model.features(img))
        assert dense.shape[-2:] == (41 - 31, 38 - 31)
        for y, x in [(0, 0), (9, 6), (4, 3)]:
            alone = model(img[..., y : y + 32, x : x + 32])
            assert torch.allclose(dense[:, :, y, x], alone, atol=1e-5)


def test_keras_head_needs_an_even_map():
    cfg = ModelConfig(version="v1", depth=8, width=4, patch_size=64, padding="valid", stem_stride=2, head="keras")
    with pytest.raises(ValueError, match="even"):
        build_model(cfg)  # (64 - 3) // 2 + 1 = 31, then 27, 11, 3: a 3 x 3 map has no 2 x 2 grid


@pytest.mark.parametrize("head", ["gap", "keras"])
def test_one_training_step_of_the_paper_profile(tmp_path, head):
    """One SGD step with the paper's settings changes the weights and gives a finite loss."""
    torch.manual_seed(0)
    model = build_model(replace(PAPER.model, head=head))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randint(0, 256, (8, 2, 64, 64), dtype=torch.uint8)
    y = torch.randint(0, 2, (8,))
    cfg = replace(PAPER.train, epochs=1, batch_size=8, device="cpu", lr=0.1)
    log = train(model, TensorDataset(x, y), None, cfg, out_dir=tmp_path, progress=False)
    assert len(log) == 1 and log[0]["samples_seen"] == 8
    assert torch.isfinite(torch.tensor(log[0]["loss"]))
    changed = sum(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
    assert changed == len(before)
