"""Writing files atomically: a crash never leaves a half-written output.

Every file the project writes goes through :func:`atomic_write`, and nothing overwrites an
existing file unless asked.  Temporary files are named
``.<name>.bamf-tmp-<pid>-<random>-h<host><suffix>`` and created with the process's umask (as a
plain ``open`` would); one left by a killed process on this host is removed by the next
:func:`atomic_write` into the same folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write"]

_TMP_TAG = ".bamf-tmp-"
# "-h<host>": a hash of the writer's host name; another machine's pid means nothing here (a shared
# filesystem under a Dask cluster), so only this host's temporaries are cleaned
_TMP_NAME = re.compile(r"^\..*\.bamf-tmp-(\d+)-[0-9a-f]{8}(?:-h([0-9a-f]{8}))?(\.[^.]*)?$")
_TMP_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


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
    mode = tmp_path.stat().st_mode & 0o7777  # 0o666 less the umask, as open() gives
    try:
        yield tmp_path
        # the writer may have replaced the file with one of its own mode (safetensors: 0o600)
        os.chmod(tmp_path, path.stat().st_mode & 0o7777 if path.exists() else mode)
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
