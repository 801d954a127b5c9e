"""Table 1: score fusion methods on test pairs with the four metrics and count wins.

The paper's Table 1 gives, for each metric and method, the mean score over 24 pairs
(20 Lytro + the classic "clock", "book", "lab", "flower") and, in parentheses, the
number of pairs on which that method beats all the others; its "w/o" column (the initial
network alone) takes no part in the win counts. Here:

* :func:`pair_set` names the test pairs (``paper24``, ``survey30``, ``lytro20``,
  ``grayscale10``);
* :func:`evaluate` fuses (or reads) every method's result on every pair and scores it
  with :func:`bamf_lib.evaluation.metrics.all_metrics`;
* :func:`~bamf_lib.evaluation.summary.summarize` turns a score table into means and win counts
  (:class:`~bamf_lib.evaluation.summary.EvaluationResult` holds both).

The table as text and the paper's printed one are in :mod:`bamf_lib.evaluation.tables`, the Fig. 5
difference maps in :mod:`bamf_lib.book.figures`, and decision maps scored on synthetic pairs with
a known truth in :mod:`bamf_lib.evaluation.groundtruth`.

Published baselines come from the Liu et al. 2020 survey's results
(``BAMF_DATA_DIR/published``), which cover the Lytro and the survey's grayscale pairs.
The classic "lab" and "flower" are pixel-identical to the survey's grayscale pairs 03 and
08, so their published results are used; "clock" and "book" have none (``n/a``) and
those methods' means are over the pairs that exist.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bamf_lib.data import datasets
from bamf_lib.evaluation.summary import METRICS, EvaluationResult, summarize
from bamf_lib.fusion.baselines import gff_fuse
from bamf_lib.io import read_image, write_image

__all__ = [
    "METRICS",
    "PAIR_SETS",
    "TABLE1_BASELINES",
    "Pair",
    "pair_set",
    "load_sources",
    "default_methods",
    "EvaluationResult",
    "summarize",
    "evaluate",
    "run_methods",
]

PAIR_SETS: tuple[str, ...] = ("paper24", "survey30", "lytro20", "grayscale10")
PAPER_CLASSIC: tuple[str, ...] = ("clock", "book", "lab", "flower")
# classic pairs whose sources are pixel-identical to a survey grayscale pair (checked by
# tests/test_evaluation.py), so the survey's published results apply to them
CLASSIC_IN_SURVEY: dict[str, int] = {"lab": 3, "flower": 8}

# Table-1 column -> folder of the survey's published results (published/<kind>/<folder>/)
TABLE1_BASELINES: dict[str, str] = {
    "NSCT": "nsct",
    "SR": "sr",
    "NSCT-SR": "nsct-sr",
    "GF": "gff",
    "DSIFT": "dsift",
    "CNN": "cnn",
}

Method = Callable[[list[np.ndarray]], np.ndarray] | str


@dataclass(frozen=True)
class Pair:
    """One test pair: its name (also the saved file's stem), its source files relative to
    the data folder, and where the survey's published results for it live, if anywhere."""

    name: str
    sources: tuple[str, ...]
    published: tuple[str, int] | None = None  # (kind, index)


def _lytro(n: int) -> Pair:
    return Pair(f"c_{n:02d}", (f"lytro/lytro-{n:02d}-A.jpg", f"lytro/lytro-{n:02d}-B.jpg"), ("color", n))


def _grayscale(n: int) -> Pair:
    return Pair(f"g_{n:02d}", (f"grayscale/g_{n:02d}_1.png", f"grayscale/g_{n:02d}_2.png"), ("grayscale", n))


def _classic(name: str) -> Pair:
    n = CLASSIC_IN_SURVEY.get(name)
    return Pair(name, (f"classic/{name}1.bmp", f"classic/{name}2.bmp"), ("grayscale", n) if n else None)


def pair_set(name: str) -> list[Pair]:
    """The pairs of a named test set.

    Parameters
    ----------
    name : {"paper24", "survey30", "lytro20", "grayscale10"}
        ``paper24``: the paper's 20 Lytro + clock, book, lab, flower; ``survey30``: the
        survey's 20 Lytro + 10 grayscale; ``lytro20``; ``grayscale10``.

    Returns
    -------
    list of Pair

    Examples
    --------
    >>> [p.name for p in pair_set("paper24")][-4:]
    ['clock', 'book', 'lab', 'flower']
    """
    lytro = [_lytro(n) for n in range(1, 21)]
    gray = [_grayscale(n) for n in range(1, 11)]
    sets = {
        "paper24": lytro + [_classic(c) for c in PAPER_CLASSIC],
        "survey30": lytro + gray,
        "lytro20": lytro,
        "grayscale10": gray,
    }
    if name not in sets:
        raise ValueError(f"pairs must be one of {list(PAIR_SETS)}, got {name!r}")
    return sets[name]


def load_sources(pair: Pair) -> list[np.ndarray]:
    """Read a pair's source images (uint8), hash-checked, via :func:`bamf_lib.data.datasets.path`."""
    return [read_image(datasets.path(rel)) for rel in pair.sources]


def _bamf(
    refine: bool, weights: str | Path | None = None, path: str = "fast", swap_average: bool = False
) -> Callable[[list[np.ndarray]], np.ndarray]:
    def run(sources: list[np.ndarray]) -> np.ndarray:
        from bamf_lib.fusion.pipeline import fuse

        return fuse(sources, refine=refine, weights=weights, path=path, swap_average=swap_average).fused

    run.bamf_options = (None if weights is None else str(weights), "auto", "auto", path)
    return run


def default_methods(
    weights: str | Path | None = None, path: str = "fast", swap_average: bool = False
) -> dict[str, Method]:
    """Table 1's columns: the six published baselines, this project's GFF, bamf w/o and with
    refinement (with the networks in the folder ``weights``, default the shipped ones, scored on
    the ``path`` given: ``"fast"`` or the paper's per-patch ``"reference"``; each pair in both
    orders with ``swap_average``)."""
    methods: dict[str, Method] = {name: f"published:{name}" for name in TABLE1_BASELINES}
    methods["gff-here"] = gff_fuse
    methods["bamf-initial"] = _bamf(refine=False, weights=weights, path=path, swap_average=swap_average)
    methods["bamf"] = _bamf(refine=True, weights=weights, path=path, swap_average=swap_average)
    return methods


def _published_folder(name: str, method: Method) -> str | None:
    """The published-results folder of a ``"published:<name>"`` method; None for a callable."""
    if callable(method):
        return None
    folders = set(TABLE1_BASELINES.values())
    if isinstance(method, str) and method.startswith("published:"):
        key = method.split(":", 1)[1]
        folder = TABLE1_BASELINES.get(key, key)
        if folder in folders:
            return folder
    raise ValueError(
        f"method {name!r} must be a callable or 'published:<name>' with <name> in "
        f"{sorted(TABLE1_BASELINES)} or {sorted(folders)}, got {method!r}"
    )


def _run_method(method: Method, folder: str | None, pair: Pair, sources: list[np.ndarray]) -> np.ndarray | None:
    if folder is None:
        return method(sources)
    if pair.published is None:
        return None
    kind, index = pair.published
    return datasets.published_fused(folder, kind, index)


def run_methods(
    pair: Pair, methods: Mapping[str, Method], sources: list[np.ndarray] | None = None
) -> dict[str, np.ndarray | None]:
    """Every method's fused image of one pair (None where no published result exists), for figures.

    Parameters
    ----------
    pair : Pair
    methods : mapping name -> callable or ``"published:<name>"``, as for :func:`evaluate`
    sources : list of ndarray, optional
        The pair's sources if already read (default: :func:`load_sources`).

    Returns
    -------
    dict name -> uint8 ndarray or None
    """
    folders = {name: _published_folder(name, method) for name, method in methods.items()}
    sources = load_sources(pair) if sources is None else sources
    return {name: _run_method(method, folders[name], pair, sources) for name, method in methods.items()}


def _score_pair(
    pair: Pair,
    *,
    methods: Mapping[str, Method],
    folders: Mapping[str, str | None],
    metric_fn: Callable,
    save_fused: Path | None,
    save_method: str,
    existing: str,
) -> tuple[dict, dict]:
    """One pair's scores and seconds per method (saving ``save_method``'s fused image): the task
    :func:`evaluate` runs per pair, in this process or on a Dask worker."""
    sources = load_sources(pair)
    if len(sources) != 2:
        raise ValueError(f"pair {pair.name} has {len(sources)} sources; the metrics need exactly two")
    scores, seconds = {}, {}
    for name, method in methods.items():
        t0 = time.perf_counter()
        fused = _run_method(method, folders[name], pair, sources)
        seconds[name] = time.perf_counter() - t0
        if fused is None:
            scores[name] = None
            continue
        if fused.shape != sources[0].shape:
            raise ValueError(f"{name} on {pair.name}: fused shape {fused.shape} != source shape {sources[0].shape}")
        scores[name] = {k: float(v) for k, v in metric_fn(sources[0], sources[1], fused).items()}
        saved = None if save_fused is None or name != save_method else save_fused / f"{pair.name}.png"
        if saved is not None and not (existing == "skip" and saved.exists()):
            write_image(saved, fused, overwrite=existing == "overwrite")
    return scores, seconds


def _scored_here(score: Callable[[Pair], tuple], pairs: Sequence[Pair], total: int, progress: bool) -> Iterable[tuple]:
    """``score`` of each pair in turn, under one progress bar (``total`` counts reused pairs too)."""
    from tqdm.auto import tqdm

    bar = tqdm(
        pairs, desc="pairs", unit="pair", disable=not progress, file=sys.stderr, total=total, initial=total - len(pairs)
    )
    for pair in bar:
        bar.set_postfix_str(pair.name)
        yield score(pair)


def _bamf_options(methods: Mapping[str, Method]) -> tuple:
    """(weights, device, backend, path) of the bamf methods, for the workers to preload."""
    for method in methods.values():
        options = getattr(method, "bamf_options", None)
        if options is not None:
            return options
    return (None, "auto", "auto", "fast")


def evaluate(
    pairs: Sequence[Pair],
    methods: Mapping[str, Method],
    *,
    compete: Iterable[str] | None = None,
    wins_on: str = "common",
    metric_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], Mapping[str, float]] | None = None,
    save_fused: str | Path | None = None,
    save_method: str = "bamf",
    existing: str = "refuse",
    progress: bool = True,
    label: str = "",
    reuse: EvaluationResult | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> EvaluationResult:
    """Score every method on every pair and summarise (Table 1).

    Parameters
    ----------
    pairs : sequence of Pair
        From :func:`pair_set`.
    methods : mapping name -> callable or str
        A callable takes the list of uint8 sources and returns the fused uint8 image;
        ``"published:<name>"`` reads the survey's result (``<name>`` a Table-1 column
        such as ``"GF"`` or a folder such as ``"gff"``), n/a where none exists.
    compete : iterable of str, optional
        Methods that take part in win counting; default all but ``"bamf-initial"`` and
        ``"gff-here"`` (the paper leaves its "w/o" column out; ``gff-here`` would tie
        with the published GF it reproduces).
    wins_on : {"common", "available"}
        See :func:`summarize`.
    metric_fn : callable, optional
        ``(a, b, fused) -> {"Q_MI": ..., ...}``; default :func:`bamf_lib.evaluation.metrics.all_metrics`.
    save_fused : path, optional
        Folder for ``save_method``'s fused images, ``<pair name>.png`` (``c_NN``,
        ``g_NN``, or the classic name), each written atomically (a run stopped midway
        leaves whole images only).
    existing : {"refuse", "skip", "overwrite"}
        What to do with saved images already in ``save_fused`` (from an earlier or a
        failed run): raise ``FileExistsError`` before any work, keep them (the pair is
        still fused and scored), or replace them.
    progress : bool
        Show a progress bar over the pairs.
    reuse : EvaluationResult, optional
        An earlier result: a pair it scored for every one of ``methods`` (matched by pair
        and method name) is copied from it, scores and timings, instead of being fused and
        scored again (``paper24`` and ``survey30`` share the 20 Lytro pairs). Copied pairs
        are not written to ``save_fused``.
    engine : {"local", "dask"}
        Score the pairs one by one here, or a task per pair on a Dask cluster
        (:mod:`bamf_lib.fusion.engines`; its workers need the same data folder, ``BAMF_DATA_DIR``).
    scheduler : str, optional
        With ``engine="dask"``: an existing cluster's scheduler (default a local cluster).

    Returns
    -------
    EvaluationResult
    """
    if not pairs:
        raise ValueError("pairs is empty")
    if not methods:
        raise ValueError("methods is empty")
    folders = {name: _published_folder(name, method) for name, method in methods.items()}
    if metric_fn is None:
        from bamf_lib.evaluation.metrics import all_metrics as metric_fn
    if compete is None:
        compete = [m for m in methods if m not in ("bamf-initial", "gff-here")]
    compete = list(compete)
    if save_fused is not None:
        if save_method not in methods:
            raise ValueError(f"save_method {save_method!r} is not among the methods {list(methods)}")
        save_fused = Path(save_fused)
        if existing not in ("refuse", "skip", "overwrite"):
            raise ValueError(f"existing must be 'refuse', 'skip' or 'overwrite', got {existing!r}")
        clash = [save_fused / f"{p.name}.png" for p in pairs if (save_fused / f"{p.name}.png").exists()]
        if clash and existing == "refuse":
            raise FileExistsError(
                f"{clash[0]} exists (and {len(clash) - 1} more); keep them with existing='skip' "
                f"or replace them with existing='overwrite' (CLI: --existing skip or --existing overwrite)"
            )

    scores: dict[str, dict[str, dict[str, float] | None]] = {m: {} for m in methods}
    seconds: dict[str, dict[str, float]] = {m: {} for m in methods if folders[m] is None}
    if reuse is not None and not isinstance(reuse, EvaluationResult):
        raise ValueError(f"reuse must be an EvaluationResult, got {type(reuse).__name__}")

    def reusable(pair: Pair) -> bool:
        return (
            reuse is not None
            and pair.name in reuse.pairs
            and all(
                m in reuse.scores
                and pair.name in reuse.scores[m]
                and (m not in seconds or pair.name in reuse.seconds.get(m, {}))
                for m in methods
            )
        )

    score = functools.partial(
        _score_pair,
        methods=methods,
        folders=folders,
        metric_fn=metric_fn,
        save_fused=save_fused,
        save_method=save_method,
        existing=existing,
    )
    todo = [pair for pair in pairs if not reusable(pair)]
    if engine == "dask":  # a task per pair (bamf_lib.fusion.engines); its workers read the data folder
        from bamf_lib.fusion.dask_worker import PreloadNets
        from bamf_lib.fusion.engines import map_dask

        check = functools.partial(datasets.path, todo[0].sources[0]) if todo else None
        done = map_dask(
            score,
            todo,
            scheduler=scheduler,
            progress=progress,
            desc="pairs",
            check=check,
            what=f"the data file {todo[0].sources[0] if todo else ''} (BAMF_DATA_DIR)",
            plugin=PreloadNets(*_bamf_options(methods)),
            quiet=not progress,
        )
    elif engine == "local":
        done = _scored_here(score, todo, len(pairs), progress)
    else:
        raise ValueError(f"engine must be 'local' or 'dask', got {engine!r}")
    results = dict(zip((pair.name for pair in todo), done))
    for pair in pairs:
        if pair.name not in results:  # reusable
            results[pair.name] = (
                {m: reuse.scores[m][pair.name] for m in methods},
                {m: reuse.seconds[m][pair.name] for m in seconds},
            )
        pair_scores, pair_seconds = results[pair.name]
        for name in methods:
            old = pair_scores[name]
            scores[name][pair.name] = None if old is None else dict(old)
            if name in seconds:
                seconds[name][pair.name] = pair_seconds[name]
    names = [p.name for p in pairs]
    means, n_pairs, wins, win_pairs = summarize(scores, pairs=names, compete=compete, wins_on=wins_on)
    return EvaluationResult(
        names, list(methods), scores, means, n_pairs, wins, compete, win_pairs, seconds, label, wins_on
    )
