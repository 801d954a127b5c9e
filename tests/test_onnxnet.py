"""ONNX Runtime scoring (bamf_lib.runtime.onnx, bamf_lib.nets.export): the torch path's scores to 1e-5,
graphs tied to their weights by hash, and a ``bamf fuse`` that never imports torch.

Every test that means ONNX Runtime asks for it (``backend="onnx"``, ``device="cpu"``) instead of
relying on ``"auto"``, which picks torch on a host with an NVIDIA driver; the choice itself is
tested with the GPU probe set both ways."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bamf_lib.config import get_profile
from bamf_lib.fusion.pipeline import fuse
from bamf_lib.fusion.scorers import load_scorer
from bamf_lib.nets.export import TOLERANCE, export_onnx, export_weights
from bamf_lib.nets.models import build_model
from bamf_lib.nets.pretrained import load_pretrained
from bamf_lib.nets.scoring import score_map, score_masked
from bamf_lib.nets.weightfile import save_weights
from bamf_lib.runtime import backend as backends
from bamf_lib.runtime import onnx as onnxnet
from bamf_lib.runtime.locate import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parent.parent


def _random_net(profile: str, seed: int):
    """A net of ``profile``'s shape with random weights and BatchNorm statistics (so folding them matters)."""
    torch.manual_seed(seed)
    net = build_model(get_profile(profile).model)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


def _pair(h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((h, w), dtype=np.float32), rng.random((h, w), dtype=np.float32)


@pytest.mark.parametrize("profile", ["exact", "whole"])
def test_random_nets_of_the_dense_families_match_torch(tmp_path, profile):
    net = _random_net(profile, seed=1)
    onnx = onnxnet.OnnxScorer(export_onnx(net, tmp_path / "n.onnx"), net.config, {}, tmp_path)
    a, b = _pair(90, 137)
    want = score_map(net, a, b, device="cpu", optimized=False)
    np.testing.assert_allclose(onnx.score_map(a, b), want, atol=TOLERANCE)
    onnx.tile = 40  # several overlapping tiles of one size stitch to the same map
    np.testing.assert_allclose(onnx.score_map(a, b), want, atol=TOLERANCE)
    mask = np.zeros(a.shape, bool)
    mask[5:9, 100:120] = True
    got = onnx.score_masked(a, b, mask)
    assert np.isnan(got[~mask]).all()
    np.testing.assert_allclose(got[mask], score_masked(net, a, b, mask, device="cpu")[mask], atol=TOLERANCE)


def test_every_shipped_dense_net_has_its_graph_beside_it():
    """Every weight set `bamf fuse --weights NAME` offers; grid/ holds the training ablation's
    candidates, which the book runs through torch."""
    from bamf_lib.runtime.header import header_info

    dense = [
        f
        for f in sorted(WEIGHTS_DIR.rglob("*.safetensors"))
        if "grid" not in f.relative_to(WEIGHTS_DIR).parts and header_info(f)[0].dense_capable
    ]
    assert dense and WEIGHTS_DIR / "initial.safetensors" in dense
    for file in dense:
        graph = onnxnet._session(onnxnet.onnx_path(file))
        # a graph from other weights would be refused at load time: re-export with python -m bamf_lib.nets.export DIR
        sha = hashlib.sha256(file.read_bytes()).hexdigest()
        assert graph.get_modelmeta().custom_metadata_map[onnxnet.SOURCE_KEY] == sha, file


@pytest.mark.parametrize("net", ["initial", "boundary"])
def test_shipped_graphs_score_as_the_shipped_weights(net):
    file = WEIGHTS_DIR / f"{net}.safetensors"
    onnx, model = onnxnet.load_onnx(file), load_pretrained(net)
    a, b = _pair(150, 170, seed=2)
    np.testing.assert_allclose(onnx.score_map(a, b), score_map(model, a, b, device="cpu"), atol=TOLERANCE)


def test_a_stale_graph_is_an_error_naming_the_export_command_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("BAMF_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "w"
    weights.mkdir()
    for net in ("initial", "boundary"):
        save_weights(_random_net("exact", seed=3), weights / f"{net}.safetensors")
    export_weights(weights / "initial.safetensors")
    save_weights(_random_net("exact", seed=4), weights / "initial.safetensors")  # retrained: the graph is stale
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for load in (
        lambda: onnxnet.load_onnx(weights / "initial.safetensors"),
        lambda: load_scorer("initial", weights, device="cpu"),
    ):
        with pytest.raises(onnxnet.StaleGraphError, match=f"python -m bamf_lib.nets.export {weights}"):
            load()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no graph written anywhere, cache included
    assert load_scorer("initial", weights, backend="torch", device="cpu").backend == "torch"  # the way round it
    export_weights(weights / "initial.safetensors")  # the named command's work
    fresh = load_scorer("initial", weights, device="cpu")
    assert (
        fresh.backend == "onnx"
        and fresh.sha256 == hashlib.sha256((weights / "initial.safetensors").read_bytes()).hexdigest()
    )
    a, b = _pair(70, 80)
    want = score_map(load_pretrained("initial", weights), a, b, device="cpu")
    np.testing.assert_allclose(fresh.score_map(a, b), want, atol=TOLERANCE)


@pytest.mark.parametrize("gpu", [False, True])
def test_backends_are_chosen_by_what_computes_the_same_scores(monkeypatch, gpu):
    monkeypatch.setattr(backends, "gpu_present", lambda: gpu)
    auto = load_scorer("initial")
    assert auto.backend == ("torch" if gpu else "onnx")  # a driver may mean CUDA: torch decides there
    if gpu:
        assert backends.choose_backend(auto.config)[1] == "a GPU may be present"
    on_cpu = load_scorer("initial", device="cpu")
    assert on_cpu.backend == "onnx" and on_cpu is load_scorer("initial", device="cpu")  # loaded once
    assert load_scorer("initial", backend="torch", device="cpu").backend == "torch"
    assert load_scorer("initial", path="reference", device="cpu").backend == "torch"
    assert load_scorer("initial", weights="padded", device="cpu").backend == "torch"  # zero-padded: not dense-capable
    with pytest.raises(ValueError, match="not padding-free"):
        load_scorer("initial", weights="padded", backend="onnx")
    with pytest.raises(ValueError, match="backend"):
        load_scorer("initial", backend="tensorrt")


def test_onnx_and_torch_fuse_to_the_same_decision():
    from bamf_lib.evaluation.groundtruth import groundtruth_set

    pair = groundtruth_set(1, seed=4)[0]
    onnx, plain = (
        fuse([pair.a, pair.b], backend="onnx", device="cpu"),
        fuse([pair.a, pair.b], backend="torch", device="cpu"),
    )
    assert onnx.near_boundary.any()
    np.testing.assert_allclose(onnx.refined_score_map, plain.refined_score_map, atol=TOLERANCE)
    np.testing.assert_array_equal(onnx.decision_map, plain.decision_map)


@pytest.mark.requires_data("lytro")
def test_decisions_equal_torch_on_all_20_lytro_pairs_but_float32_ties():
    """ONNX Runtime against torch's fast path, as fused in process.  With the 20-layer shipped nets,
    float32 implementations (ONNX Runtime, torch's oneDNN copy, the plain torch net) round a score
    differently by up to ~2e-5, so a pixel whose refined score is that close to 0.5 may fall either
    way: e.g. lytro-18 (16, 87), 0.5 - 2.2e-6 in float64, is 0.4999969 here, 0.5000010 on oneDNN.
    Any other difference fails."""
    from bamf_lib.data.datasets import LYTRO_INDICES, lytro_pair

    for n in LYTRO_INDICES:
        sources = list(lytro_pair(n))
        onnx, torch_ = fuse(sources, backend="onnx", device="cpu"), fuse(sources, backend="torch", device="cpu")
        assert np.abs(onnx.score_map - torch_.score_map).max() <= 5 * TOLERANCE, n
        differ = onnx.decision_map != torch_.decision_map
        assert differ.sum() <= 2, (n, int(differ.sum()))
        assert (np.abs(torch_.refined_score_map[differ] - 0.5) < 5 * TOLERANCE).all(), n


_NO_TORCH = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (made unimportable by the test)", name="torch")
sys.meta_path.insert(0, Refuse())
import bamf_lib
from bamf_lib.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules, "torch was imported"
sys.exit(code)
"""


def test_bamf_fuse_never_imports_torch(tmp_path):
    from PIL import Image

    from bamf_lib.evaluation.groundtruth import groundtruth_set

    pair = groundtruth_set(1, seed=5)[0]
    for name, image in (("a.png", pair.a), ("b.png", pair.b)):
        Image.fromarray(image).save(tmp_path / name)
    argv = [
        "fuse",
        str(tmp_path / "a.png"),
        str(tmp_path / "b.png"),
        "-o",
        str(tmp_path / "f.png"),
        "-q",
        "--device",
        "cpu",
    ]  # "auto" would pick torch on a host with an NVIDIA driver
    run = subprocess.run([sys.executable, "-c", _NO_TORCH, *argv], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    fused = np.asarray(Image.open(tmp_path / "f.png"))
    np.testing.assert_array_equal(fused, fuse([pair.a, pair.b], backend="torch", device="cpu").fused)
    # what needs torch says so in one line
    run = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *argv, "--force", "--backend", "torch"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1 and "torch" in run.stderr


def test_tiles_are_of_one_size_and_cover_the_image():
    for h, w, side in ((520, 520, 773), (4000, 6000, 773), (101, 97, 40), (64, 300, 64)):
        tiles = onnxnet._tiles(h, w, side)
        assert len({(y1 - y0, x1 - x0) for y0, y1, x0, x1 in tiles}) == 1, (h, w, side)
        assert all(y1 - y0 <= side and x1 - x0 <= side for y0, y1, x0, x1 in tiles)
        covered = np.zeros((h, w), int)
        for y0, y1, x0, x1 in tiles:
            covered[y0:y1, x0:x1] += 1
        assert covered.min() == 1 and len(tiles) == -(-h // side) * -(-w // side)


def test_a_score_does_not_depend_on_the_thread_count():
    """What lets a batch fuse a stack per core (threads(1) in each worker) and match a single fuse bit for bit."""
    net = onnxnet.load_onnx(WEIGHTS_DIR / "initial.safetensors")
    a, b = _pair(150, 170, seed=3)
    every_core = net.score_map(a, b)
    with onnxnet.threads(1):
        one = net.score_map(a, b)
        assert (150 + 63, 170 + 63, 1) in net._sessions
    np.testing.assert_array_equal(one, every_core)


def test_every_session_shares_one_memory_arena():
    """The pinned ONNX Runtime registers the process-wide arena (what keeps 24 MP near 1.2 GB
    with ~1190-pixel tiles; benchmarks/bench_cli.py measures it), and asking again is free."""
    assert onnxnet._shared_arena() is True and onnxnet._shared_arena() is True
    assert onnxnet.load_onnx(WEIGHTS_DIR / "initial.safetensors").tile > 1000
