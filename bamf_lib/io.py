"""Reading and validating images, and writing files atomically.

Every public entry point that takes user images goes through :func:`read_image` and
:func:`check_sources`, so bad input fails early with a message that names the problem.
Every file the project writes goes through :func:`atomic_write`, so a crash never leaves
a half-written output and nothing overwrites an existing file unless asked.

Two guards against careless or hostile files:

* a **pixel budget** (:data:`MAX_PIXELS`, 100 MP per image by default): the size is read
  from the header, before anything is decoded, and a larger image is refused.  Pillow's
  own decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) is set to the budget only
  while a header is read, so it neither warns below the budget nor refuses an image the
  caller allowed; it is restored afterwards;
* **temporary files** are named ``.<name>.bamf-tmp-<pid>-<random><suffix>`` and created
  with the process's umask (as a plain ``open`` would); one left by a killed process is
  removed by the next :func:`atomic_write` into the same folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "MAX_PIXELS",
    "PixelBudgetError",
    "read_image",
    "write_image",
    "atomic_write",
    "check_sources",
    "rgb2gray",
    "to_float_gray",
]

# MATLAB rgb2gray weights (the fusion-metrics toolbox converts colour images with them)
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
_GRAY_BAND_PIXELS = 1 << 20  # rgb2gray converts this many pixels at a time

#: default pixel budget of :func:`read_image`: 100 megapixels per image (a 10000 x 10000
#: RGB image decodes to 300 MB, and fusion holds several float copies of its sources)
MAX_PIXELS = 100_000_000

# JPEG output: Pillow's default is quality 75 with 4:2:0 chroma subsampling, visibly
# softer than the sharp result fusion is for
_JPEG_OPTIONS = {"quality": 95, "subsampling": 0}
# PNG output: zlib level 3 instead of Pillow's 6 writes a fused image 3-4x faster (0.03 s instead
# of 0.12 s at 520 x 520, 1.9 s instead of 5.5 s at 24 MP) for 3-20 % larger files
_PNG_OPTIONS = {"compress_level": 3}

_TMP_TAG = ".bamf-tmp-"
# "-h<host>": a hash of the writer's host name; another machine's pid means nothing here (a shared
# filesystem under a Dask cluster), so only this host's temporaries are cleaned
_TMP_NAME = re.compile(r"^\..*\.bamf-tmp-(\d+)-[0-9a-f]{8}(?:-h([0-9a-f]{8}))?(\.[^.]*)?$")
_TMP_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_PILLOW_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is one global


class PixelBudgetError(ValueError):
    """An image has more pixels than the budget allows."""


@contextlib.contextmanager
def _pillow_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's bomb check at ``max_pixels`` (warning silenced: the caller refuses), restored after."""
    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _budget_error(path: Path, size: str, max_pixels: int) -> PixelBudgetError:
    return PixelBudgetError(
        f"{path} is {size}, over the pixel budget of {max_pixels:,} pixels; "
        f"downscale it, or raise the budget (CLI: --max-pixels) if you have the memory"
    )


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open ``path`` lazily (the header only) and refuse it beyond ``max_pixels``."""
    try:
        with _pillow_limit(max_pixels):
            im = Image.open(path)
    except Image.DecompressionBombError as exc:  # over twice the budget: Pillow refuses first
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _budget_error(path, f"{int(found.group(1)):,} pixels" if found else "over twice that",
                            max_pixels) from None
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise _budget_error(path, f"{width}x{height} ({width * height:,} pixels)", max_pixels)
    return im


def _decode(im: Image.Image) -> tuple[str, np.ndarray]:
    """Load, turn as the EXIF orientation says and convert to an array; returns (mode, array)."""
    im.load()
    try:
        orientation = im.getexif().get(ImageOps.ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block does not make the pixels unreadable
        orientation = 1
    if orientation in range(2, 9):
        im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode == "PA":
        mode, im = "RGBA", im.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA", "LA", "1", "F", "I", "I;16", "I;16B", "I;16L"):
        mode, im = "RGB", im.convert("RGB")
    return mode, np.asarray(im)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8, ``H x W`` (gray) or ``H x W x 3`` (RGB), as a photo
    viewer shows it.

    Conversions, all documented so the caller knows what it gets:
    the EXIF orientation tag is applied (a portrait phone photo comes out upright);
    16-bit images are scaled to 8 bits (``round(v / 257)``); an alpha channel is
    dropped when fully opaque and refused otherwise; palette and other modes are
    converted to RGB.

    Parameters
    ----------
    path : path-like
        The image file.
    max_pixels : int or None
        Pixel budget (default :data:`MAX_PIXELS`, 100 MP), checked from the header
        before anything is decoded; None for no budget of bamf's own (Pillow's
        ``Image.MAX_IMAGE_PIXELS`` still applies).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a folder, the file is not an image Pillow can decode, or has a
        transparent alpha channel; :class:`PixelBudgetError` (a ``ValueError``) if it
        has more than ``max_pixels`` pixels.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file; name the image files inside it")
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive number of pixels or None, got {max_pixels}")
    try:
        if max_pixels is None:
            im = Image.open(path)
        else:
            im = _open_checked(path, max_pixels)
        with im:
            mode, arr = _decode(im)
    except PixelBudgetError:
        raise
    except MemoryError:
        raise ValueError(f"{path}: not enough memory to decode it; lower --max-pixels or downscale it") from None
    except Exception as exc:  # Pillow's decoders raise many kinds on malformed files
        raise ValueError(f"cannot read {path} as an image ({type(exc).__name__}: {exc}); "
                         f"check that it is an intact PNG, JPEG, TIFF or BMP file") from None

    if mode in ("I;16", "I;16B", "I;16L", "I") or arr.dtype == np.uint16:
        arr = np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    elif mode == "F":
        raise ValueError(f"{path}: floating-point images are not supported; save it as 8- or 16-bit")
    elif mode == "1":
        arr = arr.astype(np.uint8) * 255
    elif mode in ("RGBA", "LA"):
        alpha = arr[..., -1]
        if alpha.min() < 255:
            raise ValueError(
                f"{path}: the image has a transparent alpha channel "
                f"(min alpha {int(alpha.min())}); flatten it onto a background first"
            )
        arr = arr[..., :-1]
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] != 3:
        raise ValueError(f"{path}: unsupported channel count {arr.shape[2]}")
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError(f"{path}: decodes to an empty or odd array of shape {arr.shape}")
    return arr


def _clean_stale_temporaries(folder: Path) -> None:
    """Remove temporary files that processes which no longer exist left in ``folder``."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or match.group(2) not in (None, _TMP_HOST):
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:  # its writer is gone: the file can never be completed
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        except (PermissionError, OverflowError, OSError):
            pass  # alive under another user, or not a pid this system can have


def _create_temporary(path: Path) -> Path:
    """A new empty file beside ``path``, mode ``0o666`` less the umask (as ``open`` makes)."""
    for _ in range(100):
        name = f".{path.name}{_TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}-h{_TMP_HOST}"
        tmp = path.parent / f"{name}{path.suffix or '.tmp'}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success.

    The file gets the permissions a plain ``open`` would give it (``0o666`` less the
    umask), or those of the file it replaces.  The temporary file is removed when the
    block raises (``KeyboardInterrupt`` and, under the ``bamf`` CLI, SIGTERM included);
    ones that killed processes left in the folder are removed first.

    Raises ``FileExistsError`` before anything is written if ``path`` exists and
    ``overwrite`` is false, and ``IsADirectoryError`` if it is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; name a file inside it")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_temporaries(path.parent)
    tmp_path = _create_temporary(path)
    try:
        yield tmp_path
        if path.exists():
            os.chmod(tmp_path, path.stat().st_mode & 0o7777)
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a uint8 gray or RGB image atomically; the format follows the suffix.

    JPEG is written at quality 95 without chroma subsampling (Pillow's default, 75 with
    4:2:0, visibly blurs the detail fusion keeps).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"write_image needs a uint8 H x W or H x W x 3 array, got {image.dtype} {image.shape}")
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from the suffix of {path}")
    options = {"JPEG": _JPEG_OPTIONS, "PNG": _PNG_OPTIONS}.get(fmt, {})
    with atomic_write(path, overwrite=overwrite) as tmp:
        Image.fromarray(image).save(tmp, format=fmt, **options)
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
    # in bands of rows: the float64 copy of a whole 24 MP image would take 576 MB
    out = np.empty(image.shape[:2], np.uint8)
    rows = max(1, _GRAY_BAND_PIXELS // max(1, image.shape[1]))
    for y in range(0, image.shape[0], rows):
        out[y : y + rows] = matlab_uint8(image[y : y + rows].astype(np.float64) @ _RGB2GRAY)
    return out


def to_float_gray(image: np.ndarray) -> np.ndarray:
    """Gray float32 image in [0, 1], the networks' input."""
    return rgb2gray(image).astype(np.float32) / 255.0
