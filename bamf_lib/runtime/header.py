"""Reading a weight file's header without torch: the network's config and metadata.

A weight file is safetensors: an 8-byte length, a JSON header, the tensors.  The header's
``"__metadata__"`` holds the :class:`~bamf_lib.config.ModelConfig` (key ``"config"``) and free-form
metadata (key ``"metadata"``: profile, data, the command that trained it, tuned FDB values ...),
both JSON; nothing is ever unpickled.  The torch-free runtime needs only this much (the patch
size, whether a net is dense-capable, its FDB values); :mod:`bamf_lib.nets.weightfile` writes the
files and loads their tensors, checking them against the header read here.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

from bamf_lib.config import ModelConfig

__all__ = ["read_header", "header_config", "header_info"]

# bounds a header must keep before anything is built from it: the paper's Res56 has
# 0.86 M parameters, the largest profile a few M; a hostile header asks for billions
_MAX_HEADER_BYTES = 16 * 2**20
_SANE = {"depth": 1000, "width": 4096, "patch_size": 4096, "in_channels": 16, "num_classes": 16}


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


def header_config(path: Path, header: dict) -> ModelConfig:
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
        raise ValueError(
            f"{path}: its header's network config is refused ({exc}); use weights written by save_weights / bamf train"
        ) from None


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
    config = header_config(path, header)
    try:
        metadata = json.loads(header["__metadata__"].get("metadata", "{}"))
    except (json.JSONDecodeError, TypeError, AttributeError):
        raise ValueError(f"{path}: the 'metadata' entry of its header is not JSON") from None
    return config, metadata if isinstance(metadata, dict) else {}
