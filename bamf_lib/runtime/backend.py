"""Which backend runs a network: ONNX Runtime where it computes the same scores, else PyTorch.

The shipped networks are padding-free and stride 1, so their whole-image score map is one ONNX
graph and ONNX Runtime computes it on the CPU without torch.  Torch is needed for a zero-padded
network (its whole-image pass is not the per-patch computation), for the paper's
patch-per-pixel reference path, and for a GPU.  :func:`choose_backend` is the one place that
decides, and the one place that looks for a GPU without importing torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bamf_lib.config import ModelConfig

__all__ = ["BACKENDS", "choose_backend", "gpu_present", "onnx_available"]

#: what runs the networks: ONNX Runtime (no torch), PyTorch, or the first that applies
BACKENDS = ("auto", "onnx", "torch")


def gpu_present() -> bool:
    """An NVIDIA driver is loaded (cheap, and torch-free: only torch can say whether CUDA works)."""
    return Path("/proc/driver/nvidia/version").exists()


def onnx_available() -> bool:
    """Whether ONNX Runtime is installed (``pip install bamf`` brings it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def _onnx_reason(config: ModelConfig, path: str, device: str) -> str | None:
    """Why ONNX Runtime cannot run this network here (None: it can)."""
    if not config.dense_capable:
        return "these networks are not padding-free and stride 1, so their whole-image pass needs torch"
    if path == "reference":
        return "the reference path (a patch per pixel) runs on torch"
    if str(device) not in ("cpu", "auto"):
        return f"device {device!r} runs on torch (ONNX Runtime runs here on the CPU)"
    if not onnx_available():
        return "onnxruntime is not installed"
    return None


def choose_backend(
    config: ModelConfig,
    *,
    backend: str = "auto",
    device: str = "auto",
    path: str = "fast",
    what: str = "these networks",
) -> tuple[str, str | None]:
    """The backend that runs a network of ``config``, and why ONNX Runtime does not (or None).

    Parameters
    ----------
    config : ModelConfig
        The network's configuration, from its weights' header.
    backend : {"auto", "onnx", "torch"}
        ``"auto"``: ONNX Runtime where it computes the same scores (a dense-capable net, a
        whole-image ``path``, the CPU: device ``"cpu"``, or ``"auto"`` without an NVIDIA driver),
        torch otherwise.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    path : str
        The scoring path that will be used (the reference path is torch's).
    what : str
        What to call the network in an error message (e.g. its weights file).

    Returns
    -------
    (str, str or None)
        ``"onnx"`` or ``"torch"``, and the reason ONNX Runtime was not chosen.

    Raises
    ------
    ValueError
        For an unknown ``backend``, or ``backend="onnx"`` where it cannot run the network.

    Examples
    --------
    >>> choose_backend(ModelConfig(), device="cpu")[0]  # a zero-padded ResNet-20
    'torch'
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch", "--backend torch was asked for"
    reason = _onnx_reason(config, path, device)
    if backend == "auto" and reason is None and device == "auto" and gpu_present():
        reason = "a GPU may be present"
    if reason is None:
        return "onnx", None
    if backend == "onnx":
        raise ValueError(f"backend 'onnx' cannot run {what}: {reason}")
    return "torch", reason
