"""The shipped (or a folder's) networks as torch modules, each file loaded once.

:func:`load_pretrained` is the loader for a named net (``initial`` or ``boundary``): it finds the
file (:func:`bamf_lib.runtime.locate.weights_path`), reads it with
:func:`bamf_lib.nets.weightfile.load_weights` and keeps it, so every later call hands out the same
network.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from bamf_lib.nets.weightfile import load_weights
from bamf_lib.runtime.locate import existing_weights

if TYPE_CHECKING:
    import torch

    from bamf_lib.nets.models import FocusResNet

__all__ = ["load_pretrained"]


def load_pretrained(
    net: str = "initial", weights: str | os.PathLike | None = None, *, device: str | torch.device = "cpu"
) -> FocusResNet:
    """The ``initial`` or ``boundary`` network, in eval mode: the shipped one, or the one in
    the folder ``weights`` (see :func:`bamf_lib.runtime.locate.weights_path`).

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
    path = existing_weights(net, weights)
    return _load_once(str(path.resolve()), path.stat().st_mtime_ns, str(device))


@functools.lru_cache(maxsize=8)
def _load_once(path: str, mtime_ns: int, device: str) -> FocusResNet:
    return load_weights(path, device)
