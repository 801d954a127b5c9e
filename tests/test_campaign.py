"""A training campaign: runs that stop on time, resume elsewhere and keep one schedule."""

import os
import stat

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from bamf_lib.config import TrainConfig
from bamf_lib.nets.checkpoint import load_checkpoint
from bamf_lib.nets.training import CHECKPOINT, read_log, train


def _problem(n: int = 256, size: int = 12):
    """Which channel holds the noise texture, the other a flat copy of its mean."""
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (n, size, size)).astype(np.float32)
    flat = np.broadcast_to(sharp.mean(axis=(1, 2), keepdims=True), sharp.shape)
    y = rng.integers(0, 2, n)
    a, b = np.where(y[:, None, None] == 1, sharp, flat), np.where(y[:, None, None] == 1, flat, sharp)
    x = np.stack([a, b], 1).round().astype(np.uint8)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


# four epochs with a drop after the second (half the run): a resume that lost the schedule would show it
CFG = TrainConfig(epochs=4, batch_size=32, lr=0.05, milestones=(0.5,), factors=(0.1,), device="cpu")


def test_a_stopped_and_resumed_campaign_equals_an_uninterrupted_run(tmp_path):
    data = _problem()
    whole_net, whole = _net(), tmp_path / "whole"
    whole_log = train(whole_net, data, None, CFG, out_dir=whole, progress=False)

    part_net, part = _net(), tmp_path / "part"
    first = train(part_net, data, None, CFG, out_dir=part, progress=False, stop_after=1e-6, run_id="run-1")
    assert len(first) == 1, "stop_after stops after the first whole epoch that ends past it"
    state = load_checkpoint(part / CHECKPOINT, CFG, torch.device("cpu"))
    assert (state["epoch"], state["epochs"]) == (1, 4), "the planned schedule is kept for the resume"

    # another session, another process's model object: resumed from the checkpoint alone
    resumed_net = _net()
    log = train(resumed_net, data, None, CFG, out_dir=part, progress=False, run_id="run-2")
    assert [r["lr"] for r in log] == [r["lr"] for r in whole_log]
    assert [r["run"] for r in log] == ["run-1", "run-2", "run-2", "run-2"]
    assert [r["steps"] for r in log] == [8] * 4
    for p, q in zip(whole_net.state_dict().values(), resumed_net.state_dict().values()):
        assert torch.equal(p, q)

    def strip(rows):  # what must agree: everything but the wall clock and the run stamp
        return [{k: v for k, v in r.items() if k not in ("seconds", "run")} for r in rows]

    assert strip(read_log(part / "log.jsonl")) == strip(read_log(whole / "log.jsonl"))


def test_runs_are_summarised_from_the_log():
    from bamf_lib.nets.recipe import _runs

    log = [{"run": "a", "seconds": 10.0}, {"run": "a", "seconds": 11.0}, {"run": "b", "seconds": 9.5}, {"seconds": 1}]
    assert _runs(log) == [
        {"run": "a", "epochs": 2, "seconds": 21.0},
        {"run": "b", "epochs": 1, "seconds": 9.5},
        {"run": "unstamped", "epochs": 1, "seconds": 1.0},
    ]


def test_resume_from_adopts_a_checkpoint_only_when_it_is_further(tmp_path):
    from bamf_lib.nets.recipe import _adopt_checkpoint

    data = _problem(64)
    src = tmp_path / "committed"
    train(_net(), data, None, CFG, out_dir=src, progress=False, stop_after=1e-6)
    target = tmp_path / "run" / CHECKPOINT
    _adopt_checkpoint(src / CHECKPOINT, target, CFG)
    assert target.read_bytes() == (src / CHECKPOINT).read_bytes()
    # the local run went on further: a stale committed copy must not overwrite it
    train(_net(), data, None, CFG, out_dir=target.parent, progress=False)
    further = target.read_bytes()
    _adopt_checkpoint(src / CHECKPOINT, target, CFG)
    assert target.read_bytes() == further
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        _adopt_checkpoint(tmp_path / "missing.pt", target, CFG)
    with pytest.raises(ValueError, match="another TrainConfig"):
        _adopt_checkpoint(src / CHECKPOINT, tmp_path / "x" / CHECKPOINT, TrainConfig(epochs=5, device="cpu"))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_weights_and_checkpoints_follow_the_umask(tmp_path, umask):
    from bamf_lib.config import ModelConfig
    from bamf_lib.nets.models import build_model
    from bamf_lib.nets.weightfile import save_weights

    old = os.umask(umask)
    try:
        train(
            _net(),
            _problem(64),
            None,
            TrainConfig(epochs=1, batch_size=32, device="cpu"),
            out_dir=tmp_path,
            progress=False,
        )
        weights = save_weights(
            build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16)), tmp_path / "w.safetensors", {}
        )
    finally:
        os.umask(old)
    for path in (tmp_path / CHECKPOINT, weights, tmp_path / "log.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name
