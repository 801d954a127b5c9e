"""Download registered data files, convert them as the registry says, and check data folders.

A download is trusted in two steps: its bytes must hash to the registry's *upstream*
hash; after the stated conversion (:data:`bamf_lib.data.registry.CONVERSIONS`) the result
must hash to the file's own hash.  A mismatch at either step raises
:class:`~bamf_lib.data.datasets.DataIntegrityError` naming the file, the URL and both hashes,
and nothing is left in the cache.  Transient server errors (429, 5xx) and broken
connections are retried; what still fails is
:class:`~bamf_lib.data.datasets.DatasetNotFoundError`.

The cache (``BAMF_CACHE_DIR``, else the OS cache folder ``bamf``) is laid out like
``../shared/data``, so a fetched folder can itself be ``BAMF_DATA_DIR``.

Command line: ``bamf data fetch [--only lytro,published]`` and ``bamf data check [DIR]``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections import Counter
from pathlib import Path

from bamf_lib.data import registry
from bamf_lib.data.locations import cache_dir  # public here: where downloads go
from bamf_lib.data.registry import DataIntegrityError, DatasetNotFoundError

__all__ = ["cache_dir", "fetch", "fetch_many", "check", "missing_message", "convert", "mat_to_scores_csv"]

RETRIES = 4  # tries after the first, for 429/5xx answers and broken connections
BACKOFF = 1.0  # seconds; urllib3 waits BACKOFF * 2**(n-1) before retry n (from the second on)
TIMEOUT = 60  # seconds to connect or between two received bytes


def _digest(data: bytes | Path, expected: str) -> str:
    """The hash of ``data`` in the algorithm of ``expected`` (``md5:<hex>`` or bare SHA-256), tagged alike."""
    import pooch

    algorithm, _, _ = expected.rpartition(":")
    hexdigest = (
        pooch.file_hash(str(data), algorithm or "sha256")
        if isinstance(data, Path)
        else hashlib.new(algorithm or "sha256", data).hexdigest()
    )
    return f"{algorithm}:{hexdigest}" if algorithm else hexdigest


def mat_to_scores_csv(raw: bytes) -> bytes:
    """The survey's ``Q[method, metric, image]`` (.mat) as the CSV of ``published/scores_*.csv``.

    One row per method and image (``method,image_index,QMI,...,QCV``), six decimals,
    CRLF line ends: byte for byte the shared data's export.
    """
    from scipy.io import loadmat

    from bamf_lib.data.registry import TOOLBOX_METHODS, TOOLBOX_METRICS

    q = loadmat(io.BytesIO(raw))["Q"]
    if q.shape[:2] != (len(TOOLBOX_METHODS), len(TOOLBOX_METRICS)):
        raise ValueError(f"Q has shape {q.shape}, expected ({len(TOOLBOX_METHODS)}, {len(TOOLBOX_METRICS)}, images)")
    lines = ["method,image_index," + ",".join(TOOLBOX_METRICS)]
    for i, method in enumerate(TOOLBOX_METHODS):
        for j in range(q.shape[2]):
            lines.append(f"{method},{j + 1}," + ",".join(f"{v:.6f}" for v in q[i, :, j]))
    return ("\r\n".join(lines) + "\r\n").encode()


def _tiff_to_png(raw: bytes) -> bytes:
    """Decode a TIFF and encode its pixels as PNG with the encoder settings of the shared copy.

    OpenCV's PNG writer with zlib level 1, the RLE strategy and the SUB filter (OpenCV 4's
    defaults) reproduces the shared PNGs byte for byte, so their SHA-256 verifies.
    """
    import cv2
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError("the download is not a readable TIFF")
    params = [
        cv2.IMWRITE_PNG_COMPRESSION,
        1,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
        cv2.IMWRITE_PNG_FILTER,
        cv2.IMWRITE_PNG_FILTER_SUB,
    ]
    ok, encoded = cv2.imencode(".png", pixels, params)
    if not ok:
        raise ValueError("OpenCV could not encode the pixels as PNG")
    return encoded.tobytes()


_CONVERTERS = {"none": lambda raw: raw, "tiff-to-png": _tiff_to_png, "mat-to-scores-csv": mat_to_scores_csv}


def convert(raw: bytes, conversion: str) -> bytes:
    """Apply a registry conversion (``"none"``, ``"tiff-to-png"``, ``"mat-to-scores-csv"``) to downloaded bytes."""
    if conversion not in _CONVERTERS:
        raise ValueError(f"conversion must be one of {sorted(_CONVERTERS)}, got {conversion!r}")
    return _CONVERTERS[conversion](raw)


def _session(retries: int | None = None, backoff: float | None = None):
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=RETRIES if retries is None else retries,
        backoff_factor=BACKOFF if backoff is None else backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _download(entry: registry.Entry, folder: Path, session) -> Path:
    """Stream ``entry.url`` into a temporary file in ``folder``; the caller removes it."""
    import requests

    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, session.get(entry.url, stream=True, timeout=TIMEOUT) as answer:
            answer.raise_for_status()
            for block in answer.iter_content(1 << 20):
                out.write(block)
    except requests.RequestException as err:
        os.unlink(tmp)
        raise DatasetNotFoundError(f"{entry.path} could not be downloaded from {entry.url}: {_reason(err)}") from err
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def _reason(err: Exception) -> str:
    """The innermost cause of a requests error, in a few words."""
    from urllib.parse import urlsplit

    inner = err.args[0] if err.args and isinstance(err.args[0], Exception) else err
    while isinstance(getattr(inner, "reason", None), Exception):
        inner = inner.reason
    text = str(inner)
    if "Failed to resolve" in text or "Name or service" in text:
        return f"cannot resolve {urlsplit(err.request.url).hostname} (no internet?)"
    return text


def fetch(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    session=None,
    retries: int | None = None,
    backoff: float | None = None,
) -> Path:
    """The verified local copy of registered file ``name`` under ``root`` (default :func:`cache_dir`).

    A copy already there is hash-checked and returned without a download; otherwise the
    file is downloaded, checked against the upstream hash, converted, checked against
    its own hash, and only then moved into place.

    Raises
    ------
    DataIntegrityError
        A copy in ``root`` or a download hashes wrong (nothing is kept).
    DatasetNotFoundError
        The download failed (no network, or still an HTTP error after ``retries``).
    """
    entry = registry.entries().get(name)
    if entry is None:
        raise ValueError(f"{name!r} is not in the bamf data registry ({registry.registry_file()})")
    target = Path(root if root is not None else cache_dir()) / name
    if target.is_file():
        got = _digest(target, entry.hash)
        if got != entry.hash:
            raise DataIntegrityError(
                f"{target} has hash {got}, but the registry expects {entry.hash}: "
                "the file is corrupt or was changed; delete it and fetch it again"
            )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _download(entry, target.parent, session or _session(retries, backoff))
    try:
        got = _digest(tmp, entry.upstream_hash)
        if got != entry.upstream_hash:
            raise DataIntegrityError(
                f"{name}: the download from {entry.url} has hash {got}, but the registry "
                f"expects {entry.upstream_hash} (upstream changed or the transfer is corrupt)"
            )
        if entry.conversion != "none":
            raw = tmp.read_bytes()
            try:
                tmp.write_bytes(convert(raw, entry.conversion))
            except ValueError as err:
                raise DataIntegrityError(
                    f"{name}: the download from {entry.url} (hash {got}) "
                    f"failed its {entry.conversion} conversion: {err}"
                ) from err
            converted = _digest(tmp, entry.hash)
            if converted != entry.hash:
                raise DataIntegrityError(
                    f"{name}: the download from {entry.url} (hash {got}, as expected) becomes "
                    f"hash {converted} after {entry.conversion}, but the registry expects "
                    f"{entry.hash}"
                )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def fetch_many(
    entries: list[registry.Entry], root: str | os.PathLike | None = None, *, progress: bool = False, session=None
) -> Path:
    """:func:`fetch` each entry into ``root`` (default :func:`cache_dir`) with one connection pool; return ``root``."""
    from tqdm.auto import tqdm

    root = Path(root if root is not None else cache_dir())
    session = session or _session()
    for entry in tqdm(entries, desc="bamf data", unit="file", disable=not progress):
        fetch(entry.path, root, session=session)
    return root


def check(root: str | os.PathLike, entries: list[registry.Entry]) -> tuple[list[str], list[str]]:
    """``(missing, wrong)``: the entries' paths that are absent from ``root``, or there but hash wrong."""
    root = Path(root)
    missing, wrong = [], []
    for entry in entries:
        file = root / entry.path
        if not file.is_file():
            missing.append(entry.path)
        elif _digest(file, entry.hash) != entry.hash:
            wrong.append(entry.path)
    return missing, wrong


def missing_message(missing: list[str], where: str) -> str:
    """One line naming the missing files by folder and both ways to get them."""
    by_group = Counter(name.split("/", 1)[0] for name in missing)
    listed = ", ".join(f"{group}/ ({n} file{'s' * (n != 1)})" for group, n in sorted(by_group.items()))
    return (
        f"{len(missing)} data file{'s are' if len(missing) != 1 else ' is'} missing from {where}: {listed}. "
        "Either set BAMF_DATA_DIR to a folder laid out like ../shared/data, or run `bamf data fetch` "
        f"with internet access (it downloads, hash-checks and keeps them in {cache_dir()})"
    )
