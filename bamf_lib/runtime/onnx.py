"""The fusion networks on ONNX Runtime: what ``bamf fuse`` runs, without PyTorch.

A padding-free, stride-1 network (:attr:`~bamf_lib.config.ModelConfig.dense_capable`, the
shipped design) computes on a whole region exactly the scores of every patch in it, so its
whole-image score map is one function of the gray pair: features, the head at every
position (:meth:`~bamf_lib.nets.models.FocusResNet.pooled_logits` with the logit-gap row) and a
sigmoid, the computation of :mod:`bamf_lib.nets.scoring`'s fast path.  :mod:`bamf_lib.nets.export`
writes that function as an ONNX graph (dynamic height and width; its convolutions pad and one
crop at the end takes the padding off again, which ONNX Runtime runs faster) and checks it
against the torch path to 1e-5; this module runs it with ONNX Runtime on the CPU, in tiles of
one size, each input shape with a session of its own (:meth:`OnnxScorer.session`).  Importing it,
and fusing with it, never imports torch (``tests/test_imports.py`` checks), so ``bamf fuse``
neither needs PyTorch installed nor pays for importing it.

Where the graph comes from.  Each weights file ``NAME.safetensors`` may have ``NAME.onnx``
beside it (the shipped nets do; ``python -m bamf_lib.nets.export FOLDER`` writes them), whose
metadata records the SHA-256 of the weights it was exported from.  :func:`load_onnx`
uses it only if that hash is the weights' hash; otherwise it looks in the cache
(``BAMF_CACHE_DIR``/onnx, named by the hash), and without either it raises
:class:`StaleGraphError` naming the export command.  Nothing here writes a graph, and a stale or
foreign graph is never used.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bamf_lib.config import ModelConfig
from bamf_lib.runtime.header import header_info

__all__ = [
    "OnnxScorer",
    "load_onnx",
    "onnx_path",
    "cache_path",
    "StaleGraphError",
    "SOURCE_KEY",
    "threads",
    "set_threads",
    "set_stop",
    "Stopped",
]

#: ONNX metadata key holding the SHA-256 of the safetensors file the graph was exported from
SOURCE_KEY = "bamf.source_sha256"
# activations of one tile: measured 234 bytes a pixel of the padded tile (about 3.7 tensors of 16
# float32 channels) on the shared arena.  A tile of ~1190 x 1190 output pixels makes 24 MP 10 %
# faster than ~770 (less of the 63-pixel margin is scored twice) at the same peak (1.16 GB with
# one arena, against 1.17 GB for 770 with an arena per session)
_TILE_BUDGET_BYTES = 384 * 2**20
_LIVE_TENSORS = 4
_MASK_TILES = (96, 128, 192, 256, 384, 512)  # tile sides tried when only some pixels are wanted
_SESSIONS = 4  # fixed-shape sessions kept per network (each keeps its activations' memory)


_LOCAL = threading.local()  # .threads: this thread's intra-op thread count (threads())
_ARENA = {"made": None, "lock": threading.Lock()}  # made: None (not tried yet), True, False (cannot)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Within the block, networks run on ``n`` threads in this thread (None: ONNX Runtime's
    default, one per core).  :func:`bamf_lib.fusion.batch.run_batch` runs a stack per core this way
    (``threads(1)`` in each worker), which keeps the cores busy while another stack is read or
    written.  A pixel's score does not depend on the thread count (each output is summed by one
    thread in one order; ``tests/test_onnxnet.py`` checks it bit for bit)."""
    before = getattr(_LOCAL, "threads", None)
    set_threads(n)
    try:
        yield
    finally:
        _LOCAL.threads = before


class Stopped(RuntimeError):
    """Scoring stopped between tiles because this thread's stop event (:func:`set_stop`) was set."""


def set_stop(event: threading.Event | None) -> None:
    """From now on, scoring in this thread stops between two tiles (raising :class:`Stopped`)
    once ``event`` is set: an interrupted batch does not finish a large stack first."""
    _LOCAL.stop = event


def set_threads(n: int | None) -> None:
    """From now on, networks run on ``n`` threads in this thread (None: one per core); see :func:`threads`."""
    _LOCAL.threads = None if n is None else max(1, int(n))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def onnx_path(weights_file: str | os.PathLike) -> Path:
    """The ONNX graph's place beside a weights file: ``initial.safetensors`` -> ``initial.onnx``."""
    return Path(weights_file).with_suffix(".onnx")


class StaleGraphError(ValueError):
    """No ONNX graph exported from these exact weights exists; the message names the command that
    makes one (nothing here writes a graph), ``.cache`` is where one may also be put."""

    def __init__(self, message: str, cache: Path) -> None:
        super().__init__(message)
        self.cache = cache


def cache_path(sha: str) -> Path:
    """Where a graph exported from weights with SHA-256 ``sha`` is cached (``BAMF_CACHE_DIR``/onnx)."""
    from bamf_lib.data.locations import cache_dir

    return cache_dir() / "onnx" / f"{sha}.onnx"


class OnnxScorer:
    """A dense-capable network as ONNX Runtime sessions: the :class:`~bamf_lib.runtime.scorer.Scorer`
    that ``bamf fuse`` runs.

    Attributes
    ----------
    config : ModelConfig
        The network's configuration (from its weights' header).
    metadata : dict
        The weights' metadata (profile, tuned FDB values ...).
    source : Path
        The weights file the graph was exported from.
    sha256 : str
        That file's SHA-256 (recorded in the graph).
    """

    backend = "onnx"

    def __init__(
        self, graph: str | os.PathLike, config: ModelConfig, metadata: dict, source: Path, sha256: str = ""
    ) -> None:
        self.graph, self.config, self.metadata, self.source = Path(graph), config, metadata, Path(source)
        self.sha256 = sha256
        self._sessions: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        width = config.width * max(int(m) for m in config.stage_widths)
        side = int(math.sqrt(_TILE_BUDGET_BYTES / (4 * _LIVE_TENSORS * width))) - config.patch_size + 1
        self.tile = max(min(_MASK_TILES), side)

    @property
    def name(self) -> str:
        """The weights file's name."""
        return self.source.name

    def __repr__(self) -> str:
        c = self.config
        return f"OnnxScorer({self.source.name}: {c.version}-{c.depth} w{c.width} P{c.patch_size})"

    def _region(self, a: np.ndarray, b: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The (1, 2, h + P - 1, w + P - 1) input whose patches are centred on output pixels
        [y0, y1) x [x0, x1): the image reflected at its borders as :mod:`bamf_lib.nets.scoring` pads it
        (``P // 2`` before, ``P // 2 - 1`` after; numpy's ``"reflect"``), cut tile by tile so no
        padded copy of the whole image is made."""
        p = self.config.patch_size
        rows = _reflect(np.arange(y0 - p // 2, y1 + p // 2 - 1), a.shape[0])
        cols = _reflect(np.arange(x0 - p // 2, x1 + p // 2 - 1), a.shape[1])
        region = np.empty((1, 2, len(rows), len(cols)), np.float32)
        c0 = int(cols.min())
        for i, img in enumerate((a, b)):  # two 1-D takes: 4x faster than one 2-D fancy index
            np.take(np.take(img[:, c0 : int(cols.max()) + 1], rows, axis=0), cols - c0, axis=1, out=region[0, i])
        return region

    def _check(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for name, img in (("a", a), ("b", b)):
            img = np.asarray(img)
            if img.ndim != 2 or not np.issubdtype(img.dtype, np.floating):
                raise ValueError(f"{name} must be a float gray H x W image in [0, 1], got {img.dtype} {img.shape}")
            out.append(img)
        if out[0].shape != out[1].shape:
            raise ValueError(f"a and b differ in size: a {out[0].shape}, b {out[1].shape}")
        p = self.config.patch_size
        if min(out[0].shape) < p:
            raise ValueError(
                f"images are {out[0].shape[0]}x{out[0].shape[1]}, smaller than the network's {p}x{p} patch"
            )
        return out[0], out[1]

    def score_map(self, a: np.ndarray, b: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Probability that ``a`` is the focused source at every pixel (float32 ``H x W``):
        the paper's per-patch score, computed in tiles of :attr:`tile` pixels."""
        a, b = self._check(a, b)
        return self._score(a, b, _tiles(*a.shape, self.tile), progress)

    def score_masked(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Scores where ``mask`` is True, NaN elsewhere.  Scores only the tiles holding mask
        pixels, with the tile side (up to the whole-image tiles) that costs the fewest network
        evaluations: each tile also evaluates a ``P - 1`` pixel margin."""
        a, b = self._check(a, b)
        mask = np.asarray(mask, bool)
        if mask.shape != a.shape:
            raise ValueError(f"mask has shape {mask.shape}, the images {a.shape}")
        p = self.config.patch_size
        cost = lambda tiles: sum((y1 - y0 + p - 1) * (x1 - x0 + p - 1) for y0, y1, x0, x1 in tiles)  # noqa: E731
        choices = [
            [t for t in _tiles(*a.shape, side) if mask[t[0] : t[1], t[2] : t[3]].any()]
            for side in sorted({*_MASK_TILES, self.tile})
            if side <= self.tile
        ]
        out = self._score(a, b, min(choices, key=cost), progress)
        out[~mask] = np.nan
        return out

    def session(self, height: int, width: int):
        """The ONNX Runtime session for a ``height x width`` input, made on first use and kept
        for the last :data:`_SESSIONS` input shapes.

        A session made for one fixed shape lets ONNX Runtime's blocked-layout (NCHWc) pass see
        that every residual addition adds tensors of one shape, and fuse it, with its ReLU,
        into the convolution before it, which the graph's dynamic shape prevents.  Making one is
        cheap, and the tiles of one image all have one shape (:func:`_tiles`).
        """
        key = (int(height), int(width), getattr(_LOCAL, "threads", None))
        with self._lock:  # the workers of a batch share the networks
            if key not in self._sessions:
                if len(self._sessions) >= _SESSIONS:
                    self._sessions.popitem(last=False)
                self._sessions[key] = _session(self.graph, key[:2], key[2])
            self._sessions.move_to_end(key)
            return self._sessions[key]

    def _score(self, a, b, tiles: list[tuple[int, int, int, int]], progress: bool) -> np.ndarray:
        from tqdm import tqdm  # not tqdm.auto: its notebook probe costs a CLI run 60 ms

        out = np.full(a.shape, np.nan, np.float32)
        stop = getattr(_LOCAL, "stop", None)
        for y0, y1, x0, x1 in tqdm(tiles, desc="score", unit="tile", disable=not progress or len(tiles) < 2):
            if stop is not None and stop.is_set():
                raise Stopped("stopped: the batch was interrupted")
            region = self._region(a, b, y0, y1, x0, x1)
            out[y0:y1, x0:x1] = self.session(*region.shape[2:]).run(None, {"pair": region})[0][0, 0]
        return out


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into ``0 .. n - 1`` without repeating the edge (``d c b | a b c d``); overhang < n."""
    index = np.abs(index)
    return np.where(index >= n, 2 * (n - 1) - index, index)


def _tiles(h: int, w: int, side: int) -> list[tuple[int, int, int, int]]:
    """Tiles of one size, at most ``side`` x ``side``, covering ``h`` x ``w``: as few as
    possible, evenly spread, overlapping by the few pixels that make their sizes equal (so
    one fixed-shape session serves them all; an overlapped pixel is written by the later tile)."""

    def cuts(n: int) -> Iterator[tuple[int, int]]:
        k = -(-n // side)
        size = -(-n // k)
        starts = [round(i * (n - size) / (k - 1)) for i in range(k)] if k > 1 else [0]
        return ((s, s + size) for s in starts)

    return [(y0, y1, x0, x1) for y0, y1 in cuts(h) for x0, x1 in cuts(w)]


def _session(path: Path, shape: tuple[int, int] | None = None, threads: int | None = None):
    """An ONNX Runtime session of the graph at ``path`` on the CPU, for inputs of ``shape``
    (height, width) only when given (:meth:`OnnxScorer.session`), else of any size, on ``threads``
    threads (None: one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if _shared_arena():
        options.add_session_config_entry("session.use_env_allocators", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
    if shape is not None:
        for name, size in zip(("height", "width"), shape):
            options.add_free_dimension_override_by_name(name, int(size))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's
    # idle threads sleep instead of spinning: on a busy machine (2 cores shared with training jobs)
    # spinning threads steal the cores the work needs (measured: 0.22 s -> 0.14 s per 520 x 520 pass)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _shared_arena() -> bool:
    """Register one CPU memory arena for every session of this process (once), so the two
    networks, and every tile shape, reuse one tile's activations instead of each keeping its own
    (the peak memory it saves is in ``benchmarks/bench_cli.py``'s figures).  False if this ONNX
    Runtime cannot (each session then has its own arena)."""
    with _ARENA["lock"]:
        if _ARENA["made"] is None:
            import onnxruntime as ort

            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
                _ARENA["made"] = True
            except (AttributeError, RuntimeError, TypeError):
                _ARENA["made"] = False
        return _ARENA["made"]


def _matching_session(path: Path, sha: str):
    """A session of ``path`` if it exists and was exported from weights with hash ``sha``."""
    if not path.is_file():
        return None
    try:
        session = _session(path)
    except Exception:  # a damaged graph file is as good as none: it is remade
        return None
    return session if session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY) == sha else None


def load_onnx(weights_file: str | os.PathLike) -> OnnxScorer:
    """The ONNX Runtime copy of the network in ``weights_file`` (a ``.safetensors`` file).

    Uses the graph beside the file or in the cache when its recorded hash is the file's;
    otherwise raises :class:`StaleGraphError`.  Loaded once per file
    (and again when the file changes on disk).

    Raises
    ------
    ValueError
        If the network is not dense-capable (padding-free, stride 1): its whole-image pass
        is not the per-patch computation, so it runs on the torch path only.
    StaleGraphError
        If no graph exported from these weights exists; its message names the command that
        makes one (``python -m bamf_lib.nets.export FOLDER``, which needs torch).
    """
    path = Path(weights_file).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return _load_once(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_once(path: str, mtime_ns: int) -> OnnxScorer:
    path = Path(path)
    config, metadata = header_info(path)
    if not config.dense_capable:
        raise ValueError(
            f"{path}: a {config.padding}-padded net with strides {config.stage_strides} has no exact "
            f"whole-image ONNX form; it runs on the torch path (pip install 'bamf[train]')"
        )
    sha = _sha256(path)
    for candidate in (lambda: onnx_path(path), lambda: cache_path(sha)):  # the cache only when needed (pooch)
        graph = candidate()
        if _matching_session(graph, sha) is not None:
            return OnnxScorer(graph, config, metadata, path, sha)
    raise StaleGraphError(
        f"{path} has no matching ONNX graph ({onnx_path(path).name} is missing or was exported from other "
        f"weights); make one with `python -m bamf_lib.nets.export {path.parent}` (needs PyTorch: "
        f"pip install 'bamf[train]'), or run these weights on torch with --backend torch",
        cache_path(sha),
    )
