"""The prepared GPU training script runs end to end (here on the CPU, on a tiny dry-run set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bamf_lib.nets.weightfile import load_weights

ROOT = Path(__file__).resolve().parents[1]


TINY = [
    "--device",
    "cpu",
    "--set",
    "train.max_samples=4",
    "--set",
    "train.regions_per_pair=1",
    "--set",
    "synthesis.n_backgrounds=2",
    "--set",
    "extra.val_samples=50",
]


def _run_script(out: Path, *args: str, **env: str) -> None:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "train_gpu.sh"), *TINY, *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


@pytest.mark.requires_data("alphamatting", "backgrounds")
@pytest.mark.parametrize("parallel", ["1", "0"])
def test_train_gpu_script_writes_both_nets(tmp_path, parallel):
    _run_script(
        tmp_path, "--set", "train.epochs=1", BAMF_PROFILE="whole", BAMF_TIME_BUDGET="120", BAMF_PARALLEL=parallel
    )
    for net in ("initial", "boundary"):
        model = load_weights(tmp_path / f"whole-{net}.safetensors")
        assert model.metadata["net"] == net and model.metadata["backgrounds"] == "mixed"
        assert model.config.padding == "valid"
    assert "done in" in (tmp_path / "train_gpu.log").read_text()


@pytest.mark.requires_data("alphamatting", "backgrounds")
def test_train_gpu_script_resumes_the_campaign_and_brings_back_a_resumable_checkpoint(tmp_path):
    # session 1 stops after its first epoch of two (a zero budget); its checkpoints are
    # "committed" into a campaign folder, from which session 2 goes on to the end
    first, campaign, second = tmp_path / "first", tmp_path / "campaign", tmp_path / "second"
    profile = "camera2"  # the script's default: the campaign in progress
    _run_script(first, "--set", "train.epochs=2", BAMF_TIME_BUDGET="0", BAMF_RESUME_FROM=str(campaign))
    for net in ("initial", "boundary"):
        assert load_weights(first / f"{profile}-{net}.safetensors").metadata["epochs"] == 1
        (campaign / f"{profile}-{net}").mkdir(parents=True)
        committed = (first / f"{profile}-{net}" / "checkpoint.pt").read_bytes()
        (campaign / f"{profile}-{net}" / "checkpoint.pt").write_bytes(committed)
    _run_script(second, "--set", "train.epochs=2", BAMF_TIME_BUDGET="600", BAMF_RESUME_FROM=str(campaign))
    for net in ("initial", "boundary"):
        meta = load_weights(second / f"{profile}-{net}.safetensors").metadata
        assert (meta["epochs"], meta["epochs_planned"], len(meta["runs"])) == (2, 2, 2), net
