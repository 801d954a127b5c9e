"""Shared test set-up: the ``requires_data`` marker and the fixtures several test modules use.

``@pytest.mark.requires_data`` skips a test when ``BAMF_DATA_DIR`` is not set (or is not a
folder); ``@pytest.mark.requires_data("lytro/triple", ...)`` also when those files or
folders are missing in it.  ``pytest -m requires_data`` selects exactly these tests.

Fixtures (test modules ask for them by name and import no helper module):

* ``textured_pair``: a function making a random texture pair with a known focus map;
* ``stand_in``: a :class:`~bamf_lib.runtime.scorer.Scorer` that needs no trained weights, for
  the pipeline's logic: its score is a classical focus measure, local Laplacian energy,
  ``S = E_A / (E_A + E_B)``, which, as the paper's network, gives ``1 - S`` for swapped sources;
* ``stand_in_nets``: every network ``bamf_lib`` loads (``fusion.scorers.load_scorer``) is a stand-in;
* ``stand_in_folder``: a folder holding a colour pair ``a.png`` / ``b.png``, with ``stand_in_nets``;
* ``score_row``, ``score_table``, ``score_result``: a small Table-1 score table;
* ``serve_upstream``: an upstream-shaped data server on 127.0.0.1 (``upstream_server``).
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from bamf_lib.config import ModelConfig
from bamf_lib.data import locations


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_data"):
        root = locations.data_dir()
        if root is None or not root.is_dir():
            pytest.skip("BAMF_DATA_DIR is not set: point it at the data folder (here /work/shared/data)")
        missing = [p for p in mark.args if not (root / p).exists()]
        if missing:
            pytest.skip(f"BAMF_DATA_DIR has no {missing[0]}")


# --------------------------------------------------------------------------- images and stand-in nets


def _textured_pair(h: int = 96, w: int = 128, *, colour: bool = False, seed: int = 0):
    """A random texture with its left half blurred in B and its right half blurred in A:
    ``(a, b, sharp, truth)``, ``truth`` True where A is focused."""
    rng = np.random.default_rng(seed)
    sharp = rng.integers(0, 256, (h, w, 3) if colour else (h, w)).astype(np.uint8)
    sharp = cv2.resize(cv2.resize(sharp, (w // 2, h // 2)), (w, h), interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    truth = np.zeros((h, w), bool)
    truth[:, : w // 2] = True
    a = np.where(truth[..., None] if colour else truth, sharp, blurred)
    b = np.where(truth[..., None] if colour else truth, blurred, sharp)
    return a, b, sharp, truth


def focus_score(a: np.ndarray, b: np.ndarray, window: int) -> np.ndarray:
    energy = [cv2.blur(cv2.Laplacian(x.astype(np.float32), cv2.CV_32F) ** 2, (window, window)) for x in (a, b)]
    return (energy[0] / (energy[0] + energy[1] + 1e-12)).astype(np.float32)


class StandInScorer:
    """A Scorer without weights: the focus measure over a window of half its patch size.

    ``calls`` records the pixels each call scored (the whole image, or the mask), so a test
    can check what the pipeline asked for.
    """

    backend = "stand-in"

    def __init__(self, patch_size: int = 16, metadata: dict | None = None):
        self.config = ModelConfig(depth=8, patch_size=patch_size)
        self.metadata = dict(metadata or {})
        self.calls: list[int] = []

    @property
    def name(self) -> str:
        return f"stand-in P{self.config.patch_size}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def score_map(self, a, b, *, progress=False):
        self.calls.append(a.size)
        return focus_score(a, b, self.config.patch_size // 2 + 1)

    def score_masked(self, a, b, mask, *, progress=False):
        self.calls.append(int(mask.sum()))
        out = np.full(a.shape, np.nan, np.float32)
        out[mask] = focus_score(a, b, 3)[mask]
        return out


@pytest.fixture(scope="session")
def textured_pair():
    return _textured_pair


@pytest.fixture(scope="session")
def stand_in():
    """The stand-in scorer class: ``stand_in()`` or ``stand_in(patch_size=8)``."""
    return StandInScorer


@pytest.fixture
def stand_in_nets(monkeypatch):
    """Every network ``bamf_lib`` loads is a fresh stand-in; returns the ones handed out, by net."""
    from bamf_lib.fusion import scorers

    loaded: dict[str, list[StandInScorer]] = {"initial": [], "boundary": []}

    def load(net="initial", weights=None, **kwargs):
        scorer = StandInScorer()
        loaded[net].append(scorer)
        return scorer

    monkeypatch.setattr(scorers, "load_scorer", load)
    return loaded


@pytest.fixture
def stand_in_folder(tmp_path, stand_in_nets):
    """``tmp_path`` with a colour pair ``a.png`` / ``b.png``; ``bamf fuse`` runs stand-ins."""
    from PIL import Image

    a, b, _, _ = _textured_pair(colour=True)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    return tmp_path


# --------------------------------------------------------------------------- a small score table


def _row(mi, g, y, cb):
    return {"Q_MI": mi, "Q_G": g, "Q_Y": y, "Q_CB": cb}


# three pairs; "base" has no result on p3; "ours-w/o" does not compete
_TABLE = {
    "base": {"p1": _row(1.0, 0.5, 0.9, 0.7), "p2": _row(1.2, 0.6, 0.8, 0.7), "p3": None},
    "ours": {"p1": _row(1.1, 0.5, 0.8, 0.8), "p2": _row(1.0, 0.7, 0.9, 0.6), "p3": _row(2.0, 0.9, 0.9, 0.9)},
    "ours-w/o": {"p1": _row(9.0, 9.0, 9.0, 9.0), "p2": _row(9.0, 9.0, 9.0, 9.0), "p3": _row(9.0, 9.0, 9.0, 9.0)},
}


@pytest.fixture
def score_row():
    """``score_row(mi, g, y, cb)``: one pair's four metric scores."""
    return _row


@pytest.fixture
def score_table():
    """Three pairs, three methods: ``base`` misses p3, ``ours-w/o`` does not compete."""
    return {m: dict(rows) for m, rows in _TABLE.items()}


@pytest.fixture
def score_result(score_table):
    """``score_result(table=score_table, compete=("base", "ours"))``: an EvaluationResult."""
    from bamf_lib.evaluation.summary import EvaluationResult, summarize

    def result(table=None, compete=("base", "ours")):
        table = score_table if table is None else table
        means, n_pairs, wins, win_pairs = summarize(table, compete=list(compete))
        return EvaluationResult(
            list(next(iter(table.values()))), list(table), dict(table), means, n_pairs, wins, list(compete), win_pairs
        )

    return result


# --------------------------------------------------------------------------- an upstream data server


@pytest.fixture
def serve_upstream(tmp_path):
    """``serve_upstream(tampered=True)`` starts the server (shut down after the test) and returns
    ``(server, registry_file, expected)``; ``server.commit`` is the commit its URLs pin."""
    from upstream_server import serve

    servers = []

    def start(tampered: bool = True):
        server, registry_file, expected = serve(tmp_path, tampered=tampered)
        servers.append(server)
        return server, registry_file, expected

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
