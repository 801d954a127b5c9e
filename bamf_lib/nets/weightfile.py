"""Weight files with torch: writing a network as safetensors, and loading one back, checked.

A file holds the network's state and, in its header, the :class:`~bamf_lib.config.ModelConfig`
and free-form metadata as JSON (the header format, and its torch-free reader, are
:mod:`bamf_lib.runtime.header`); nothing is ever unpickled.  Loading checks the header's tensors
against the network its config builds before any tensor is allocated.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from bamf_lib.files import atomic_write
from bamf_lib.runtime.header import header_config, read_header

if TYPE_CHECKING:  # torch is imported where a network is built: reading headers and paths needs none
    import torch

    from bamf_lib.nets.models import FocusResNet

__all__ = ["save_weights", "load_weights"]

# a bamf network has well under this many parameters (the paper's Res56 0.86 M); a hostile header asks for billions
_MAX_PARAMETERS = 100_000_000
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64"}


def save_weights(
    model: FocusResNet, path: str | os.PathLike, metadata: dict | None = None, *, overwrite: bool = True
) -> Path:
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
            problems.append(
                f"{name} has shape {info.get('shape') if isinstance(info, dict) else info}, "
                f"the config needs {list(shape)}"
            )
        elif info.get("dtype") != (dtype := _DTYPES.get(str(want[name].dtype).removeprefix("torch."))):
            problems.append(f"{name} is {info.get('dtype')}, the network's is {dtype}")
        elif not (
            isinstance(offsets := info.get("data_offsets"), list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= size
        ):
            problems.append(f"{name} has data offsets {info.get('data_offsets')} beyond the file's {size} bytes")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(
            f"{path}: its tensors do not match its config: {'; '.join(sorted(problems)[:3])}{more}; "
            f"the file is damaged or was not written by save_weights"
        )


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
    cfg = header_config(path, header)
    try:
        with torch.device("meta"):
            shell = build_model(cfg)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: its header's network config is refused ({exc})") from None
    n_parameters = sum(p.numel() for p in shell.parameters())
    if n_parameters > _MAX_PARAMETERS:
        raise ValueError(
            f"{path}: its config builds {n_parameters:,} parameters, over the {_MAX_PARAMETERS:,} "
            f"any bamf network has; the header is damaged or hostile"
        )
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
