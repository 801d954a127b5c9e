"""An upstream-shaped folder served on 127.0.0.1, with a registry made for it.

Used through the ``serve_upstream`` fixture of ``conftest.py``, never imported by a test module.

``serve(tmp_path)`` writes ``<repository>/<commit>/<upstream path>`` files like the GitHub
repositories the real registry points at: a TIFF pair that must become PNG, a JPEG taken as
is, the survey's ``Q`` array as .mat that becomes the scores CSV, and a file whose served
bytes are not the registered ones. It returns the server, the registry file and the
expected local files. ``server.fail[path] = n`` answers 503 to the next ``n`` requests.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import numpy as np

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        path = unquote(self.path)
        self.server.requests[path] += 1
        if self.server.fail.get(path, 0) > 0:
            self.server.fail[path] -= 1
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, *args):  # keep pytest's output clean
        pass


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve(tmp_path: Path, tampered: bool = True):
    """Start the server; return ``(server, registry_file, {local path: pixels or bytes})``.

    ``tampered=False`` leaves out the file whose served bytes are not the registered ones.
    """
    import cv2
    from scipy.io import savemat

    from bamf_lib.data.download import convert
    from bamf_lib.data.registry import TOOLBOX_METHODS, TOOLBOX_METRICS, Entry

    rng = np.random.default_rng(5)
    root = tmp_path / "upstream"
    repo = root / "someone" / "MFIF" / COMMIT
    files = {}  # local path -> (upstream path, upstream bytes, conversion, expected local bytes or None)
    gray = rng.integers(0, 256, (40, 56), dtype=np.uint8)
    color = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for local, up, pixels in (
        ("grayscale/g_01_1.png", "sourceimages/grayscale/g_01_1.tif", gray),
        ("grayscale/g_01_2.png", "sourceimages/grayscale/g_01_2.tif", gray[::-1]),
        ("published/color/dsift/c_01.png", "Results/color/c_01_dsift.tif", color),
    ):
        files[local] = (up, cv2.imencode(".tif", pixels)[1].tobytes(), "tiff-to-png", pixels)
    jpeg = cv2.imencode(".jpg", color)[1].tobytes()
    files["lytro/lytro-01-A.jpg"] = ("Code/datasets/CMFDataset/lytro-01-A.jpg", jpeg, "none", None)
    files["lytro/triple/lytro-01-A.jpg"] = ("Code/Triple Series/lytro-01-A (1).jpg", jpeg[::-1], "none", None)
    buffer = io.BytesIO()
    savemat(buffer, {"Q": rng.random((len(TOOLBOX_METHODS), len(TOOLBOX_METRICS), 2))})
    files["published/scores_color.csv"] = ("evaluation/Q_color.mat", buffer.getvalue(), "mat-to-scores-csv", None)
    if tampered:
        files["classic/book1.bmp"] = ("Datasets/book1.bmp", b"BM served bytes", "none", None)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.requests, server.fail = Counter(), {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/someone/MFIF/{COMMIT}/"
    lines, expected = [], {}
    for local, (up, raw, conversion, pixels) in files.items():
        (repo / up).parent.mkdir(parents=True, exist_ok=True)
        (repo / up).write_bytes(raw)
        result = convert(raw, conversion)
        upstream_hash = _sha(raw) if local != "classic/book1.bmp" else _sha(b"BM registered bytes")
        url = base + up.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
        lines.append(Entry(local, _sha(result), conversion, upstream_hash, url).line())
        expected[local] = pixels if pixels is not None else result
    (tmp_path / "registry.txt").write_text("# made by tests/_upstream_server.py\n" + "\n".join(lines) + "\n")
    server.commit = COMMIT
    return server, tmp_path / "registry.txt", expected
