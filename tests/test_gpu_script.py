"""The prepared GPU training script runs end to end (here on the CPU, on a tiny dry-run set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bamf_lib.nets.weightfile import load_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.requires_data("alphamatting", "backgrounds")
@pytest.mark.parametrize("parallel", ["1", "0"])
def test_train_gpu_script_writes_both_nets(tmp_path, parallel):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "BAMF_TIME_BUDGET": "120",
        "PYTHON": sys.executable,
        "BAMF_PARALLEL": parallel,
        "OMP_NUM_THREADS": "1",
    }
    tiny = [
        "--device",
        "cpu",
        "--set",
        "train.epochs=1",
        "--set",
        "train.max_samples=4",
        "--set",
        "train.regions_per_pair=1",
        "--set",
        "synthesis.n_backgrounds=2",
        "--set",
        "extra.val_samples=50",
    ]
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "train_gpu.sh"), *tiny],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    for net in ("initial", "boundary"):
        model = load_weights(tmp_path / f"whole-{net}.safetensors")
        assert model.metadata["net"] == net and model.metadata["backgrounds"] == "mixed"
        assert model.config.padding == "valid"
    assert "done in" in (tmp_path / "train_gpu.log").read_text()
