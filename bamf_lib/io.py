"""Reading and validating images, and writing files atomically.

Every public entry point that takes user images goes through :func:`read_image` and
:func:`check_sources`, so bad input fails early with a message that names the problem.
Every file the project writes goes through :func:`atomic_write`, so a crash never leaves
a half-written output and nothing overwrites an existing file unless asked.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "read_image",
    "write_image",
    "atomic_write",
    "check_sources",
    "rgb2gray",
    "to_float_gray",
]

# MATLAB rgb2gray weights (the fusion-metrics toolbox converts colour images with them)
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8, ``H x W`` (gray) or ``H x W x 3`` (RGB).

    Conversions, all documented so the caller knows what it gets:
    16-bit images are scaled to 8 bits (``round(v / 257)``); an alpha channel is
    dropped when fully opaque and refused otherwise; palette and other modes are
    converted to RGB (or gray when Pillow says the image is gray).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an image Pillow can decode, or has a transparent alpha channel.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read {path} as an image: {exc}") from None

    if mode in ("I;16", "I;16B", "I;16L", "I") or arr.dtype == np.uint16:
        arr = np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    elif mode == "F":
        raise ValueError(f"{path}: floating-point images are not supported; save it as 8- or 16-bit")
    elif mode == "1":
        arr = arr.astype(np.uint8) * 255
    elif mode in ("RGBA", "LA", "PA"):
        alpha = arr[..., -1]
        if alpha.min() < 255:
            raise ValueError(
                f"{path}: the image has a transparent alpha channel "
                f"(min alpha {int(alpha.min())}); flatten it onto a background first"
            )
        arr = arr[..., :-1]
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    elif mode not in ("L", "RGB"):
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] != 3:
        raise ValueError(f"{path}: unsupported channel count {arr.shape[2]}")
    return arr


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success.

    Raises ``FileExistsError`` before anything is written if ``path`` exists and
    ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a uint8 gray or RGB image atomically; the format follows the suffix."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"write_image needs a uint8 H x W or H x W x 3 array, got {image.dtype} {image.shape}")
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from the suffix of {path}")
    with atomic_write(path, overwrite=overwrite) as tmp:
        Image.fromarray(image).save(tmp, format=fmt)
    return path


def check_sources(sources: Sequence[np.ndarray], *, min_size: int = 1, names: Sequence[str] | None = None,
                  minimum: str = "the network's patch") -> list[np.ndarray]:
    """Validate a stack of source images; return them as a list of uint8 arrays.

    All must be uint8, all gray or all RGB, of one size, at least ``min_size`` pixels
    on each side (``minimum`` says why, in the error), and there must be at least two.
    """
    sources = [np.asarray(s) for s in sources]
    names = list(names) if names is not None else [f"source {i}" for i in range(len(sources))]
    if len(sources) < 2:
        raise ValueError(f"need at least two source images, got {len(sources)}")
    for s, n in zip(sources, names):
        if s.dtype != np.uint8:
            raise ValueError(f"{n} has dtype {s.dtype}; sources must be uint8")
        if not (s.ndim == 2 or (s.ndim == 3 and s.shape[2] == 3)):
            raise ValueError(f"{n} has shape {s.shape}; sources must be H x W (gray) or H x W x 3 (RGB)")
    shapes = {s.shape for s in sources}
    if len({s.ndim for s in sources}) > 1:
        raise ValueError(
            "sources mix gray and colour: "
            + ", ".join(f"{n} {s.shape}" for s, n in zip(sources, names))
        )
    if len(shapes) > 1:
        raise ValueError(
            "sources differ in size: " + ", ".join(f"{n} {s.shape}" for s, n in zip(sources, names))
        )
    h, w = sources[0].shape[:2]
    if min(h, w) < min_size:
        raise ValueError(f"sources are {h}x{w}, smaller than {minimum} ({min_size}x{min_size})")
    return sources


def matlab_round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, as MATLAB's ``round`` (numpy rounds half to even).

    Examples
    --------
    >>> matlab_round(np.array([-2.5, -0.5, 0.5, 1.5, 2.5])).tolist()
    [-3.0, -1.0, 1.0, 2.0, 3.0]
    """
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def matlab_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB ``uint8(x)``: round half away from zero, saturate to 0..255.

    Examples
    --------
    >>> matlab_uint8(np.array([-3.0, 0.5, 254.5, 300.0])).tolist()
    [0, 1, 255, 255]
    """
    return np.clip(matlab_round(x), 0, 255).astype(np.uint8)


def rgb2gray(image: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` on uint8: exact weights, round half away from zero.

    Gray images are returned unchanged.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgb2gray needs H x W or H x W x 3, got shape {image.shape}")
    y = image.astype(np.float64) @ _RGB2GRAY
    return matlab_uint8(y)


def to_float_gray(image: np.ndarray) -> np.ndarray:
    """Gray float32 image in [0, 1], the networks' input."""
    return rgb2gray(image).astype(np.float32) / 255.0
