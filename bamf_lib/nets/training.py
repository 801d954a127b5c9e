"""Paper section 3.2: train the initial and the boundary network on synthetic patches.

One readable loop in the manner of nanoGPT's ``train.py``, in named pieces: batches
(:func:`_batches`), a step (:func:`train_step`: cross-entropy, SGD with momentum), an
epoch (:func:`train_epoch`) under a step schedule that drops the learning rate at fixed
fractions of the run, validation after every epoch (:func:`evaluate`, overall and on
boundary patches), and an atomic checkpoint after every epoch that holds everything needed
to continue bit for bit (:mod:`bamf_lib.nets.checkpoint`), plus a JSON-lines log for the
book's curves.  bf16 autocast + channels_last + ``torch.compile`` on CUDA only; DDP
through torchrun's environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``; gloo
on CPU, nccl on CUDA; only rank 0 writes), each rank seeded with the run's seed plus its
rank.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from bamf_lib.config import TrainConfig
from bamf_lib.data.patches import IGNORE
from bamf_lib.nets.checkpoint import (
    load_checkpoint,
    read_log,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from bamf_lib.nets.device import resolve_device

__all__ = ["lr_factor", "train", "train_step", "train_epoch", "freeze_batchnorm", "evaluate", "read_log"]

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


def lr_factor(progress: float, cfg: TrainConfig) -> float:
    """Multiple of ``cfg.lr`` in force after ``progress`` (0..1) of the run.

    The paper drops the rate after epochs 80, 120, 160 and 180 of 200; ``cfg.milestones``
    holds those as fractions so any epoch count gets the same shape.

    Examples
    --------
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


@dataclass
class _Run:
    """What a training run carries from epoch to epoch."""

    model: nn.Module  # the caller's model, on the device
    net: nn.Module  # what the steps call: the model, wrapped in DDP and compiled where used
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    device: torch.device
    rank: int = 0
    world: int = 1
    epoch: int = 0  # epochs completed
    epochs: int = 0  # planned (a time budget may shorten it)
    samples_seen: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)


def _start(model: nn.Module, cfg: TrainConfig, ckpt_path: Path, log_path: Path, resume: bool) -> _Run:
    """Device, process group, seeds and optimiser; then the checkpoint's state if resuming."""
    device = resolve_device(cfg.device)
    rank, world = _dist_setup(device)
    seed_everything(cfg.seed + rank)  # each rank draws its own augmentations
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    # fused SGD saves kernel launches, which bound small-patch training on a GPU
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        fused=device.type == "cuda" or None,
    )
    run = _Run(model, model, optimizer, cfg, device, rank, world, epochs=cfg.epochs)
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, cfg, device, rank=rank, world=world)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        run.epoch, run.epochs, run.samples_seen, run.log = (
            state["epoch"],
            state["epochs"],
            state["samples_seen"],
            state["log"],
        )
        set_rng_state(state["rng"])
    elif rank == 0 and log_path.exists():
        log_path.unlink()
    if world > 1:
        run.net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if device.type == "cuda":
        run.net = torch.compile(run.net)
    return run


def train_step(
    run: _Run, x: torch.Tensor, y: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One SGD step at learning rate ``lr``; returns the loss, the logits and the labels
    they answer (regions are augmented here, so these may be turned or flipped).

    With ``TrainConfig.region`` the batch holds regions with a label per patch
    (:data:`~bamf_lib.data.synthesis.IGNORE` where none), augmented per batch
    (:func:`_augment_regions`); otherwise patches with one label each.
    """
    device = run.device
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    x, y = _to_input(x, device), y.to(device, non_blocking=True).long()
    if (y.ndim == 3) != (run.cfg.region is not None):
        raise ValueError(
            f"TrainConfig.region is {run.cfg.region} but the data are "
            f"{'regions' if y.ndim == 3 else 'patches'} (labels of shape {tuple(y.shape)})"
        )
    if run.cfg.region is not None:
        x, y = _augment_regions(x, y)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = run.net(x)
        loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss.detach(), logits.detach(), y


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: it normalises with (and no longer updates) its
    running statistics, while its scale and shift still learn (``TrainConfig.bn_freeze``)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def train_epoch(run: _Run, train_ds: Dataset, indices: list[int], steps: int, progress: bool) -> dict[str, float]:
    """One pass over this rank's ``indices``: ``loss``, ``acc`` and ``seen`` (labelled
    samples) over all ranks, and the last ``lr``."""
    cfg, device = run.cfg, run.device
    run.net.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, lr = 0, cfg.lr
    bar = None
    if progress and run.rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"epoch {run.epoch + 1}/{run.epochs}", leave=False)
    for step, (x, y) in enumerate(_batches(train_ds, indices, cfg.batch_size, cfg.num_workers)):
        progress_now = (run.epoch * steps + step) / (run.epochs * steps)
        lr = cfg.lr * lr_factor(progress_now, cfg)
        if cfg.bn_freeze is not None and progress_now >= cfg.bn_freeze:
            freeze_batchnorm(run.model)
        loss, logits, y = train_step(run, x, y, lr)
        labelled = y != IGNORE
        n_labelled = int(labelled.sum())
        loss_sum += loss * n_labelled
        correct += ((logits.argmax(1) == y) & labelled).sum()
        seen += n_labelled
        if bar is not None:
            if step % 20 == 0 or step == steps - 1:
                bar.set_postfix(
                    loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.4f}", lr=f"{lr:.2g}"
                )
            bar.update(1)
    if bar is not None:
        bar.close()
    totals = torch.tensor([loss_sum.item(), float(correct.item()), float(seen)], dtype=torch.float64, device=device)
    if run.world > 1:
        dist.all_reduce(totals)
        for buf in run.model.buffers():  # BatchNorm statistics drift per rank; keep rank 0's
            dist.broadcast(buf, 0)
    return {"lr": lr, "loss": float(totals[0] / totals[2]), "acc": float(totals[1] / totals[2]), "seen": int(totals[2])}


def _fit_budget(run: _Run, time_budget: float | None, started: float, epoch_seconds: float) -> None:
    """Shorten ``run.epochs`` to what fits in ``time_budget`` (the schedule rescales to it);
    every rank agrees on the shortest."""
    if time_budget is None or run.epoch >= run.epochs:
        return
    # the first epoch also pays for compilation, so it only decides whether to stop
    left = time_budget - (time.monotonic() - started)
    fit = run.epoch + max(0, int(left // (1.1 * epoch_seconds)))
    if fit < run.epochs and (fit == run.epoch or run.epoch >= 2):
        run.epochs = fit
    if run.world > 1:  # every rank must stop after the same epoch
        agreed = torch.tensor([run.epochs], device=run.device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        run.epochs = int(agreed)


def _checkpoint(run: _Run, ckpt_path: Path, log_path: Path, row: dict[str, Any], progress: bool) -> None:
    """After every epoch: rank 0 writes the checkpoint (with every rank's RNG state) and
    the log line."""
    rngs = [rng_state()]
    if run.world > 1:
        rngs = [None] * run.world
        dist.all_gather_object(rngs, rng_state())
    if run.rank != 0:
        return
    save_checkpoint(
        ckpt_path,
        run.model,
        run.optimizer,
        epoch=run.epoch,
        epochs=run.epochs,
        samples_seen=run.samples_seen,
        log=run.log,
        cfg=run.cfg,
        rng_ranks=rngs,
    )
    with open(log_path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    if progress:
        vb = row["val_boundary_acc"]
        print(
            f"epoch {run.epoch}/{run.epochs}: loss {row['loss']:.4f} acc {row['acc']:.4f} "
            f"val_acc {row['val_acc'] if row['val_acc'] is None else round(row['val_acc'], 4)} "
            f"val_boundary_acc {vb if vb is None else round(vb, 4)} ({row['seconds']:.1f} s)",
            file=sys.stderr,
        )


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
    stop_after: float | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place with the paper's recipe; return one dict per epoch.

    Parameters
    ----------
    model : nn.Module
        Maps float32 (N, 2, P, P) in [0, 1] to logits (N, 2). Left on ``cfg.device``.
    train_ds, val_ds : Dataset
        Items are (x, label); x uint8 (scaled by 1/255 here) or float32 in [0, 1].
        A ``TensorDataset`` is batched by indexing, anything else by a DataLoader.  With
        ``cfg.region`` the training items are regions with a label map (dense training).
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
    stop_after : float, optional
        Seconds from now for a *campaign*: the run stops after the last whole epoch that
        fits, but keeps its planned epochs and learning-rate schedule, so a later run
        resumes the same schedule from the checkpoint.
    run_id : str, optional
        Stamped on this run's log rows (``"run"``), so a campaign's log tells its runs apart.

    Returns
    -------
    list of dict
        epoch, lr, loss, acc, val_acc, val_boundary_acc, seconds, samples_seen.

    Examples
    --------
    >>> import tempfile
    >>> from torch.utils.data import TensorDataset
    >>> from bamf_lib.config import ModelConfig
    >>> from bamf_lib.nets.models import build_model
    >>> x = torch.randint(0, 256, (64, 2, 16, 16), dtype=torch.uint8)
    >>> data = TensorDataset(x, torch.randint(0, 2, (64,)))
    >>> net = build_model(ModelConfig(version="v1", depth=8, width=4, patch_size=16))
    >>> cfg = TrainConfig(epochs=2, batch_size=32, device="cpu")
    >>> log = train(net, data, None, cfg, out_dir=tempfile.mkdtemp(), progress=False)
    >>> [row["samples_seen"] for row in log]
    [64, 128]
    """
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"TrainConfig needs epochs >= 1 and batch_size >= 1, got {cfg.epochs}, {cfg.batch_size}")
    if cfg.optimizer != "sgd":
        raise ValueError(f"TrainConfig.optimizer must be 'sgd' (the paper's), got {cfg.optimizer!r}")
    started = time.monotonic()
    out_dir = Path(out_dir)
    ckpt_path, log_path = out_dir / CHECKPOINT, out_dir / LOG
    run = _start(model, cfg, ckpt_path, log_path, resume)
    # every rank sees a disjoint shard; the order depends only on (seed, epoch), so a
    # resumed run replays exactly the permutation it would have drawn
    sampler = DistributedSampler(
        train_ds, num_replicas=run.world, rank=run.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    n_local = len(sampler) if cfg.max_samples is None else min(len(sampler), cfg.max_samples // run.world)
    steps = max(1, math.ceil(n_local / cfg.batch_size))

    while run.epoch < run.epochs:
        if (
            stop_after is not None
            and run.log
            and (time.monotonic() - started + 1.1 * run.log[-1]["seconds"] > stop_after)
        ):
            break  # the next epoch would not fit: stop, keeping the schedule for a resume
        t0 = time.monotonic()
        sampler.set_epoch(run.epoch)
        stats = train_epoch(run, train_ds, list(sampler)[:n_local], steps, progress)
        run.samples_seen += stats["seen"]
        run.epoch += 1
        row = {
            "epoch": run.epoch,
            "lr": stats["lr"],
            "loss": stats["loss"],
            "acc": stats["acc"],
            "val_acc": evaluate(run.model, val_ds, device=run.device) if val_ds is not None else None,
            "val_boundary_acc": (
                evaluate(run.model, boundary_val_ds, device=run.device) if boundary_val_ds is not None else None
            ),
            "seconds": time.monotonic() - t0,
            "samples_seen": run.samples_seen,
            "steps": steps,
        }
        if run_id is not None:
            row["run"] = run_id
        run.log.append(row)
        _fit_budget(run, time_budget, started, row["seconds"])
        _checkpoint(run, ckpt_path, log_path, row, progress)
        if run.world > 1:
            dist.barrier()
    return run.log
