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
from dataclasses import asdict, fields
from pathlib import Path

from typing import TYPE_CHECKING

from bamf_lib.config import ModelConfig
from bamf_lib.io import atomic_write

if TYPE_CHECKING:  # torch is imported where a network is built: reading headers and paths needs none
    import torch

    from bamf_lib.nets.models import FocusResNet

__all__ = ["WEIGHTS_DIR", "save_weights", "load_weights", "read_header", "header_info", "weights_folder", "weights_path", "load_pretrained"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
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


# bounds a header must keep before anything is built from it: the paper's Res56 has
# 0.86 M parameters, the largest profile a few M; a hostile header asks for billions
_MAX_HEADER_BYTES = 16 * 2**20
_MAX_PARAMETERS = 100_000_000
_SANE = {"depth": 1000, "width": 4096, "patch_size": 4096, "in_channels": 16, "num_classes": 16}
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64"}


def read_header(path: str | os.PathLike) -> dict:
    """The JSON header of a safetensors file (tensor names, dtypes, shapes, offsets and
    ``"__metadata__"``), read without touching the tensors.

    Raises
    ------
    ValueError
        If the file is too short, or its header length or JSON is malformed.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(_MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{path} is not a safetensors file (header length {n} in a file of {size} bytes)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a safetensors file (its header is not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file (its header is not a JSON object)")
    return header


def _header_config(path: Path, header: dict) -> ModelConfig:
    """The ModelConfig a header names, refused when unknown keys, odd values or insane sizes."""
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or "config" not in meta:
        raise ValueError(f"{path} has no 'config' entry in its safetensors header; was it written by save_weights?")
    try:
        raw = json.loads(meta["config"])
        unknown = sorted(set(raw) - {f.name for f in fields(ModelConfig)})
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}")
        for key, bound in _SANE.items():
            if key in raw and not (isinstance(raw[key], int) and 1 <= raw[key] <= bound):
                raise ValueError(f"config {key}={raw[key]!r} is outside 1..{bound}")
        return ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: its header's network config is refused ({exc}); "
                         f"use weights written by save_weights / bamf train") from None


def header_info(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """The network config and metadata a weights file's header names, read without torch
    (what ONNX Runtime fusion needs: the patch size, whether the net is dense-capable, tuned FDB values).

    Raises
    ------
    ValueError
        If the file is not a safetensors file written by :func:`save_weights`.
    """
    path = Path(path)
    header = read_header(path)
    config = _header_config(path, header)
    try:
        metadata = json.loads(header["__metadata__"].get("metadata", "{}"))
    except (json.JSONDecodeError, TypeError, AttributeError):
        raise ValueError(f"{path}: the 'metadata' entry of its header is not JSON") from None
    return config, metadata if isinstance(metadata, dict) else {}


def _check_tensors(path: Path, header: dict, model: torch.nn.Module) -> None:
    """The header's tensors must be the model's: same names, dtypes and shapes, inside the file."""
    want = model.state_dict()
    have = {k: v for k, v in header.items() if k != "__metadata__"}
    problems = [f"missing {k}" for k in want if k not in have] + [f"unexpected {k}" for k in have if k not in want]
    size = path.stat().st_size
    for name in set(want) & set(have):
        info = have[name]
        shape = tuple(want[name].shape)
        if not isinstance(info, dict) or tuple(info.get("shape", ())) != shape:
            problems.append(f"{name} has shape {info.get('shape') if isinstance(info, dict) else info}, "
                            f"the config needs {list(shape)}")
        elif info.get("dtype") != (dtype := _DTYPES.get(str(want[name].dtype).removeprefix("torch."))):
            problems.append(f"{name} is {info.get('dtype')}, the network's is {dtype}")
        elif not (isinstance(offsets := info.get("data_offsets"), list) and len(offsets) == 2
                  and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1] <= size):
            problems.append(f"{name} has data offsets {info.get('data_offsets')} beyond the file's {size} bytes")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"{path}: its tensors do not match its config: {'; '.join(sorted(problems)[:3])}{more}; "
                         f"the file is damaged or was not written by save_weights")


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> FocusResNet:
    """Load a network written by :func:`save_weights`; returns it in eval mode.

    The result carries ``.config`` (ModelConfig) and ``.metadata`` (dict).  Only
    safetensors files are accepted: a pickled checkpoint raises ``ValueError``.  The
    header is checked before any tensor is allocated: known config keys with sane sizes
    (under 100 M parameters), and tensors whose names, dtypes and shapes are the ones
    that config builds (on PyTorch's ``meta`` device, which allocates nothing).
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from bamf_lib.nets.models import build_model

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; name a .safetensors file")
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    header = read_header(path)
    cfg = _header_config(path, header)
    try:
        with torch.device("meta"):
            shell = build_model(cfg)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: its header's network config is refused ({exc})") from None
    n_parameters = sum(p.numel() for p in shell.parameters())
    if n_parameters > _MAX_PARAMETERS:
        raise ValueError(f"{path}: its config builds {n_parameters:,} parameters, over the {_MAX_PARAMETERS:,} "
                         f"any bamf network has; the header is damaged or hostile")
    _check_tensors(path, header, shell)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a safetensors file ({exc}); pickled checkpoints are not loaded") from None
    model = build_model(cfg)
    model.load_state_dict(state, strict=True)
    try:
        model.metadata = json.loads(header["__metadata__"].get("metadata", "{}"))
    except (json.JSONDecodeError, TypeError):
        raise ValueError(f"{path}: the 'metadata' entry of its header is not JSON") from None
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
