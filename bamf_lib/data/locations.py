"""Where data lives: the one module that reads the data environment variables.

* ``BAMF_DATA_DIR``: a local folder laid out like the upstream data (``lytro/``, ``grayscale/``
  ...); when set it is the only source and nothing is downloaded;
* ``BAMF_CACHE_DIR``: where downloads (and cached ONNX graphs) go, default the OS cache folder
  ``bamf`` (``~/.cache/bamf`` on Linux);
* ``BAMF_REGISTRY``: another registry file in place of the packaged ``registry.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "cache_dir", "registry_override", "environment"]

_VARIABLES = ("BAMF_DATA_DIR", "BAMF_CACHE_DIR", "BAMF_REGISTRY")


def data_dir() -> Path | None:
    """``BAMF_DATA_DIR`` as a Path, or None when unset."""
    value = os.environ.get("BAMF_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """``BAMF_CACHE_DIR``, else the OS cache folder ``bamf`` (``~/.cache/bamf`` on Linux)."""
    import pooch

    return Path(os.environ.get("BAMF_CACHE_DIR") or pooch.os_cache("bamf")).expanduser()


def registry_override() -> Path | None:
    """``BAMF_REGISTRY`` as a Path, or None when unset (the packaged registry then applies)."""
    value = os.environ.get("BAMF_REGISTRY")
    return Path(value).expanduser() if value else None


def environment() -> tuple[str | None, ...]:
    """The raw values of the data variables: what decides where data comes from (a cache key)."""
    return tuple(os.environ.get(name) for name in _VARIABLES)
