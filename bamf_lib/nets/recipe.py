"""A profile's recipe end to end: synthesise its data, train one network, save its weights.

:func:`train_profile` (``bamf train``) builds the training and validation sets of a named
profile (:data:`bamf_lib.config.PROFILES`; patches, or regions for dense training with
``TrainConfig.region``), trains with :func:`bamf_lib.nets.training.train` and writes the
network as safetensors with the metadata the model card and the book quote.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import TensorDataset

from bamf_lib.config import get_profile
from bamf_lib.data.sources import load_backgrounds, load_foregrounds
from bamf_lib.data.synthesis import generate_patches, generate_regions
from bamf_lib.files import atomic_write
from bamf_lib.nets.checkpoint import load_checkpoint, seed_everything
from bamf_lib.nets.device import resolve_device
from bamf_lib.nets.models import build_model, receptive_field
from bamf_lib.nets.training import CHECKPOINT, train
from bamf_lib.nets.weightfile import save_weights

__all__ = ["train_profile"]


def _runs(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs a (campaign's) log was made in: each run's stamp, epochs and seconds, in order."""
    runs: list[dict[str, Any]] = []
    for row in log:
        stamp = row.get("run", "unstamped")
        if not runs or runs[-1]["run"] != stamp:
            runs.append({"run": stamp, "epochs": 0, "seconds": 0.0})
        runs[-1]["epochs"] += 1
        runs[-1]["seconds"] = round(runs[-1]["seconds"] + row["seconds"], 1)
    return runs


def _adopt_checkpoint(source: Path, target: Path, cfg) -> None:
    """Copy ``source`` to ``target`` for a resume, unless ``target`` has come as far already."""
    if not source.is_file():
        raise FileNotFoundError(f"--resume-from {source}: no such checkpoint file")
    theirs = load_checkpoint(source, cfg, torch.device("cpu"))  # refuses foreign or damaged files
    if target.exists() and load_checkpoint(target, cfg, torch.device("cpu"))["epoch"] >= theirs["epoch"]:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, overwrite=True) as tmp:
        tmp.write_bytes(source.read_bytes())


def _apply_overrides(profile, overrides: dict[str, Any] | None):
    """``{"train.epochs": 1, "synthesis.n_foregrounds": 2, "extra.val_samples": 500}``."""
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if isinstance(value, str):  # from the command line: numbers, null and lists as JSON
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
            value = tuple(value) if isinstance(value, list) else value
        if section == "extra":
            profile = replace(profile, extra={**profile.extra, name: value})
            continue
        if section not in ("model", "synthesis", "train") or not hasattr(getattr(profile, section), name):
            raise ValueError(f"override {key!r} names no profile field (use model./synthesis./train./extra.)")
        part = getattr(profile, section)
        profile = replace(profile, **{section: replace(part, **{name: value})})
    return profile


def train_profile(
    profile_name: str,
    *,
    net: str = "initial",
    out_dir: str | os.PathLike = "runs",
    resume: bool = True,
    device: str = "auto",
    progress: bool = True,
    time_budget: float | None = None,
    stop_after: float | None = None,
    resume_from: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Synthesise a profile's data, train one network on it and save its weights.

    Parameters
    ----------
    profile_name : str
        A key of ``bamf_lib.config.PROFILES`` (``quick``, ``cpu``, ``gpu``, ``paper``).
    net : {"initial", "boundary"}
        The boundary network trains on boundary patches only (``boundary_only=True``).
    out_dir : path
        Gets ``<profile>-<net>.safetensors``, ``<profile>-<net>.log.jsonl`` and a
        ``<profile>-<net>/`` folder with the checkpoint.
    resume, device, progress
        As in :func:`train`.
    time_budget : float, optional
        Seconds for synthesis and training together; training stops cleanly after the
        last epoch that fits and the weights are still saved.
    stop_after : float, optional
        Seconds for one run of a campaign (synthesis included): training stops after the
        last whole epoch that fits and keeps the planned schedule; the next run with the
        same command resumes it.  The weights saved are the network so far.
    resume_from : path, optional
        A checkpoint to continue (a campaign's committed one): copied into this run's
        checkpoint folder first, unless a checkpoint there is already as far or further.
    overrides : dict, optional
        Dotted profile fields to replace, e.g. ``{"train.epochs": 1}`` (dry runs).

    Returns
    -------
    Path
        The saved ``.safetensors`` file.
    """
    if net not in ("initial", "boundary"):
        raise ValueError(f"net must be 'initial' or 'boundary', got {net!r}")
    started = time.monotonic()
    profile = _apply_overrides(get_profile(profile_name), overrides)
    moved = {"region", "regions_per_pair"} & set(profile.extra)
    if moved:
        raise ValueError(
            f"profile {profile.name!r} sets extra {sorted(moved)}: dense training is now "
            f"TrainConfig.{sorted(moved)[0]} (train.{sorted(moved)[0]}=...)"
        )
    cfg = replace(profile.train, device=device)
    name = f"{profile.name}-{net}"
    checkpoint = Path(out_dir) / name / CHECKPOINT
    if resume_from is not None:
        _adopt_checkpoint(Path(resume_from), checkpoint, cfg)
    if resume and checkpoint.exists():  # a damaged or foreign checkpoint stops the run before synthesis
        load_checkpoint(checkpoint, cfg, torch.device("cpu"))
    syn = profile.synthesis
    boundary = net == "boundary"
    n_train = cfg.max_samples
    n_val = profile.extra.get("val_samples")
    if n_val is None and n_train is not None:
        n_val = max(1000, round(n_train * syn.val_fraction / (1 - syn.val_fraction)))

    def dataset(split: str, only_boundary: bool, n: int | None) -> TensorDataset:
        x, y = generate_patches(syn, split=split, boundary_only=only_boundary, n_samples=n, progress=progress)
        return TensorDataset(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64)))

    region = cfg.region
    if region is not None:  # dense training: regions with a label per patch; validation stays per patch
        xr, yr = generate_regions(
            syn, region=region, split="train", boundary_only=boundary, per_pair=cfg.regions_per_pair, progress=progress
        )
        train_ds = TensorDataset(torch.from_numpy(xr), torch.from_numpy(yr))
    else:
        train_ds = dataset("train", boundary, n_train)
    val_ds = dataset("val", boundary, n_val)
    boundary_val = val_ds if boundary else dataset("val", True, n_val)
    dev = resolve_device(device)
    if dev.type == "cuda":  # the whole uint8 set lives on the GPU: batches are one gather
        train_ds, val_ds, boundary_val = (
            TensorDataset(*(t.to(dev) for t in d.tensors)) for d in (train_ds, val_ds, boundary_val)
        )

    # the initial weights are the run's first draw: seeded here, two runs of one command
    # start alike in any process (train() reseeds for its own draws, per rank)
    seed_everything(cfg.seed)
    model = build_model(profile.model)
    budget_left = None if time_budget is None else time_budget - (time.monotonic() - started)
    stop_left = None if stop_after is None else stop_after - (time.monotonic() - started)
    run_id = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    log = train(
        model,
        train_ds,
        val_ds,
        cfg,
        out_dir=Path(out_dir) / name,
        resume=resume,
        progress=progress,
        boundary_val_ds=boundary_val,
        time_budget=budget_left,
        stop_after=stop_left,
        run_id=run_id,
    )

    out = Path(out_dir) / f"{name}.safetensors"
    if not dist.is_initialized() or dist.get_rank() == 0:  # train() joined torchrun's group, if any
        command = "bamf train " + " ".join(
            [f"--profile {profile_name}", f"--net {net}"]
            + [f"--set {shlex.quote(f'{k}={v}')}" for k, v in (overrides or {}).items()]
            + ([f"--time-budget {time_budget:g}"] if time_budget is not None else [])
            + ([f"--stop-after {stop_after:g}"] if stop_after is not None else [])
        )
        last = log[-1]
        metadata = {
            "profile": profile.name,
            "net": net,
            "architecture": f"ResNet {profile.model.version} depth {profile.model.depth} width "
            f"{profile.model.width}, {profile.model.patch_size}x{profile.model.patch_size} patches, 2 channels, "
            f"{profile.model.padding} padding, strides {profile.model.stem_stride}/{profile.model.stage_strides}, "
            f"{profile.model.head} head",
            "data": f"synthetic patches from {syn.source} foregrounds over {syn.backgrounds} backgrounds "
            f"(seed {syn.seed}); boundary_only={boundary}"
            + (f"; trained densely on {region}x{region} regions" if region else ""),
            "backgrounds": syn.backgrounds,
            "n_foregrounds": len(load_foregrounds(syn)),
            "n_backgrounds": len(load_backgrounds(syn)),
            "labels_per_region": (int(region) - profile.model.patch_size + 1) ** 2 if region else 1,
            "dilations": list(profile.model.stage_dilations),
            "receptive_field": receptive_field(profile.model),
            "samples_seen": last["samples_seen"],
            "train_samples": len(train_ds),
            "val_samples": len(val_ds),
            "val_acc": last["val_acc"],
            "val_boundary_acc": last["val_boundary_acc"],
            "epochs": len(log),
            "epochs_planned": cfg.epochs,
            "steps": sum(r.get("steps", 0) for r in log) or None,
            "runs": _runs(log),
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(sum(r["seconds"] for r in log), 1),
            "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
            "command": command,
        }
        save_weights(model.cpu().to(memory_format=torch.contiguous_format), out, metadata)
        with atomic_write(Path(out_dir) / f"{name}.log.jsonl", overwrite=True) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in log))
    return out
