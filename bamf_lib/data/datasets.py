"""The data registry: every dataset the project reads, with its public URL and SHA-256.

Files are looked up, in order, in

1. ``BAMF_DATA_DIR`` (laid out like ``../shared/data``: ``lytro/``, ``grayscale/``, ``classic/``,
   ``alphamatting/``, ``published/``, optionally ``coco/``).  When it is set it is the only
   source: nothing is downloaded;
2. otherwise the cache (``BAMF_CACHE_DIR`` or the OS cache, laid out alike), downloading on
   first use through :mod:`bamf_lib.data.download` (``bamf data fetch`` fills it at once).

Every file is checked against ``registry.txt`` (:mod:`bamf_lib.data.registry`) before it is returned; a file whose hash
differs is refused with :class:`DataIntegrityError`.  A missing dataset raises
:class:`DatasetNotFoundError` saying how to get it.

The embedded source (:func:`embedded_images`) needs no download: natural images that ship
inside scikit-image.  Lytro, the grayscale and the classic pairs are **test data**: the
synthesis code never reads them.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np

from bamf_lib.data.locations import data_dir  # public here: where the datasets are read from
from bamf_lib.data.registry import DataIntegrityError, DatasetNotFoundError, file_hash  # public here too
from bamf_lib.io import read_image

__all__ = [
    "DataIntegrityError",
    "DatasetNotFoundError",
    "registry",
    "url",
    "data_dir",
    "path",
    "verify",
    "file_hash",
    "lytro_pair",
    "lytro_triple",
    "stack_frames",
    "STACK_NAMES",
    "grayscale_pair",
    "alphamatting",
    "published_fused",
    "nyud_pair",
    "natural_backgrounds",
    "NYUD_INDICES",
    "embedded_images",
    "TEST_DATASETS",
    "LYTRO_INDICES",
    "GRAYSCALE_NAMES",
    "CLASSIC_NAMES",
    "ALPHAMATTING_INDICES",
    "PUBLISHED_METHODS",
]

REGISTRY_FILE = Path(__file__).with_name("registry.txt")
TEST_DATASETS = ("lytro", "grayscale", "classic", "nyud", "stacks")  # never read by training-data synthesis
LYTRO_INDICES = tuple(range(1, 21))
LYTRO_TRIPLE_INDICES = (1, 2, 3, 4)
#: the shared real focus stacks (``stacks/``: unregistered, frames in focus order; test data only)
STACK_NAMES = ("fs_pcb", "mcguinness_steps", "mfusionj_diatom", "peeters_dsc28")
GRAYSCALE_NAMES = (
    "clock",
    "pepsi",
    "lab",
    "desk",
    "calendar",
    "wine",
    "flowerpot-clock",
    "flower",
    "newspaper",
    "craft",
)
CLASSIC_NAMES = (
    "balloon",
    "book",
    "calendar",
    "clock",
    "corner",
    "craft",
    "desk",
    "flower",
    "girl",
    "grass",
    "lab",
    "leaf",
    "leopard",
    "newspaper",
    "pepsi",
    "seascape",
    "temple",
    "toy",
    "wine",
)
ALPHAMATTING_INDICES = tuple(range(1, 28))
NYUD_INDICES = tuple(range(51, 91))  # nyud/nyud-NN-{A,B,GT}.jpg: ground-truth test pairs
PUBLISHED_METHODS = ("nsct", "sr", "nsct-sr", "gff", "dsift", "cnn")


def registry() -> dict[str, str]:
    """``{relative path: hash}`` of the registry (bare hex = SHA-256, else ``"md5:<hex>"``); see :mod:`bamf_lib.data.registry`."""
    from bamf_lib.data.registry import entries

    return {name: e.hash for name, e in entries().items()}


def url(name: str) -> str:
    """Public, commit-pinned URL of a registered file (what :mod:`bamf_lib.data.download` fetches)."""
    from bamf_lib.data.registry import entries

    _check_registered(name)
    return entries()[name].url


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> hash already checked


def verify(file: str | os.PathLike, expected: str) -> Path:
    """Return ``file`` if its hash is ``expected``; raise :class:`DataIntegrityError` otherwise."""
    file = Path(file)
    st = file.stat()
    key = (str(file.resolve()), st.st_size, st.st_mtime_ns)
    if _VERIFIED.get(key) == expected:
        return file
    algorithm, _, digest = expected.rpartition(":")
    actual = file_hash(file, algorithm or "sha256")
    if actual != digest:
        raise DataIntegrityError(
            f"{file} has {algorithm or 'sha256'} {actual}, but the registry expects {digest}: the file is "
            "corrupt or was changed; delete it and fetch it again"
        )
    _VERIFIED[key] = expected
    return file


def _check_registered(name: str) -> None:
    if name not in registry():
        raise ValueError(f"{name!r} is not in the bamf data registry (bamf_lib/data/registry.txt)")


def _how_to_get(name: str) -> str:
    return (
        f"point BAMF_DATA_DIR at a folder laid out like ../shared/data (holding {name}), or unset "
        f"BAMF_DATA_DIR and run `bamf data fetch` with internet access (it downloads {url(name)})"
    )


def path(name: str) -> Path:
    """Local, hash-verified path of a registered file such as ``"lytro/lytro-01-A.jpg"``.

    Raises
    ------
    DatasetNotFoundError
        The file is neither in ``BAMF_DATA_DIR`` nor downloadable.
    DataIntegrityError
        The file's hash differs from the registry's.
    """
    _check_registered(name)
    expected = registry()[name]
    root = data_dir()
    if root is not None:
        file = root / name
        if not file.is_file():
            raise DatasetNotFoundError(f"{name} is not in BAMF_DATA_DIR={root}: {_how_to_get(name)}")
        return verify(file, expected)
    from bamf_lib.data.download import fetch

    try:
        return fetch(name)
    except DatasetNotFoundError as err:
        raise DatasetNotFoundError(f"{err}: {_how_to_get(name)}") from err


# --------------------------------------------------------------------------- named datasets


def _index(n: int, valid: tuple[int, ...], what: str) -> int:
    if int(n) not in valid:
        raise ValueError(f"{what} must be one of {valid[0]}..{valid[-1]}, got {n!r}")
    return int(n)


def lytro_pair(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lytro pair ``n`` (1-20) as RGB uint8 ``(A, B)``, 520x520.  Test data only."""
    n = _index(n, LYTRO_INDICES, "n")
    return tuple(read_image(path(f"lytro/lytro-{n:02d}-{s}.jpg")) for s in "AB")  # type: ignore[return-value]


def lytro_triple(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lytro triple series ``n`` (1-4): three RGB sources.  Test data only."""
    n = _index(n, LYTRO_TRIPLE_INDICES, "n")
    return tuple(read_image(path(f"lytro/triple/lytro-{n:02d}-{s}.jpg")) for s in "ABC")  # type: ignore[return-value]


def stack_frames(name: str) -> list[Path]:
    """The frame files of the shared real focus stack ``name`` (:data:`STACK_NAMES`), in focus
    order; an upstream tool's own result beside them (``reference-*``) is left out.  Test data only."""
    if name not in STACK_NAMES:
        raise ValueError(f"name must be one of {STACK_NAMES}, got {name!r}")
    files = sorted(
        n for n in registry() if n.startswith(f"stacks/{name}/") and not n.split("/")[-1].startswith("reference")
    )
    return [path(n) for n in files]


def grayscale_pair(n: int | str) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale pair of the MFIF survey, by index 1-10 or name (``"clock"``...).  Test data only."""
    if isinstance(n, str):
        if n not in GRAYSCALE_NAMES:
            raise ValueError(f"n must be one of {GRAYSCALE_NAMES} or 1..10, got {n!r}")
        n = GRAYSCALE_NAMES.index(n) + 1
    n = _index(n, tuple(range(1, 11)), "n")
    return tuple(read_image(path(f"grayscale/g_{n:02d}_{s}.png")) for s in "12")  # type: ignore[return-value]


def alphamatting(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-matting training image ``n`` (1-27): RGB uint8 image and uint8 alpha (0-255)."""
    n = _index(n, ALPHAMATTING_INDICES, "n")
    image = read_image(path(f"alphamatting/input/GT{n:02d}.png"))
    alpha = read_image(path(f"alphamatting/gt/GT{n:02d}.png"))
    if alpha.ndim == 3:
        alpha = alpha[..., 0]
    return image, alpha


def nyud_pair(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NYU-Depth-V2 multi-focus pair ``n`` (51-90) as RGB uint8 ``(A, B, GT)``, 600x440.

    ``A`` is focused near, ``B`` far, ``GT`` is the all-in-focus image (FusionDiff's
    redistribution; see data/README.md).  Test data only: never trained or tuned on.
    """
    n = _index(n, NYUD_INDICES, "n")
    return tuple(read_image(path(f"nyud/nyud-{n:02d}-{s}.jpg")) for s in ("A", "B", "GT"))  # type: ignore[return-value]


def natural_backgrounds() -> list[tuple[str, np.ndarray]]:
    """The 224 registered natural photographs (Urban100, BSD100, Kodak24) as ``(name, RGB uint8)``.

    Training backgrounds only (the offline stand-in for the paper's COCO images);
    :func:`bamf_lib.data.sources.load_backgrounds` selects from them by a sharpness rule.
    """
    names = sorted(k for k in registry() if k.startswith("backgrounds/"))
    return [(k[len("backgrounds/") :].rsplit(".", 1)[0], read_image(path(k))) for k in names]


def published_fused(method: str, kind: str, n: int) -> np.ndarray:
    """A baseline's published fused image: ``kind="color"`` (Lytro ``n``) or ``"grayscale"``."""
    if method not in PUBLISHED_METHODS:
        raise ValueError(f"method must be one of {PUBLISHED_METHODS}, got {method!r}")
    if kind not in ("color", "grayscale"):
        raise ValueError(f"kind must be 'color' or 'grayscale', got {kind!r}")
    n = _index(n, LYTRO_INDICES if kind == "color" else tuple(range(1, 11)), "n")
    return read_image(path(f"published/{kind}/{method}/{kind[0]}_{n:02d}.png"))


# --------------------------------------------------------------------------- embedded source

# scikit-image's bundled photographs and textures (no download).  Three disjoint groups:
# training foregrounds, training backgrounds, and a held-out group for the ground-truth set.
EMBEDDED_GROUPS = {
    "foreground": ("astronaut", "chelsea", "rocket", "immunohistochemistry", "camera", "hubble_deep_field"),
    "background": ("grass", "gravel", "moon", "retina"),
    "test_foreground": ("coffee", "coins"),
    "test_background": ("brick", "cell"),
}


@cache
def _embedded(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if name == "retina":  # a dark disc on black: keep its textured centre
        h, w = image.shape[:2]
        image = image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    image.setflags(write=False)
    return image


def embedded_images(group: str = "foreground") -> list[tuple[str, np.ndarray]]:
    """Bundled scikit-image images of one group (see ``EMBEDDED_GROUPS``), as ``(name, uint8)``."""
    if group not in EMBEDDED_GROUPS:
        raise ValueError(f"group must be one of {sorted(EMBEDDED_GROUPS)}, got {group!r}")
    return [(n, _embedded(n)) for n in EMBEDDED_GROUPS[group]]
