"""Where weight files are: the sets shipped in ``bamf_lib/weights/`` and folders ``bamf train`` wrote.

The shipped default nets are ``bamf_lib/weights/{initial,boundary}.safetensors`` (see its
``MODEL_CARD.md``); the other shipped sets are subfolders named on the command line by their
name (``--weights exact``, ``--weights padded``).  A folder of one's own holds
``<net>.safetensors`` or, as ``bamf train`` writes them, one ``<profile>-<net>.safetensors``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["WEIGHTS_DIR", "NETS", "weights_folder", "weights_path", "existing_weights"]

#: the package's data folder of shipped weights (package data, not the repository)
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
NETS = ("initial", "boundary")


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
        raise ValueError(
            f"{folder} holds several {net} networks ({', '.join(p.name for p in trained)}); name one {net}.safetensors"
        )
    return trained[0] if trained else path


def existing_weights(net: str = "initial", weights: str | os.PathLike | None = None) -> Path:
    """:func:`weights_path`, which must exist.

    Raises
    ------
    FileNotFoundError
        If the weights are not there, with the command that trains them.
    """
    path = weights_path(net, weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {net} weights at {path}. Train them with "
            f"`bamf train --profile quick --net {net}` (or --profile cpu for better ones) "
            f"and copy the resulting .safetensors file to {path}"
        )
    return path
