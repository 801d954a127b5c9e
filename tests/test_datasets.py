import shutil
from pathlib import Path

import numpy as np
import pytest

from bamf_lib.data import coco, datasets

DATA = datasets.data_dir()
needs_data = pytest.mark.requires_data


@needs_data
def test_every_file_in_the_data_dir_is_registered_and_verifies():
    files = sorted(
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.is_file() and p.name not in ("README.md", "UPSTREAM.tsv")
    )
    assert files, "BAMF_DATA_DIR holds no files"
    unregistered = [f for f in files if f not in datasets.registry()]
    assert not unregistered, f"files missing from registry.txt: {unregistered[:5]}"
    for name in files:
        assert datasets.path(name) == DATA / name  # raises on a hash mismatch


@needs_data
def test_every_registered_shared_file_is_present():
    missing = [n for n in datasets.registry() if not n.startswith("coco/") and not (DATA / n).is_file()]
    assert not missing


def _copy_to(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    target.parent.mkdir(parents=True)
    shutil.copyfile(DATA / name, target)
    return target


@needs_data
def test_a_tampered_copy_is_refused(tmp_path, monkeypatch):
    name = "classic/book1.bmp"
    target = _copy_to(tmp_path, name)
    monkeypatch.setenv("BAMF_DATA_DIR", str(tmp_path))
    assert datasets.path(name) == target  # the faithful copy passes
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(datasets.DataIntegrityError, match="registry expects"):
        datasets.path(name)


def test_a_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BAMF_DATA_DIR", str(tmp_path))
    with pytest.raises(datasets.DatasetNotFoundError, match="BAMF_DATA_DIR") as err:
        datasets.lytro_pair(1)
    assert "https://" in str(err.value)


def test_unknown_names_and_indices_are_refused():
    with pytest.raises(ValueError, match="not in the bamf data registry"):
        datasets.path("lytro/lytro-99-A.jpg")
    with pytest.raises(ValueError, match="n must be"):
        datasets.lytro_pair(21)
    with pytest.raises(ValueError, match="method must be"):
        datasets.published_fused("ours", "color", 1)


def test_every_registered_file_has_a_public_url():
    for name in datasets.registry():
        assert datasets.url(name).startswith(("https://", "http://")), name


def test_registry_hashes_are_sha256_or_tagged():
    for name, digest in datasets.registry().items():
        algo, _, hexdigest = digest.rpartition(":")
        assert algo in ("", "md5"), name
        assert len(hexdigest) == (64 if algo == "" else 32) and int(hexdigest, 16) >= 0, name


@needs_data
def test_named_helpers_return_the_registered_images():
    a, b = datasets.lytro_pair(5)
    assert a.shape == b.shape == (520, 520, 3) and a.dtype == np.uint8
    assert len(datasets.lytro_triple(2)) == 3
    g1, g2 = datasets.grayscale_pair("clock")
    assert g1.ndim == 2 and np.array_equal(g1, datasets.grayscale_pair(1)[0])
    image, alpha = datasets.alphamatting(3)
    assert image.shape[:2] == alpha.shape and alpha.ndim == 2
    fused = datasets.published_fused("cnn", "color", 1)
    assert fused.shape == (520, 520, 3)


def test_embedded_groups_are_disjoint_and_load_offline():
    groups = datasets.EMBEDDED_GROUPS
    names = [n for g in groups.values() for n in g]
    assert len(names) == len(set(names))
    for name, image in datasets.embedded_images("test_background"):
        assert image.dtype == np.uint8 and min(image.shape[:2]) >= 256, name
    with pytest.raises(ValueError, match="group"):
        datasets.embedded_images("lytro")


def test_no_coco_means_no_backgrounds(tmp_path, monkeypatch):
    monkeypatch.setenv("BAMF_DATA_DIR", str(tmp_path))
    assert coco.coco_backgrounds() == []


def test_coco_backgrounds_are_chosen_extracted_and_pinned(tmp_path, monkeypatch):
    import zipfile

    import cv2

    from bamf_lib.config import SynthesisConfig
    from bamf_lib.data import synthesis

    rng = np.random.default_rng(0)
    archive = tmp_path / "val2017.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for k in range(5):
            image = rng.integers(0, 256, (72, 96), dtype=np.uint8)
            if k % 2:  # partly defocused: the screen must reject it
                image[:, :48] = cv2.GaussianBlur(image, (0, 0), 4)[:, :48]
            zf.writestr(f"val2017/{k:012d}.jpg", cv2.imencode(".png", image)[1].tobytes())
    monkeypatch.delenv("BAMF_DATA_DIR", raising=False)
    monkeypatch.setenv("BAMF_CACHE_DIR", str(tmp_path / "cache"))
    assert coco.coco_backgrounds() == []
    monkeypatch.setattr(datasets, "path", lambda name: archive)
    out = coco.fetch_coco_backgrounds(3)
    assert [n for n, _ in coco.coco_backgrounds()] == ["000000000000", "000000000002", "000000000004"]
    names = [n for n, _ in synthesis.load_backgrounds(SynthesisConfig(seed=17))]
    assert names == [f"{n}-r0" for n in ("000000000000", "000000000002", "000000000004")]
    listed = out / "val2017" / "000000000002.jpg"
    listed.write_bytes(listed.read_bytes() + b"x")
    with pytest.raises(datasets.DataIntegrityError):
        coco.coco_backgrounds()


@pytest.mark.requires_data("stacks/fs_pcb")
def test_stack_frames_are_the_frames_in_order_without_the_upstream_result():
    frames = datasets.stack_frames("fs_pcb")
    assert [p.name for p in frames] == [f"{k:02d}.jpg" for k in range(7)] and all(p.is_file() for p in frames)
    with pytest.raises(ValueError, match="STACK_NAMES|must be one of"):
        datasets.stack_frames("nope")
    assert "stacks" in datasets.TEST_DATASETS
