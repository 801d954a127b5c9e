"""The one place a device name becomes a torch device.

``"auto"`` is CUDA when torch sees it, else the CPU; ``"cuda"`` without an index is this
process's GPU (torchrun's ``LOCAL_RANK``).  Whether to run on torch at all is decided before,
without torch, by :func:`bamf_lib.runtime.backend.choose_backend`.
"""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device to run on: ``"auto"`` is CUDA when present, else the CPU.

    ``"cuda"`` without an index is this process's GPU (torchrun's ``LOCAL_RANK``, else 0).
    Anything but ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, and CUDA on a machine
    without it, is a ``ValueError``.
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} was asked for, but torch sees no CUDA GPU here; use 'cpu' or 'auto'"
            )
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return dev
