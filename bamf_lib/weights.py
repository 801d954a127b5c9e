"""Weight files: safetensors with the network's config and metadata, where they are, and
the one loader everyone calls.

A file holds the network's state and, in its header, the
:class:`~bamf_lib.config.ModelConfig` (key ``"config"``) and free-form metadata as JSON
(key ``"metadata"``: profile, data, accuracy, the command that trained it, tuned FDB
values ...); nothing is ever unpickled.  The shipped nets live in the data folder
``bamf_lib/weights/`` next to this module (see its ``MODEL_CARD.md``).

:func:`load_pretrained` is the loader for a named net (``initial`` or ``boundary``), the
shipped one or one from a folder; it loads a file once per device and hands out the same
network afterwards.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from bamf_lib.config import ModelConfig
from bamf_lib.io import atomic_write
from bamf_lib.models import FocusResNet, build_model

__all__ = ["WEIGHTS_DIR", "save_weights", "load_weights", "weights_folder", "weights_path", "load_pretrained"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NETS = ("initial", "boundary")


def save_weights(model: FocusResNet, path: str | os.PathLike, metadata: dict | None = None, *, overwrite: bool = True) -> Path:
    """Write ``model``'s state as safetensors, atomically, with config and metadata JSON.

    Parameters
    ----------
    model : FocusResNet
        The network; its ``.config`` is stored under the header key ``"config"``.
    path : path-like
        Destination ``.safetensors`` file.
    metadata : dict, optional
        JSON-serialisable facts (profile, epochs, accuracy, data, seed ...), stored
        under the header key ``"metadata"``.
    overwrite : bool
        Replace an existing file (default True: checkpoints are rewritten each epoch).

    Returns
    -------
    Path
        ``path``.
    """
    from safetensors.torch import save_file

    if not hasattr(model, "config"):
        raise ValueError("model has no .config; build it with build_model(cfg)")
    metadata = dict(metadata or {})
    try:
        header = {"config": json.dumps(asdict(model.config)), "metadata": json.dumps(metadata)}
    except TypeError as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as tmp:
        save_file(state, str(tmp), metadata=header)
    return path


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> FocusResNet:
    """Load a network written by :func:`save_weights`; returns it in eval mode.

    The result carries ``.config`` (ModelConfig) and ``.metadata`` (dict).  Only
    safetensors files are accepted: a pickled checkpoint raises ``ValueError``.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a safetensors file ({exc}); pickled checkpoints are not loaded") from None
    if "config" not in header:
        raise ValueError(f"{path} has no 'config' entry in its safetensors header; was it written by save_weights?")
    cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(header["config"]).items()})
    model = build_model(cfg)
    model.load_state_dict(state, strict=True)
    model.metadata = json.loads(header.get("metadata", "{}"))
    return model.to(device).eval()


def weights_folder(name: str | os.PathLike) -> Path:
    """A folder of weights: ``name`` itself, or a set shipped under ``bamf_lib/weights``
    (``"padded"``: the earlier zero-padded ResNet-20 nets trained on a GPU).

    Examples
    --------
    >>> weights_folder("padded") == WEIGHTS_DIR / "padded"
    True
    """
    folder = Path(name)
    if not folder.is_dir() and (WEIGHTS_DIR / folder).is_dir() and not folder.is_absolute():
        return WEIGHTS_DIR / folder
    return folder


def weights_path(net: str = "initial", weights: str | os.PathLike | None = None) -> Path:
    """Where ``net``'s weights are: the folder ``weights`` (see :func:`weights_folder`; default
    the shipped ``bamf_lib/weights``) holding ``<net>.safetensors`` or, as ``bamf train``
    writes them, exactly one ``<profile>-<net>.safetensors``.

    Examples
    --------
    >>> weights_path("boundary") == WEIGHTS_DIR / "boundary.safetensors"
    True
    """
    if net not in NETS:
        raise ValueError(f"net must be 'initial' or 'boundary', got {net!r}")
    folder = weights_folder(weights) if weights else WEIGHTS_DIR
    path = folder / f"{net}.safetensors"
    if path.is_file() or folder == WEIGHTS_DIR:
        return path
    trained = sorted(folder.glob(f"*-{net}.safetensors"))
    if len(trained) > 1:
        raise ValueError(f"{folder} holds several {net} networks ({', '.join(p.name for p in trained)}); "
                         f"name one {net}.safetensors")
    return trained[0] if trained else path


def load_pretrained(net: str = "initial", weights: str | os.PathLike | None = None, *,
                    device: str | torch.device = "cpu") -> FocusResNet:
    """The ``initial`` or ``boundary`` network, in eval mode: the shipped one, or the one in
    the folder ``weights`` (see :func:`weights_path`).

    A file is read once per device (and again when it changes on disk); later calls return
    the same network, so deep-copy it before training it further.

    Raises
    ------
    FileNotFoundError
        If the weights are not there, with the command that trains them.

    Examples
    --------
    >>> load_pretrained("initial") is load_pretrained("initial")
    True
    """
    path = weights_path(net, weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {net} weights at {path}. Train them with "
            f"`bamf train --profile quick --net {net}` (or --profile cpu for better ones) "
            f"and copy the resulting .safetensors file to {path}"
        )
    return _load_once(str(path.resolve()), path.stat().st_mtime_ns, str(device))


@functools.lru_cache(maxsize=8)
def _load_once(path: str, mtime_ns: int, device: str) -> FocusResNet:
    return load_weights(path, device)
