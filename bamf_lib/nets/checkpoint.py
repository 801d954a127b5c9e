"""Training checkpoints: everything needed to continue a run bit for bit.

A checkpoint (``torch.save`` of plain tensors, ints and strings; loaded with
``weights_only=True``) holds the weights, the optimiser, the epoch reached and planned,
the samples seen, the log so far, the :class:`~bamf_lib.config.TrainConfig` it was written
with (:func:`config_key`) and the torch/numpy/python RNG states (``"rng"``: rank 0's;
``"rng_ranks"``: every rank's, in a DDP run).  It is written atomically after every epoch by
rank 0 only.  The finished network is saved separately, as safetensors
(:mod:`bamf_lib.nets.weightfile`).
"""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bamf_lib.config import TrainConfig
from bamf_lib.files import atomic_write

__all__ = [
    "config_key",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "save_checkpoint",
    "load_checkpoint",
    "read_log",
]

# TrainConfig fields a checkpoint may be resumed under with another value: where the run
# happens, and the shape of the data (which lives outside the checkpoint, like the data
# itself; keeping them out also resumes checkpoints written before these fields existed)
_NOT_KEYED = ("device", "num_workers", "region", "regions_per_pair")


# what save_checkpoint writes and load_checkpoint needs
_KEYS = ("model", "optimizer", "epoch", "epochs", "samples_seen", "log", "config", "rng")


def config_key(cfg: TrainConfig) -> str:
    """What must match for a checkpoint to be resumed (the device may change)."""
    return json.dumps({k: v for k, v in vars(cfg).items() if k not in _NOT_KEYED}, sort_keys=True)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """This process's torch, numpy, python (and CUDA) generator states, as checkpoint values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    epochs: int,
    samples_seen: int,
    log: list[dict],
    cfg: TrainConfig,
    rng_ranks: list[dict[str, Any]],
) -> None:
    """Write a checkpoint atomically; ``rng_ranks`` holds every rank's :func:`rng_state`."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "epochs": epochs,
        "samples_seen": samples_seen,
        "log": json.dumps(log),
        "config": config_key(cfg),
        "rng": rng_ranks[0],
    }
    if len(rng_ranks) > 1:
        state["rng_ranks"] = rng_ranks
    with atomic_write(Path(path), overwrite=True) as tmp:
        torch.save(state, tmp)


def load_checkpoint(
    path: str | os.PathLike, cfg: TrainConfig, device: torch.device, *, rank: int = 0, world: int = 1
) -> dict[str, Any]:
    """Read a checkpoint written under ``cfg``; ``"rng"`` becomes this rank's state.

    Raises ``ValueError`` when it was written with another :class:`TrainConfig`, or is not
    a checkpoint this module wrote (empty, truncated, pickled objects, keys missing); the
    message names the file and says how to start afresh.
    """
    afresh = "delete it, or start afresh with resume=False (CLI: bamf train --no-resume)"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # EOFError, zip errors, the weights-only unpickler's refusal ...
        # PyTorch's own hint (weights_only=False) would unpickle an untrusted file: not repeated
        if isinstance(exc, pickle.UnpicklingError):
            reason = "it holds pickled objects other than tensors and numbers, which are never loaded"
        else:
            reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "empty or cut short"
        raise ValueError(
            f"{path} is not a readable training checkpoint ({type(exc).__name__}: {reason}); {afresh}"
        ) from None
    missing = [k for k in _KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path} is not a bamf training checkpoint (no {', '.join(missing)}); {afresh}")
    if state["config"] != config_key(cfg):
        raise ValueError(
            f"{path} was written with another TrainConfig ({state['config']}); "
            "start afresh (resume=False, CLI --no-resume) or use another out_dir"
        )
    ranks = state.get("rng_ranks")
    if ranks is not None and len(ranks) == world:
        state["rng"] = ranks[rank]
    state["log"] = json.loads(state["log"])
    return state


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines training log (one dict per epoch)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
