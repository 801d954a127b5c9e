"""Labelled patch pairs as torch datasets: in memory (:class:`PatchDataset`) or as ``.npy`` shards.

:func:`write_shards` streams :func:`bamf_lib.synthesis.iter_patches` to disk shard by shard,
and :class:`ShardDataset` memory-maps them, so the paper's 2.27 M samples (18.6 GB at 64x64)
never need to fit in memory.  Re-exported by :mod:`bamf_lib.synthesis`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bamf_lib.config import SynthesisConfig
from bamf_lib.io import atomic_write

__all__ = ["PatchDataset", "write_shards", "ShardDataset"]


class PatchDataset(torch.utils.data.Dataset):
    """Torch view of ``(X uint8 (N, 2, P, P), y (N,))``: float32 patches in [0, 1], int64 labels.

    ``X`` may be a memory map; samples are converted on access.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        if X.ndim != 4 or X.shape[1] != 2:
            raise ValueError(f"X must have shape (N, 2, P, P), got {X.shape}")
        if len(y) != len(X):
            raise ValueError(f"y has {len(y)} labels for {len(X)} samples")
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(self.X[i])).float().div_(255.0)
        return x, torch.tensor(int(self.y[i]), dtype=torch.int64)

    def __getitems__(self, idx: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # one fancy-indexing read per batch instead of one per sample (DataLoader uses this)
        idx = np.asarray(idx)
        xs = torch.from_numpy(np.ascontiguousarray(self.X[idx])).float().div_(255.0)
        ys = torch.from_numpy(np.asarray(self.y[idx]).astype(np.int64))
        return list(zip(xs, ys))


def write_shards(
    cfg: SynthesisConfig,
    out_dir: str | Path,
    *,
    split: str = "train",
    boundary_only: bool = False,
    n_samples: int | None = None,
    shard_size: int = 65536,
    progress: bool = False,
) -> Path:
    """Stream the samples of :func:`~bamf_lib.synthesis.generate_patches` to ``.npy`` shards (no full copy in memory).

    Writes ``X_00000.npy``/``y_00000.npy``... and ``manifest.json`` (config, counts), each file
    atomically.  Samples stay in source-pair order (shuffle when loading); with ``n_samples``
    the stream stops there, so the last source pairs of the split may be cut short (in
    memory, :func:`~bamf_lib.synthesis.generate_patches` instead keeps a random subset).  Returns ``out_dir``.

    Example
    -------
    >>> import tempfile
    >>> d = write_shards(SynthesisConfig(n_foregrounds=2, n_backgrounds=2), tempfile.mkdtemp(), n_samples=100)
    >>> len(ShardDataset(d))
    100
    """
    from bamf_lib.synthesis import _plan, iter_patches  # synthesis imports this module

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_pair, _ = _plan(cfg, split, n_samples)
    budget = math.inf if n_samples is None else n_samples
    buf_x: list[np.ndarray] = []
    buf_y: list[np.ndarray] = []
    counts: list[int] = []

    def flush(final: bool) -> None:
        x = np.concatenate(buf_x) if buf_x else np.empty((0, 2, cfg.patch_size, cfg.patch_size), np.uint8)
        y = np.concatenate(buf_y) if buf_y else np.empty(0, np.uint8)
        while len(y) >= shard_size or (final and len(y)):
            k = len(counts)
            for name, arr in (("X", x[:shard_size]), ("y", y[:shard_size])):
                with atomic_write(out / f"{name}_{k:05d}.npy", overwrite=True) as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, arr)
            counts.append(len(y[:shard_size]))
            x, y = x[shard_size:], y[shard_size:]
        buf_x[:], buf_y[:] = [x], [y]

    total = 0
    for x, y in iter_patches(cfg, split=split, boundary_only=boundary_only, per_pair=per_pair, progress=progress):
        take = int(min(len(y), budget - total))
        buf_x.append(x[:take])
        buf_y.append(y[:take])
        total += take
        if sum(len(b) for b in buf_y) >= shard_size:
            flush(final=False)
        if total >= budget:
            break
    flush(final=True)
    manifest = {"config": asdict(cfg), "split": split, "boundary_only": boundary_only,
                "n_samples": total, "shards": counts}
    with atomic_write(out / "manifest.json", overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1))
    return out


class ShardDataset(PatchDataset):
    """The shards of :func:`write_shards` as one dataset, memory-mapped (never fully loaded)."""

    def __init__(self, directory: str | Path) -> None:
        d = Path(directory)
        if not (d / "manifest.json").exists():
            raise ValueError(f"directory {str(d)!r} has no manifest.json; write it with write_shards")
        self.manifest = json.loads((d / "manifest.json").read_text())
        k = len(self.manifest["shards"])
        self._x = [np.load(d / f"X_{i:05d}.npy", mmap_mode="r") for i in range(k)]
        self._y = [np.load(d / f"y_{i:05d}.npy") for i in range(k)]
        self._starts = np.cumsum([0] + [len(y) for y in self._y])
        self.y = np.concatenate(self._y) if self._y else np.empty(0, np.uint8)

    def _locate(self, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.asarray(i)
        if np.any(i < 0) or np.any(i >= len(self.y)):
            raise IndexError(f"index out of range for {len(self.y)} samples")
        s = np.searchsorted(self._starts, i, side="right") - 1
        return s, i - self._starts[s]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, j = self._locate(i)
        x = torch.from_numpy(np.array(self._x[int(s)][int(j)])).float().div_(255.0)
        return x, torch.tensor(int(self.y[i]), dtype=torch.int64)

    def __getitems__(self, idx: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self[int(i)] for i in idx]
