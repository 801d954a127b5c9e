"""Training loop: schedule, learning, checkpoint/resume after SIGKILL, DDP on 2 CPU processes.

The networks here are tiny stand-ins defined in the tests; the loop is the library's.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import TensorDataset

from bamf_lib.config import TrainConfig
from bamf_lib.nets.training import lr_factor, read_log, train

REPO = Path(__file__).resolve().parents[1]

# A self-contained tiny problem: which channel holds the sharp texture?  Shared by the
# in-process tests and the subprocess scripts (SIGKILL, torchrun).
TINY = textwrap.dedent(
    """
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    def tiny_data(n, seed, size=16):
        rng = np.random.default_rng(seed)
        sharp = rng.integers(0, 256, (n, size, size)).astype(np.float32)
        blur = sum(np.roll(np.roll(sharp, dy, 1), dx, 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
        y = rng.integers(0, 2, n)
        a = np.where(y[:, None, None] == 1, sharp, blur)
        b = np.where(y[:, None, None] == 1, blur, sharp)
        x = np.stack([a, b], 1).round().clip(0, 255).astype(np.uint8)
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))

    def tiny_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 2))
    """
)
_TINY: dict = {}
exec(TINY, _TINY)  # the same source runs in this process and in the subprocess scripts
tiny_data, tiny_model = _TINY["tiny_data"], _TINY["tiny_model"]

SCRIPT = TINY + textwrap.dedent(
    """
    import os, sys
    from safetensors.torch import save_file
    from bamf_lib.config import TrainConfig
    from bamf_lib.nets.training import train
    torch.set_num_threads(1)
    out = sys.argv[1]
    cfg = TrainConfig(epochs=int(sys.argv[2]), batch_size=32, lr=0.05, seed=3, device="cpu",
                      milestones=(0.5, 0.75), factors=(0.1, 0.01))
    model = tiny_model()
    train(model, tiny_data(int(sys.argv[3]), 1), tiny_data(200, 2), cfg, out_dir=out, progress=False)
    rank = int(os.environ.get("RANK", 0))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/final-rank{rank}.safetensors")
    save_file({"draw": torch.rand(8)}, f"{out}/draw-rank{rank}.safetensors")  # where this rank's RNG stands
    """
)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny convolutions run slower with more threads on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_script(tmp_path):
    path = tmp_path / "train_tiny.py"
    path.write_text(SCRIPT)
    return path


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_schedule_drops_at_the_papers_epochs():
    cfg = TrainConfig()  # 200 epochs, drops after 80, 120, 160, 180
    factors = {e: lr_factor(e / cfg.epochs, cfg) for e in (0, 79, 80, 119, 120, 160, 179, 180, 199)}
    assert factors == {0: 1.0, 79: 1.0, 80: 0.1, 119: 0.1, 120: 0.01, 160: 0.001, 179: 0.001, 180: 0.0005, 199: 0.0005}


def test_schedule_scales_to_a_short_run_and_is_applied(tmp_path):
    cfg = TrainConfig(epochs=5, batch_size=50, lr=0.1, milestones=(0.4, 0.8), factors=(0.1, 0.01), device="cpu", seed=0)
    log = train(tiny_model(), tiny_data(200, 1), None, cfg, out_dir=tmp_path, progress=False)
    # the logged rate is the one of each epoch's last step
    assert [r["lr"] for r in log] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_tiny_training_learns_and_writes_its_log(tmp_path):
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.05, device="cpu", milestones=(0.75,), factors=(0.1,))
    val = tiny_data(300, 2)
    log = train(tiny_model(), tiny_data(1500, 1), val, cfg, out_dir=tmp_path, progress=True, boundary_val_ds=val)
    assert log[-1]["loss"] < log[0]["loss"]
    assert log[-1]["val_acc"] > 0.8
    assert log[-1]["val_boundary_acc"] == log[-1]["val_acc"]
    saved = read_log(tmp_path / "log.jsonl")
    assert saved == json.loads(json.dumps(log))
    assert set(saved[0]) >= {"epoch", "lr", "loss", "acc", "val_acc", "val_boundary_acc", "seconds", "samples_seen"}
    assert [r["samples_seen"] for r in saved] == [1500 * (i + 1) for i in range(4)]


def test_resume_after_sigkill_reaches_the_uninterrupted_weights(tmp_path):
    script, epochs, n = _write_script(tmp_path), "6", "3000"
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run([sys.executable, script, whole, epochs, n], env=_env(), check=True, timeout=120)

    proc = subprocess.Popen([sys.executable, script, broken, epochs, n], env=_env())
    log = broken / "log.jsonl"
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    done = read_log(log)
    assert 2 <= len(done) < int(epochs), "the kill must land mid-run"
    assert not (broken / "final-rank0.safetensors").exists()

    subprocess.run([sys.executable, script, broken, epochs, n], env=_env(), check=True, timeout=120)
    a, b = load_file(whole / "final-rank0.safetensors"), load_file(broken / "final-rank0.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert read_log(broken / "log.jsonl")[-1]["samples_seen"] == read_log(whole / "log.jsonl")[-1]["samples_seen"]


def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    script, out = _write_script(tmp_path), tmp_path / "ddp"
    subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", str(script), str(out), "2", "800"],
        env=_env(),
        check=True,
        timeout=120,
    )
    a, b = load_file(out / "final-rank0.safetensors"), load_file(out / "final-rank1.safetensors")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = read_log(out / "log.jsonl")  # written by rank 0 only, counting both ranks' samples
    assert [r["samples_seen"] for r in log] == [800, 1600]
    # each rank seeds with seed + rank, so their dropout and augmentation draws differ ...
    draws = [load_file(out / f"draw-rank{r}.safetensors")["draw"] for r in (0, 1)]
    assert not torch.equal(*draws)
    # ... and the checkpoint keeps both ranks' generator states to resume them
    ranks = torch.load(out / "checkpoint.pt", weights_only=True)["rng_ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])


def test_time_budget_stops_after_a_whole_epoch(tmp_path):
    cfg = TrainConfig(epochs=50, batch_size=50, lr=0.05, device="cpu")
    log = train(tiny_model(), tiny_data(200, 1), None, cfg, out_dir=tmp_path, progress=False, time_budget=1e-3)
    assert len(log) == 1
    assert read_log(tmp_path / "log.jsonl") == json.loads(json.dumps(log))


def test_region_data_need_the_region_config(tmp_path):
    regions = TensorDataset(torch.zeros(8, 2, 20, 20, dtype=torch.uint8), torch.zeros(8, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="TrainConfig.region is None but the data are regions"):
        train(
            tiny_model(),
            regions,
            None,
            TrainConfig(epochs=1, batch_size=4, device="cpu"),
            out_dir=tmp_path,
            progress=False,
        )


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="optimizer"):
        train(tiny_model(), tiny_data(10, 1), None, TrainConfig(optimizer="adam", device="cpu"), out_dir=tmp_path)


def test_train_profile_saves_weights_with_their_story(tmp_path):
    from bamf_lib.nets.recipe import train_profile
    from bamf_lib.nets.weightfile import load_weights

    tiny = {"train.epochs": 1, "train.max_samples": 256, "extra.val_samples": "128", "model.depth": 8}
    path = train_profile("quick", net="boundary", out_dir=tmp_path, device="cpu", progress=False, overrides=tiny)
    assert path == tmp_path / "quick-boundary.safetensors"
    meta = load_weights(path).metadata
    assert meta["profile"] == "quick" and meta["net"] == "boundary" and meta["samples_seen"] == 256
    assert 0.0 <= meta["val_acc"] <= 1.0 and meta["val_boundary_acc"] == meta["val_acc"]
    assert "--set train.epochs=1" in meta["command"] and "depth 8" in meta["architecture"]
    assert len(read_log(tmp_path / "quick-boundary.log.jsonl")) == 1
    with pytest.raises(ValueError, match="override"):
        train_profile("quick", out_dir=tmp_path, overrides={"train.nope": 1})


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=50, lr=0.05, device="cpu")
    train(tiny_model(), tiny_data(100, 1), None, cfg, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="another TrainConfig"):
        train(
            tiny_model(),
            tiny_data(100, 1),
            None,
            TrainConfig(epochs=2, batch_size=50, lr=0.05, device="cpu"),
            out_dir=tmp_path,
            progress=False,
        )
    log = train(
        tiny_model(),
        tiny_data(100, 1),
        None,
        TrainConfig(epochs=2, batch_size=50, lr=0.05, device="cpu"),
        out_dir=tmp_path,
        progress=False,
        resume=False,
    )
    assert len(log) == 2


def test_region_augmentation_keeps_each_label_with_its_patch():
    """Label = "channel 0's patch is brighter than channel 1's": invariant under rotation and
    flip, flipped by a channel swap.  After augmenting, recomputing it from the augmented
    regions must give the augmented label map exactly, whatever transform was drawn."""
    from bamf_lib.data.synthesis import IGNORE
    from bamf_lib.nets.training import _augment_regions

    p, r = 8, 20
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 2, r, r, generator=g)

    def labels(x):
        means = torch.nn.functional.avg_pool2d(x, p, stride=1)
        return (means[:, 0] > means[:, 1]).long()

    y = labels(x)
    y[0, :3, :5] = IGNORE  # ignored positions stay ignored
    changed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        xa, ya = _augment_regions(x, y)
        expected = labels(xa)
        keep = ya != IGNORE
        assert torch.equal(ya[keep], expected[keep])
        assert int((ya == IGNORE).sum()) == 15
        changed += not torch.equal(ya, y)
    assert changed >= 6  # the draws did rotate, flip and swap


def test_dense_training_on_regions(tmp_path):
    """The exact profile trains a padding-free stride-1 net on regions: every patch of a
    region is a labelled sample, and validation is per patch as for every other net."""
    from bamf_lib.nets.recipe import train_profile
    from bamf_lib.nets.weightfile import load_weights

    tiny = {
        "train.epochs": 1,
        "extra.val_samples": 64,
        "train.region": 40,
        "train.regions_per_pair": 1,
        "model.width": 4,
        "model.patch_size": 32,
        "synthesis.patch_size": 32,
        "synthesis.source": "embedded",
        "synthesis.n_foregrounds": 2,
        "synthesis.n_backgrounds": 2,
    }
    path = train_profile("exact", net="initial", out_dir=tmp_path, device="cpu", progress=False, overrides=tiny)
    model = load_weights(path)
    assert model.dense_capable and model.config.head == "centre"
    meta = model.metadata
    # each 40x40 region holds (40 - 32 + 1)^2 = 81 labelled patches
    assert meta["samples_seen"] == meta["train_samples"] * 81
    assert "regions" in meta["data"] and 0.0 <= meta["val_acc"] <= 1.0


# `bamf train` on a tiny quick profile: a few seconds of synthesis and three short epochs
TINY_TRAIN = [
    "--profile",
    "quick",
    "-q",
    "--device",
    "cpu",
    "--set",
    "train.epochs=3",
    "--set",
    "train.max_samples=256",
    "--set",
    "extra.val_samples=64",
    "--set",
    "model.depth=8",
    "--set",
    "model.width=4",
    "--set",
    "synthesis.n_foregrounds=2",
    "--set",
    "synthesis.n_backgrounds=2",
    "--set",
    "synthesis.pairs_per_image=2",
]


def _bamf_train(out, **popen):
    cmd = [sys.executable, "-m", "bamf_lib.cli", "train", "--out", str(out), *TINY_TRAIN]
    if popen:
        return subprocess.Popen(cmd, env=_env(), **popen)
    subprocess.run(cmd, env=_env(), check=True, timeout=300)
    return load_file(out / "quick-initial.safetensors")


@pytest.mark.slow
def test_bamf_train_is_reproducible_across_processes_and_a_sigkill(tmp_path):
    first, second = _bamf_train(tmp_path / "first"), _bamf_train(tmp_path / "second")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    losses = [[r["loss"] for r in read_log(tmp_path / run / "quick-initial.log.jsonl")] for run in ("first", "second")]
    assert losses[0] == losses[1]

    broken = tmp_path / "broken"
    proc = _bamf_train(broken, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = broken / "quick-initial" / "log.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and log.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert 1 <= len(read_log(log)) < 3, "the kill must land mid-run"
    assert not (broken / "quick-initial.safetensors").exists()
    resumed = _bamf_train(broken)
    for key in first:
        assert torch.equal(first[key], resumed[key]), key
