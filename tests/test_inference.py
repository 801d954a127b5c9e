"""The inference copies compute what the plain network computes; the fused oneDNN path
is guarded and falls back to the plain one."""

from __future__ import annotations

import pytest
import torch
from test_scoring import _with_running_stats

from bamf_lib.config import ModelConfig
from bamf_lib.nets import inference
from bamf_lib.nets.models import build_model

CONFIGS = [
    ModelConfig(version="v1", depth=8, width=4, patch_size=16),
    ModelConfig(
        version="v1",
        depth=8,
        width=4,
        patch_size=32,
        padding="valid",
        stage_strides=(1, 1, 1),
        stage_widths=(1, 1, 1),
        stage_dilations=(1, 2, 3),
        head="centre",
    ),
    ModelConfig(version="v2", depth=11, width=4, patch_size=16),
]


def _trained_looking(cfg: ModelConfig) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so folding them is really tested."""
    torch.manual_seed(0)
    return _with_running_stats(build_model(cfg), 1)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["v1", "v1-valid-dense", "v2"])
def test_fused_features_agree_with_the_plain_network(cfg):
    model = _trained_looking(cfg)
    fast = inference.inference_copy(model)
    x = torch.rand(2, 2, 40, 44)
    with torch.no_grad():
        plain = model.features(x)
        fused = inference.fused_features(fast, x.contiguous(memory_format=torch.channels_last))
    assert fused.shape == plain.shape
    torch.testing.assert_close(fused, plain, atol=1e-4, rtol=1e-4)


def test_without_the_fused_op_the_plain_path_runs(monkeypatch):
    model = _trained_looking(CONFIGS[0])
    fast = inference.inference_copy(model)
    x = torch.rand(1, 2, 24, 24).contiguous(memory_format=torch.channels_last)
    monkeypatch.setattr(inference, "onednn_fusion_available", lambda: False)
    with torch.no_grad():
        assert torch.equal(inference.fused_features(fast, x), fast.features(x))


def test_the_probe_accepts_this_torch():
    # this project's pinned CPU torch has the op; if a future torch drops it, the probe
    # says False and fused_features falls back (the test above)
    assert inference.onednn_fusion_available() == (
        torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def test_cached_copy_is_built_once_and_rebuilt_after_training():
    model = _trained_looking(CONFIGS[0])
    first = inference.cached_copy(model)
    assert inference.cached_copy(model) is first
    assert inference.cached_copy(model, dense=True).dilation == model.total_stride
    with torch.no_grad():
        model.fc.bias += 1.0
    assert inference.cached_copy(model) is not first
