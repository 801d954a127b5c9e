"""The Scorer protocol and its implementations: what fusion sees of a network, whatever runs it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from bamf_lib.config import ModelConfig
from bamf_lib.fusion.scorers import as_scorer, load_scorer
from bamf_lib.nets import scoring
from bamf_lib.nets.models import build_model
from bamf_lib.nets.scorer import WHOLE_IMAGE_ABOVE, TorchScorer
from bamf_lib.runtime.backend import choose_backend
from bamf_lib.runtime.locate import WEIGHTS_DIR
from bamf_lib.runtime.scorer import is_scorer


def _tiny_net():
    torch.manual_seed(0)
    return build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16)).eval()


@pytest.fixture
def recorded(monkeypatch):
    """The torch scoring functions TorchScorer calls, replaced by recorders of what they were asked."""
    calls = []

    def score_map(model, a, b, **kw):
        calls.append(("map", kw["path"]))
        return np.full(a.shape, 0.25, np.float32)

    def score_masked(model, a, b, mask, **kw):
        calls.append(("masked", kw["path"]))
        return np.where(mask, 0.75, np.nan).astype(np.float32)

    monkeypatch.setattr(scoring, "score_map", score_map)
    monkeypatch.setattr(scoring, "score_masked", score_masked)
    return calls


@pytest.mark.parametrize(
    ("path", "band", "expected"),
    [
        ("reference", 0.5, "masked"),  # the reference path evaluates only the band's patches
        ("fast", WHOLE_IMAGE_ABOVE / 2, "masked"),  # a tiny band: its tiles
        ("fast", 0.5, "map"),  # a large band: one whole-image pass is cheaper
    ],
)
def test_the_torch_scorer_scores_a_band_the_cheapest_way(recorded, path, band, expected):
    scorer = TorchScorer(_tiny_net(), device="cpu", path=path)
    mask = np.zeros((100, 100), bool)
    mask.flat[: int(band * mask.size)] = True
    a = np.zeros((100, 100), np.float32)
    out = scorer.score_masked(a, a, mask)
    assert recorded == [(expected, path)]
    assert np.isnan(out[~mask]).all() and np.isfinite(out[mask]).all()  # NaN off the band either way


def test_scorers_report_their_name_and_the_hash_of_their_weights():
    file = WEIGHTS_DIR / "initial.safetensors"
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    onnx, torch_ = load_scorer("initial", device="cpu"), load_scorer("initial", backend="torch", device="cpu")
    assert (onnx.backend, torch_.backend) == ("onnx", "torch")
    assert onnx.name == torch_.name == "initial.safetensors" and onnx.sha256 == torch_.sha256 == sha
    assert is_scorer(onnx) and is_scorer(torch_)
    unnamed = TorchScorer(_tiny_net(), device="cpu")
    other = _tiny_net()
    with torch.no_grad():
        other.fc.bias.add_(1.0)
    assert unnamed.sha256 != TorchScorer(other, device="cpu").sha256  # the state's hash tells nets apart
    assert unnamed.sha256 == TorchScorer(_tiny_net(), device="cpu").sha256


def test_as_scorer_wraps_a_torch_network_and_passes_a_scorer_through():
    net = _tiny_net()
    assert not is_scorer(net)
    wrapped = as_scorer(net, path="reference", device="cpu")
    assert is_scorer(wrapped) and wrapped.model is net and wrapped.path == "reference"
    assert wrapped.device == torch.device("cpu")
    assert as_scorer(wrapped, path="fast") is wrapped
    a = np.random.default_rng(0).random((40, 50), dtype=np.float32)
    np.testing.assert_array_equal(
        wrapped.score_map(a, a[::-1].copy()), scoring.score_map(net, a, a[::-1].copy(), path="reference")
    )


def test_choose_backend_says_why_onnx_runtime_does_not_run_a_network():
    dense = ModelConfig(version="v1", depth=8, width=4, patch_size=16, padding="valid", stage_strides=(1, 1, 1))
    assert dense.dense_capable
    assert choose_backend(dense, device="cpu") == ("onnx", None)
    assert choose_backend(dense, device="cuda")[0] == "torch"
    assert "reference" in choose_backend(dense, device="cpu", path="reference")[1]
    assert "padding-free" in choose_backend(ModelConfig(), device="cpu")[1]
    with pytest.raises(ValueError, match="cannot run net.safetensors"):
        choose_backend(ModelConfig(), backend="onnx", what="net.safetensors")


def test_swap_averaged_scores_are_antisymmetric_and_the_mean_of_both_orders():
    """SwapAveraged: s(a, b) + s(b, a) = 1 exactly where the plain net is not (so the test can
    fail), in the whole map and in a band, and it keeps the net's configuration and weights hash."""
    from bamf_lib.fusion.scorers import SwapAveraged

    rng = np.random.default_rng(0)
    a, b = (rng.random((40, 48)).astype(np.float32) for _ in range(2))
    plain = as_scorer(_tiny_net(), device="cpu")
    both = SwapAveraged(plain)
    s_ab, s_ba = plain.score_map(a, b), plain.score_map(b, a)
    assert np.abs(s_ab + s_ba - 1).max() > 1e-3  # an untrained net leans towards one order
    np.testing.assert_allclose(both.score_map(a, b), (s_ab + 1 - s_ba) / 2, atol=1e-6)
    np.testing.assert_allclose(both.score_map(a, b) + both.score_map(b, a), 1.0, atol=1e-6)
    mask = np.zeros(a.shape, bool)
    mask[10:20, 5:30] = True
    band = both.score_masked(a, b, mask)
    assert np.isnan(band[~mask]).all()
    np.testing.assert_allclose(band[mask], both.score_map(a, b)[mask], atol=1e-5)
    assert is_scorer(both) and both.config == plain.config and both.sha256 == plain.sha256
    assert "both orders" in both.name


class _Constant:
    """A scorer stand-in that records the sizes it is asked to score and answers by size."""

    def __init__(self, by_size):
        self.by_size, self.sizes = by_size, []
        self.config, self.metadata, self.backend = ModelConfig(patch_size=16), {}, "test"
        self.name, self.sha256 = "constant", "0" * 64

    def score_map(self, a, b, *, progress=False):
        self.sizes.append(a.shape)
        return np.full(a.shape, self.by_size(a.shape), np.float32)

    def score_masked(self, a, b, mask, *, progress=False):
        return np.where(mask, self.score_map(a, b), np.nan).astype(np.float32)


def test_two_scale_combines_the_full_and_reduced_maps_by_mean_log_odds():
    """TwoScale scores the pair at full size and at half size, brings the reduced map back to full
    size and combines: a sure reduced score outweighs an unsure full one (0.55 -> below 0.5), an
    unsure reduced one (0.5) keeps the full one's side; too small a pair is scored once."""
    from bamf_lib.fusion.scorers import TwoScale, mean_log_odds

    a = np.zeros((40, 48), np.float32)
    inner = _Constant(lambda shape: 0.55 if shape == (40, 48) else 0.1)
    two = TwoScale(inner)
    s = two.score_map(a, a)
    assert inner.sizes == [(40, 48), (20, 24)] and s.shape == (40, 48)
    np.testing.assert_allclose(s, mean_log_odds(np.float32(0.55), np.float32(0.1)), atol=1e-6)
    assert (s < 0.5).all()
    unsure = TwoScale(_Constant(lambda shape: 0.55 if shape == (40, 48) else 0.5))
    np.testing.assert_allclose(unsure.score_map(a, a), 0.5 + (0.55 - 0.5) / 2, atol=0.002)
    mask = np.zeros(a.shape, bool)
    mask[3:9, 4:20] = True
    band = two.score_masked(a, a, mask)
    assert np.isnan(band[~mask]).all() and np.allclose(band[mask], s[mask])
    small = _Constant(lambda shape: 0.7)
    np.testing.assert_allclose(TwoScale(small).score_map(a[:24, :24], a[:24, :24]), 0.7)
    assert small.sizes == [(24, 24)]  # half of 24 is under the patch size: one scale only
    assert is_scorer(two) and "scales 1 and 0.5" in two.name and two.sha256 == inner.sha256
    with pytest.raises(ValueError, match="second scale"):
        TwoScale(inner, factor=1.0)
