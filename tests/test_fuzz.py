"""Fuzzing the input boundary with hypothesis: random bytes, odd but well-formed PNG/JPEG/TIFF
files (then cut short or with bytes flipped), and random arrays to ``read_image``,
``check_sources`` and ``fuse``.  Each must return a valid result or raise a one-line
``ValueError``; nothing else may escape.  Derandomized, so a run is repeatable; the example
counts (1400 in all) are bounded to keep the file to seconds on 2 cores."""

from __future__ import annotations

import io as _bytesio
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bamf_lib.fusion.pipeline import fuse
from bamf_lib.io import check_sources, read_image


def fuzz(kind: str) -> settings:
    return settings(max_examples=EXAMPLES[kind], deadline=None, derandomize=True, database=None)


EXAMPLES = {"bytes": 300, "png": 300, "pillow": 400, "arrays": 300, "fuse": 100}
_TMP = Path(tempfile.mkdtemp(prefix="bamf-fuzz-"))


def _read(data: bytes, suffix: str) -> None:
    path = _TMP / f"f{suffix}"
    path.write_bytes(data)
    try:
        image = read_image(path, max_pixels=4_000_000)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return
    assert image.dtype == np.uint8 and image.flags.c_contiguous
    assert image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    assert min(image.shape[:2]) >= 1


@fuzz("bytes")
@given(
    st.binary(max_size=2048),
    st.sampled_from([".png", ".jpg", ".tif", ".bmp", ".gif", ".bin"]),
    st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF89a"]),
)
def test_random_bytes(data, suffix, magic):
    _read(magic + data, suffix)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@fuzz("png")
@given(
    st.integers(0, 2**31 + 5),
    st.integers(0, 2**31 + 5),
    st.sampled_from([1, 2, 4, 8, 16, 3, 0]),
    st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    st.integers(0, 2),
    st.binary(max_size=512),
)
def test_png_headers_declaring_odd_sizes_and_modes(width, height, depth, colour, interlace, pixels):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    plte = _chunk(b"PLTE", bytes(range(48))) if colour == 3 else b""
    _read(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + plte
        + _chunk(b"IDAT", zlib.compress(pixels))
        + _chunk(b"IEND", b""),
        ".png",
    )


_MODES = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"],
}


@st.composite
def pillow_files(draw):
    """A real file from Pillow in an odd mode, size and EXIF orientation, maybe damaged."""
    fmt = draw(st.sampled_from(sorted(_MODES)))
    mode = draw(st.sampled_from(_MODES[fmt]))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = Image.frombytes(mode, (w, h), rng.bytes(len(Image.new(mode, (w, h)).tobytes())))
    exif = Image.Exif()
    exif[0x0112] = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 65535]))
    buffer = _bytesio.BytesIO()
    image.save(buffer, format=fmt, exif=exif.tobytes())
    data = bytearray(buffer.getvalue())
    damage = draw(st.sampled_from(["none", "cut", "flip"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data), {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif"}[fmt]


@fuzz("pillow")
@given(pillow_files())
def test_pillow_files_in_odd_modes_cut_short_or_flipped(file):
    _read(*file)


_DTYPES = [np.uint8, np.uint16, np.int8, np.float32, np.float64, np.bool_, np.int64]


@st.composite
def stacks(draw, max_side: int):
    """One to three arrays of random shapes and dtypes, often alike (so they pass the first checks)."""
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=0, max_size=4)))
    dtype = draw(st.sampled_from(_DTYPES))
    arrays = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=0, max_size=4)))
            dtype = draw(st.sampled_from(_DTYPES))
        seed = draw(st.integers(0, 2**16))
        arrays.append((np.random.default_rng(seed).random(shape) * 300).astype(dtype))
    return arrays


@fuzz("arrays")
@given(stacks(max_side=12), st.integers(1, 10))
def test_check_sources_on_random_arrays(arrays, min_size):
    try:
        checked = check_sources(arrays, min_size=min_size)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return
    assert len(checked) >= 2 and len({a.shape for a in checked}) == 1
    assert all(a.dtype == np.uint8 and min(a.shape[:2]) >= min_size for a in checked)


@pytest.fixture(scope="module")
def standin(stand_in):
    return {"initial": stand_in(8), "boundary": stand_in(8)}


@fuzz("fuse")
@given(stacks(max_side=24))
def test_fuse_on_random_arrays(standin, arrays):
    try:
        result = fuse(arrays, device="cpu", **standin)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return
    assert result.fused.shape == arrays[0].shape and result.fused.dtype == np.uint8
    assert result.decision_map.shape == arrays[0].shape[:2] and result.decision_map.max() < len(arrays)
