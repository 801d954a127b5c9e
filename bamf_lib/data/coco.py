"""The paper's COCO 2017 training backgrounds "without obvious defocus", chosen by a rule.

The paper does not list its 700 images; :func:`fetch_coco_backgrounds` fixes them by a
sharpness screen of the 5,000 val2017 images and pins the result by hash, and
:func:`coco_backgrounds` reads them back.  Training backgrounds only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bamf_lib.data import datasets
from bamf_lib.data.locations import cache_dir, data_dir
from bamf_lib.data.registry import DatasetNotFoundError
from bamf_lib.io import read_image

__all__ = ["COCO_ZIP", "fetch_coco_backgrounds", "coco_backgrounds"]

COCO_ZIP = "coco/zips/val2017.zip"  # COCO publishes MD5 only for its archives


def _min_tile_sharpness(gray: np.ndarray, tiles: int = 3) -> float:
    """Mean |Laplacian| of the least sharp tile of a ``tiles x tiles`` grid: low when any part is blurred."""
    import cv2

    lap = np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F))
    h, w = lap.shape
    return float(
        min(
            lap[i * h // tiles : (i + 1) * h // tiles, j * w // tiles : (j + 1) * w // tiles].mean()
            for i in range(tiles)
            for j in range(tiles)
        )
    )


def fetch_coco_backgrounds(n: int = 700, *, progress: bool = False) -> Path:
    """Choose and extract the paper's 700 COCO 2017 backgrounds "without obvious defocus".

    The paper does not list its images.  Ours are fixed by a rule: of the 5,000 val2017
    images (``coco/zips/val2017.zip``, MD5-checked), the ``n`` whose least sharp third-by-third
    tile is sharpest, so no part of the picture is out of focus.  They are extracted to
    ``<cache>/coco/val2017/`` with ``backgrounds.txt`` (``name sha256``), which pins them from
    then on.  Needs internet (or ``BAMF_DATA_DIR/coco/zips/val2017.zip``); takes minutes.
    """
    import zipfile

    import cv2
    from tqdm.auto import tqdm

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = cache_dir() / "coco"
    with zipfile.ZipFile(datasets.path(COCO_ZIP)) as zf:
        members = sorted(m for m in zf.namelist() if m.endswith(".jpg"))
        scores = [
            _min_tile_sharpness(cv2.imdecode(np.frombuffer(zf.read(m), np.uint8), cv2.IMREAD_GRAYSCALE))
            for m in tqdm(members, desc="screening COCO", disable=not progress)
        ]
        keep = sorted(members[i] for i in np.argsort(scores, kind="stable")[::-1][:n])
        lines = []
        for m in keep:
            raw = zf.read(m)
            target = out / "val2017" / Path(m).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw)
            lines.append(f"val2017/{target.name} {hashlib.sha256(raw).hexdigest()}")
    (out / "backgrounds.txt").write_text("\n".join(lines) + "\n")
    return out


def coco_backgrounds() -> list[tuple[str, np.ndarray]]:
    """The chosen COCO 2017 backgrounds, if they are here; else an empty list.

    Reads ``coco/backgrounds.txt`` (``name sha256`` per line, written by
    :func:`fetch_coco_backgrounds`) from ``BAMF_DATA_DIR`` when set, else from the cache, and
    hash-checks every listed image.  Synthesis falls back to the embedded backgrounds when
    this is empty; it never downloads by itself.
    """
    root = data_dir()
    base = (root if root is not None else cache_dir()) / "coco"
    listing = base / "backgrounds.txt"
    if not listing.is_file():
        return []
    out = []
    for line in listing.read_text().split("\n"):
        if line.strip():
            name, digest = line.split()
            file = base / name
            if not file.is_file():
                raise DatasetNotFoundError(f"{file} is listed in {listing} but missing: run fetch_coco_backgrounds()")
            out.append((Path(name).stem, read_image(datasets.verify(file, digest))))
    return out
