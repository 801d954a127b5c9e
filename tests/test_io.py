import numpy as np
import pytest
from PIL import Image

import bamf_lib.colour as colour
from bamf_lib.colour import rgb2gray, to_float_gray
from bamf_lib.files import atomic_write
from bamf_lib.io import check_sources, read_image, write_image


def test_eight_bit_gray_and_rgb_read_back_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    for shape in ((7, 9), (7, 9, 3)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        write_image(tmp_path / f"x{len(shape)}.png", img)
        out = read_image(tmp_path / f"x{len(shape)}.png")
        assert out.dtype == np.uint8 and np.array_equal(out, img)


def test_sixteen_bit_is_scaled_to_eight_with_rounding(tmp_path):
    v = np.array([[0, 128, 129, 257 * 200, 257 * 200 + 128, 65535]], np.uint16)
    Image.fromarray(v).save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.tolist() == [[0, 0, 1, 200, 200, 255]]


def test_opaque_alpha_is_dropped_and_transparent_refused(tmp_path):
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    Image.fromarray(np.dstack([rgb, np.full((4, 5), 255, np.uint8)])).save(tmp_path / "o.png")
    assert np.array_equal(read_image(tmp_path / "o.png"), rgb)
    gray = rgb[..., 0]
    Image.fromarray(np.dstack([gray, np.full((4, 5), 255, np.uint8)]), mode="LA").save(tmp_path / "la.png")
    assert np.array_equal(read_image(tmp_path / "la.png"), gray)
    Image.fromarray(np.dstack([rgb, np.full((4, 5), 254, np.uint8)])).save(tmp_path / "t.png")
    with pytest.raises(ValueError, match="transparent alpha"):
        read_image(tmp_path / "t.png")


def test_palette_and_bilevel_images_convert(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (255, 0, 0)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), rgb)
    Image.fromarray(np.eye(4, dtype=bool)).save(tmp_path / "b.png")
    assert read_image(tmp_path / "b.png").tolist() == (np.eye(4) * 255).astype(np.uint8).tolist()


def test_unreadable_inputs_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="cannot read"):
        read_image(tmp_path / "x.png")
    Image.fromarray(np.zeros((3, 3), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="floating-point"):
        read_image(tmp_path / "f.tif")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_refuses_overwrite_unless_asked(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="exists"):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"new")
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1
    with atomic_write(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_write_image_validates_its_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "x.png", np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "x.nope", np.zeros((3, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "sources, kwargs, match",
    [
        ([np.zeros((4, 4), np.uint8)], {}, "at least two"),
        ([np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint16)], {}, "dtype"),
        ([np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)], {}, "shape"),
        ([np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8)], {}, "mix gray and colour"),
        ([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)], {}, "differ in size"),
        ([np.zeros((4, 4), np.uint8)] * 2, {"min_size": 8}, "smaller than"),
    ],
)
def test_check_sources_errors(sources, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_sources(sources, **kwargs)


def test_check_sources_names_the_offender():
    with pytest.raises(ValueError, match="right.png"):
        check_sources([np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.int16)], names=["left.png", "right.png"])
    out = check_sources([np.zeros((4, 4), np.uint8)] * 3)
    assert len(out) == 3


def test_rgb2gray_matches_matlab_on_primaries_and_keeps_gray():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    assert rgb2gray(rgb).tolist() == [[76, 150, 29, 255]]  # MATLAB rgb2gray
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert rgb2gray(gray) is gray
    with pytest.raises(ValueError, match="shape"):
        rgb2gray(np.zeros((2, 2, 4), np.uint8))


def test_rgb2gray_rounds_half_away_from_zero(monkeypatch):
    monkeypatch.setattr(colour, "_RGB2GRAY", np.array([0.5, 0.0, 0.0]))
    rgb = np.zeros((1, 4, 3), np.uint8)
    rgb[0, :, 0] = [1, 3, 5, 7]  # 0.5, 1.5, 2.5, 3.5: numpy's round would give 0, 2, 2, 4
    assert rgb2gray(rgb).tolist() == [[1, 2, 3, 4]]


def test_to_float_gray_is_float32_in_unit_range():
    g = to_float_gray(np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8))
    assert g.dtype == np.float32 and g.tolist() == [[1.0, 0.0]]
