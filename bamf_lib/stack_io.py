"""Frames at full depth and the metadata photographers expect to keep.

:func:`bamf_lib.io.read_image` gives uint8 (the networks' input).  A focus-stacking tool must
also keep 16-bit TIFF and PNG at their depth and carry the reference frame's EXIF and ICC
profile to the output.  Pillow reads 16-bit RGB PNG and TIFF only as 8 bits, so 16-bit files
are decoded by OpenCV; metadata is read by Pillow.  16-bit outputs are encoded by OpenCV (PNG:
the ICC profile and EXIF go into ``iCCP`` and ``eXIf`` chunks) or tifffile (TIFF: ICC and EXIF
tags); 8-bit outputs by Pillow with ``exif=`` and ``icc_profile=``.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bamf_lib.io import MAX_PIXELS, atomic_write, read_image

__all__ = ["read_frame", "read_metadata", "write_frame", "LazyFrames", "depth_preview"]


def read_metadata(path: str | os.PathLike) -> dict:
    """``{"exif": bytes or None, "icc_profile": bytes or None}`` of an image file; the EXIF
    orientation is reset to 1, since the frames are read upright
    (:func:`bamf_lib.io.read_image`)."""
    with Image.open(path) as im:
        data = im.getexif()
        if len(data) and data.get(0x0112, 1) != 1:
            data[0x0112] = 1
        return {
            "exif": data.tobytes() if len(data) else None,
            "icc_profile": im.info.get("icc_profile"),
        }


def _is_16bit(path: Path) -> bool:
    if path.suffix.lower() not in (".png", ".tif", ".tiff"):
        return False
    with Image.open(path) as im:
        if im.mode.startswith("I;16") or im.mode == "I":
            return True
        if path.suffix.lower() == ".png":
            return im.info.get("bitdepth", 8) == 16 or _png_bit_depth(path) == 16
        return "16" in str(im.tag_v2.get(258, "")) if hasattr(im, "tag_v2") else False


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24] if len(head) >= 25 and head[12:16] == b"IHDR" else 8


def read_frame(path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """A frame at its depth: uint16 for 16-bit PNG/TIFF (``H x W`` or ``H x W x 3``, RGB),
    otherwise :func:`bamf_lib.io.read_image`'s uint8."""
    path = Path(path)
    if path.is_file() and _is_16bit(path):
        read_image(path, max_pixels=max_pixels)  # the same checks (budget, alpha, readable) first
        im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if im is not None and im.dtype == np.uint16:
            if im.ndim == 3 and im.shape[2] == 4:
                im = im[..., :3]
            if im.ndim == 3:
                im = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
            return np.ascontiguousarray(im)
    return read_image(path, max_pixels=max_pixels)


class LazyFrames(Sequence):
    """Frames read from files when indexed (:func:`read_frame`): a stack on disk fused in
    bounded memory."""

    def __init__(self, paths: Sequence, max_pixels: int | None = MAX_PIXELS):
        self.paths, self.max_pixels = list(paths), max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_frame(self.paths[i], max_pixels=self.max_pixels)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_with_metadata(png: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    """Insert ``iCCP`` and ``eXIf`` chunks after a PNG's IHDR."""
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    end_ihdr = 8 + 8 + 13 + 4
    return png[:end_ihdr] + extra + png[end_ihdr:]


def write_frame(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a uint8 or uint16 gray/RGB image atomically, with EXIF and ICC profile.

    A uint16 image keeps its depth in PNG and TIFF; another format (JPEG) gets its 8-bit copy.
    """
    image = np.asarray(image)
    path = Path(path)
    suffix = path.suffix.lower()
    if image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3):
        raise ValueError(
            "write_frame needs a uint8/uint16 H x W or H x W x 3 array, "
            f"got {image.dtype} {image.shape}"
        )
    if image.dtype == np.uint16 and suffix not in (".png", ".tif", ".tiff"):
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    with atomic_write(path, overwrite=overwrite) as tmp:
        if image.dtype == np.uint16 and suffix == ".png":
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
            ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
            if not ok:
                raise ValueError(f"cannot encode {path} as 16-bit PNG")
            Path(tmp).write_bytes(_png_with_metadata(buf.tobytes(), exif, icc_profile))
        elif image.dtype == np.uint16:
            import tifffile

            tags = [(34675, "B", len(icc_profile), icc_profile, True)] if icc_profile else []
            tifffile.imwrite(
                tmp,
                image,
                photometric="rgb" if image.ndim == 3 else "minisblack",
                extratags=tags,
                compression="zlib",
            )
        else:
            fmt = Image.registered_extensions().get(suffix)
            if fmt is None:
                raise ValueError(f"cannot tell the image format from the suffix of {path}")
            options = {"JPEG": {"quality": 95, "subsampling": 0}, "PNG": {"compress_level": 3}}.get(
                fmt, {}
            )
            if exif:
                options["exif"] = exif
            if icc_profile:
                options["icc_profile"] = icc_profile
            Image.fromarray(image).save(tmp, format=fmt, **options)
    return path


def depth_preview(index: np.ndarray, n_frames: int) -> np.ndarray:
    """A colour-coded RGB picture of a chosen-frame index map (turbo: first frame blue,
    last red)."""
    scale = 255.0 / max(1, n_frames - 1)
    gray = np.clip(np.round(np.asarray(index, np.float32) * scale), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
