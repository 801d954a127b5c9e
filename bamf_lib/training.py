"""Paper section 3.2: train the initial and the boundary network on synthetic patches.

One readable loop in the manner of nanoGPT's ``train.py``: cross-entropy, SGD with
momentum, a step schedule that drops the learning rate at fixed fractions of the run,
validation after every epoch (overall and on boundary patches), an atomic checkpoint
after every epoch that holds everything needed to continue bit for bit (weights,
optimiser, torch/numpy/python RNG states, epoch, sampler seed), a JSON-lines log for
the book's curves, bf16 autocast + channels_last + ``torch.compile`` on CUDA only,
and DDP through torchrun's environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``; gloo on CPU, nccl on CUDA; only rank 0 writes).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import random
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from bamf_lib.config import TrainConfig, get_profile
from bamf_lib.io import atomic_write
from bamf_lib.synthesis import IGNORE
from bamf_lib.models import resolve_device

__all__ = ["lr_factor", "train", "train_profile", "evaluate", "read_log"]

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


def lr_factor(progress: float, cfg: TrainConfig) -> float:
    """Multiple of ``cfg.lr`` in force after ``progress`` (0..1) of the run.

    The paper drops the rate after epochs 80, 120, 160 and 180 of 200; ``cfg.milestones``
    holds those as fractions so any epoch count gets the same shape.

    >>> lr_factor(0.5, TrainConfig())
    0.1
    """
    if len(cfg.milestones) != len(cfg.factors):
        raise ValueError(f"TrainConfig.milestones {cfg.milestones} and factors {cfg.factors} differ in length")
    factor = 1.0
    for milestone, f in zip(cfg.milestones, cfg.factors):
        if progress >= milestone - 1e-9:
            factor = f
    return factor


def _dist_setup(device: torch.device) -> tuple[int, int]:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; return (rank, world)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _to_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def _batches(ds: Dataset, indices: list[int] | torch.Tensor, batch_size: int, num_workers: int = 0):
    """Yield (x, y) batches in the order of ``indices``.

    A ``TensorDataset`` is indexed a batch at a time (no per-item Python); any other
    dataset goes through a ``DataLoader``.
    """
    if isinstance(ds, TensorDataset):
        x_all, y_all = ds.tensors
        idx = torch.as_tensor(indices, dtype=torch.long).to(x_all.device)
        for start in range(0, len(idx), batch_size):
            b = idx[start : start + batch_size]
            yield x_all[b], y_all[b]
        return
    loader = DataLoader(ds, batch_size=batch_size, sampler=list(indices), num_workers=num_workers)
    yield from loader


def _augment_regions(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch set's augmentation, drawn per batch of regions: each region's channels
    swapped (labels flipped) with probability 1/2, then one of the 8 rotations/flips for
    the batch.  A patch's label stays with it: labels sit at patch top-left corners, and
    a rotation of the region maps the ``P x P`` patch at ``(y, x)`` onto the one whose
    top-left corner is where ``(y, x)`` lands, so the label map turns with the region."""
    swap = torch.rand(len(x), device=x.device) < 0.5
    x = torch.where(swap[:, None, None, None], x.flip(1), x)
    y = torch.where(swap[:, None, None] & (y != IGNORE), 1 - y, y)
    k, flip = int(torch.randint(4, ())), bool(torch.randint(2, ()))
    if flip:
        x, y = x.flip(-1), y.flip(-1)
    return torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))


@torch.no_grad()
def evaluate(model: nn.Module, ds: Dataset, *, batch_size: int = 512, device: str | torch.device = "cpu") -> float:
    """Fraction of ``ds`` that ``model`` labels correctly."""
    if ds is None or len(ds) == 0:
        return float("nan")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    correct = 0
    for x, y in _batches(ds, range(len(ds)), batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(_to_input(x, device))
        correct += int((logits.argmax(1) == y.to(device)).sum())
    model.train(was_training)
    return correct / len(ds)


def _rng_state() -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines training log (one dict per epoch)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def train(
    model: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset | None,
    cfg: TrainConfig,
    *,
    out_dir: str | os.PathLike,
    resume: bool = True,
    progress: bool = True,
    boundary_val_ds: Dataset | None = None,
    time_budget: float | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place with the paper's recipe; return one dict per epoch.

    Parameters
    ----------
    model : nn.Module
        Maps float32 (N, 2, P, P) in [0, 1] to logits (N, 2). Left on ``cfg.device``.
    train_ds, val_ds : Dataset
        Items are (x, label); x uint8 (scaled by 1/255 here) or float32 in [0, 1].
        A ``TensorDataset`` is batched by indexing, anything else by a DataLoader.
    cfg : TrainConfig
        Epochs, batch size, SGD settings, learning-rate milestones/factors, seed, device.
    out_dir : path
        Receives ``checkpoint.pt`` (each epoch, atomically) and ``log.jsonl`` (rank 0 only).
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` if it exists.
    boundary_val_ds : Dataset, optional
        Boundary patches; their accuracy is logged as ``val_boundary_acc``.
    time_budget : float, optional
        Seconds from now. After the first epoch the run is shortened (the schedule
        rescaled) to the epochs that fit; it always stops after a completed epoch.

    Returns
    -------
    list of dict
        epoch, lr, loss, acc, val_acc, val_boundary_acc, seconds, samples_seen.

    Example
    -------
    >>> log = train(model, train_ds, val_ds, TrainConfig(epochs=2), out_dir="runs/x")  # doctest: +SKIP
    """
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"TrainConfig needs epochs >= 1 and batch_size >= 1, got {cfg.epochs}, {cfg.batch_size}")
    if cfg.optimizer != "sgd":
        raise ValueError(f"TrainConfig.optimizer must be 'sgd' (the paper's), got {cfg.optimizer!r}")
    started = time.monotonic()
    device = resolve_device(cfg.device)
    rank, world = _dist_setup(device)
    out_dir = Path(out_dir)
    ckpt_path, log_path = out_dir / CHECKPOINT, out_dir / LOG

    _seed_everything(cfg.seed)
    raw = model.to(device)
    if device.type == "cuda":
        raw = raw.to(memory_format=torch.channels_last)
    # fused SGD saves kernel launches, which bound small-patch training on a GPU
    optimizer = torch.optim.SGD(raw.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, fused=device.type == "cuda" or None)
    start_epoch, samples_seen, epochs, log = 0, 0, cfg.epochs, []
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        if state["config"] != _config_key(cfg):
            raise ValueError(f"{ckpt_path} was written with another TrainConfig ({state['config']}); "
                             "start afresh (resume=False, CLI --no-resume) or use another out_dir")
        raw.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, samples_seen, epochs = state["epoch"], state["samples_seen"], state["epochs"]
        log = json.loads(state["log"])
        _set_rng_state(state["rng"])
    elif rank == 0 and log_path.exists():
        log_path.unlink()

    net: nn.Module = raw
    if world > 1:
        net = nn.parallel.DistributedDataParallel(raw, device_ids=[device.index] if device.type == "cuda" else None)
    if device.type == "cuda":
        net = torch.compile(net)
    # every rank sees a disjoint shard; the order depends only on (seed, epoch), so a
    # resumed run replays exactly the permutation it would have drawn
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    n_local = len(sampler)
    if cfg.max_samples is not None:
        n_local = min(n_local, cfg.max_samples // world)
    steps_per_epoch = max(1, math.ceil(n_local / cfg.batch_size))

    epoch = start_epoch
    while epoch < epochs:
        t0 = time.monotonic()
        sampler.set_epoch(epoch)
        indices = list(sampler)[:n_local]
        net.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        bar = None
        if progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        for step, (x, y) in enumerate(_batches(train_ds, indices, cfg.batch_size, cfg.num_workers)):
            lr = cfg.lr * lr_factor((epoch * steps_per_epoch + step) / (epochs * steps_per_epoch), cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = _to_input(x, device), y.to(device, non_blocking=True).long()
            if y.ndim == 3:  # regions with a label per patch (dense training)
                x, y = _augment_regions(x, y)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            labelled = y != IGNORE
            n_labelled = int(labelled.sum())
            loss_sum += loss.detach() * n_labelled
            correct += ((logits.detach().argmax(1) == y) & labelled).sum()
            seen += n_labelled
            if bar is not None and (step % 20 == 0 or step == steps_per_epoch - 1):
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.4f}", lr=f"{lr:.2g}")
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        totals = torch.tensor([loss_sum.item(), float(correct.item()), float(seen)], dtype=torch.float64, device=device)
        if world > 1:
            dist.all_reduce(totals)
            for buf in raw.buffers():  # BatchNorm statistics drift per rank; keep rank 0's
                dist.broadcast(buf, 0)
        samples_seen += int(totals[2])
        epoch += 1
        row = {
            "epoch": epoch,
            "lr": lr,
            "loss": float(totals[0] / totals[2]),
            "acc": float(totals[1] / totals[2]),
            "val_acc": evaluate(raw, val_ds, device=device) if val_ds is not None else None,
            "val_boundary_acc": evaluate(raw, boundary_val_ds, device=device) if boundary_val_ds is not None else None,
            "seconds": time.monotonic() - t0,
            "samples_seen": samples_seen,
        }
        log.append(row)
        if time_budget is not None and epoch < epochs:
            # the first epoch also pays for compilation, so it only decides whether to stop
            left = time_budget - (time.monotonic() - started)
            fit = epoch + max(0, int(left // (1.1 * row["seconds"])))
            if fit < epochs and (fit == epoch or epoch >= 2):
                epochs = fit  # shorten the run; the schedule rescales to it
            if world > 1:  # every rank must stop after the same epoch
                agreed = torch.tensor([epochs], device=device)
                dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
                epochs = int(agreed)
        if rank == 0:
            _save_checkpoint(ckpt_path, raw, optimizer, epoch, epochs, samples_seen, log, cfg)
            with open(log_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            if progress:
                vb = row["val_boundary_acc"]
                print(
                    f"epoch {epoch}/{epochs}: loss {row['loss']:.4f} acc {row['acc']:.4f} "
                    f"val_acc {row['val_acc'] if row['val_acc'] is None else round(row['val_acc'], 4)} "
                    f"val_boundary_acc {vb if vb is None else round(vb, 4)} ({row['seconds']:.1f} s)",
                    file=sys.stderr,
                )
        if world > 1:
            dist.barrier()
    return log


def _config_key(cfg: TrainConfig) -> str:
    """What must match for a checkpoint to be resumed (the device may change)."""
    return json.dumps({k: v for k, v in vars(cfg).items() if k not in ("device", "num_workers")}, sort_keys=True)


def _save_checkpoint(path, model, optimizer, epoch, epochs, samples_seen, log, cfg) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "epochs": epochs,
        "samples_seen": samples_seen,
        "log": json.dumps(log),
        "config": _config_key(cfg),
        "rng": _rng_state(),
    }
    with atomic_write(path, overwrite=True) as tmp:
        torch.save(state, tmp)


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
    overrides : dict, optional
        Dotted profile fields to replace, e.g. ``{"train.epochs": 1}`` (dry runs).

    Returns
    -------
    Path
        The saved ``.safetensors`` file.
    """
    from bamf_lib.models import build_model, save_weights
    from bamf_lib.synthesis import generate_patches

    if net not in ("initial", "boundary"):
        raise ValueError(f"net must be 'initial' or 'boundary', got {net!r}")
    started = time.monotonic()
    profile = _apply_overrides(get_profile(profile_name), overrides)
    cfg = replace(profile.train, device=device)
    syn = profile.synthesis
    boundary = net == "boundary"
    n_train = cfg.max_samples
    n_val = profile.extra.get("val_samples")
    if n_val is None and n_train is not None:
        n_val = max(1000, round(n_train * syn.val_fraction / (1 - syn.val_fraction)))

    def dataset(split: str, only_boundary: bool, n: int | None) -> TensorDataset:
        x, y = generate_patches(syn, split=split, boundary_only=only_boundary, n_samples=n, progress=progress)
        return TensorDataset(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64)))

    region = profile.extra.get("region")
    if region:  # dense training: regions with a label per patch; validation stays per patch
        from bamf_lib.synthesis import generate_regions

        xr, yr = generate_regions(syn, region=int(region), split="train", boundary_only=boundary,
                                  per_pair=int(profile.extra.get("regions_per_pair", 10)), progress=progress)
        train_ds = TensorDataset(torch.from_numpy(xr), torch.from_numpy(yr))
    else:
        train_ds = dataset("train", boundary, n_train)
    val_ds = dataset("val", boundary, n_val)
    boundary_val = val_ds if boundary else dataset("val", True, n_val)
    dev = resolve_device(device)
    if dev.type == "cuda":  # the whole uint8 set lives on the GPU: batches are one gather
        train_ds, val_ds, boundary_val = (TensorDataset(*(t.to(dev) for t in d.tensors))
                                          for d in (train_ds, val_ds, boundary_val))

    model = build_model(profile.model)
    name = f"{profile.name}-{net}"
    budget_left = None if time_budget is None else time_budget - (time.monotonic() - started)
    log = train(model, train_ds, val_ds, cfg, out_dir=Path(out_dir) / name, resume=resume, progress=progress,
                boundary_val_ds=boundary_val, time_budget=budget_left)

    out = Path(out_dir) / f"{name}.safetensors"
    if int(os.environ.get("RANK", 0)) == 0:
        command = "bamf train " + " ".join(
            [f"--profile {profile_name}", f"--net {net}"]
            + [f"--set {shlex.quote(f'{k}={v}')}" for k, v in (overrides or {}).items()]
            + ([f"--time-budget {time_budget:g}"] if time_budget is not None else [])
        )
        last = log[-1]
        metadata = {
            "profile": profile.name,
            "net": net,
            "architecture": f"ResNet {profile.model.version} depth {profile.model.depth} width "
            f"{profile.model.width}, {profile.model.patch_size}x{profile.model.patch_size} patches, 2 channels, "
            f"{profile.model.padding} padding, strides {profile.model.stem_stride}/{profile.model.stage_strides}, "
            f"{profile.model.head} head",
            "data": f"synthetic patches from {syn.source} (seed {syn.seed}); boundary_only={boundary}"
            + (f"; trained densely on {region}x{region} regions" if region else ""),
            "samples_seen": last["samples_seen"],
            "train_samples": len(train_ds),
            "val_samples": len(val_ds),
            "val_acc": last["val_acc"],
            "val_boundary_acc": last["val_boundary_acc"],
            "epochs": len(log),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(sum(r["seconds"] for r in log), 1),
            "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
            "command": command,
        }
        save_weights(model.cpu().to(memory_format=torch.contiguous_format), out, metadata)
        with atomic_write(Path(out_dir) / f"{name}.log.jsonl", overwrite=True) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in log))
    return out
