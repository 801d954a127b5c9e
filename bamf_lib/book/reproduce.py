"""Execute the book's notebooks with papermill and build the static HTML book.

The chapters live in ``notebooks/`` as MyST Markdown (jupytext).  ``reproduce``
converts each to ``.ipynb``, executes it with papermill (the ``profile`` parameter is
injected into the notebook's ``parameters`` cell), keeps the executed notebooks in
``book/executed/`` and runs ``jupyter-book build`` with execution off.

The book is a checkout of the repository: a folder holding ``_toc.yml`` and ``notebooks/``.
Every function takes it as ``root``; left out, it is the current folder or the nearest one
above it that is a book (:func:`find_book`), never a path derived from where this package is
installed.

Command line: ``bamf reproduce --profile quick [--book DIR]`` or
``python -m bamf_lib.book.reproduce convert DIR``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "find_book", "notebook_sources", "require_data", "convert", "execute", "glued", "export_intro", "build_book",
    "reproduce",
]

# the book's folders, relative to its root
NOTEBOOKS = Path("notebooks")
EXECUTED = Path("book") / "executed"
GENERATED = Path("book") / "generated"  # what the introduction includes (built, not committed)
# The introduction (a plain page) shows results that chapters compute: (chapter, glue key) -> file
INTRO_EXPORTS = {
    ("07-fusion", "fig-intro-fused"): "intro-fused.png",
    ("09-evaluation", "verdict"): "intro-verdict.md",
    ("09-evaluation", "weights"): "intro-weights.md",
    ("09-evaluation", "build"): "intro-build.md",
}
CELL_TIMEOUT = 900  # seconds; the slowest cell on the quick profile takes about a minute


def find_book(root: str | Path | None = None) -> Path:
    """The book's root folder: ``root`` when given, else the current folder or the nearest
    folder above it holding ``_toc.yml`` and ``notebooks/``.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a book, or no folder from here up is one.
    """
    def is_book(folder: Path) -> bool:
        return (folder / "_toc.yml").is_file() and (folder / NOTEBOOKS).is_dir()

    if root is not None:
        folder = Path(root).resolve()
        if not is_book(folder):
            raise FileNotFoundError(f"{root} is not the book's folder (it needs _toc.yml and notebooks/); "
                                    f"name the repository's checkout")
        return folder
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if is_book(folder):
            return folder
    raise FileNotFoundError(f"no book here: neither {here} nor a folder above it holds _toc.yml and notebooks/; "
                            f"run from the repository's checkout or name it (bamf reproduce --book DIR)")


def notebook_sources(only: list[str] | None = None, root: str | Path | None = None) -> list[Path]:
    """The chapter notebooks (``notebooks/NN-*.md``) of the book at ``root`` (:func:`find_book`), in order."""
    folder = find_book(root) / NOTEBOOKS
    paths = sorted(folder.glob("[0-9][0-9]-*.md"))
    if only:
        paths = [p for p in paths if any(s in p.name for s in only)]
    if not paths:
        raise ValueError(f"no notebooks found in {folder} (filter: {only})")
    return paths


def require_data() -> Path:
    """The data folder the chapters will read, complete; stop here with one message otherwise.

    With ``BAMF_DATA_DIR`` set, every file of :func:`bamf_lib.data.registry.select` must be in it;
    without, what the cache lacks is downloaded first (``bamf data fetch``).  Hashes are
    checked when the chapters read the files.

    Raises
    ------
    DatasetNotFoundError
        Files are missing and cannot be downloaded: the message names them by folder and
        says both ways to get them.
    """
    from bamf_lib.data import download, registry
    from bamf_lib.data.datasets import DatasetNotFoundError, data_dir

    needed = registry.select()
    root = data_dir()
    if root is not None:
        missing = [e.path for e in needed if not (root / e.path).is_file()]
        if missing:
            raise DatasetNotFoundError(download.missing_message(missing, f"BAMF_DATA_DIR={root}"))
        return root
    root = download.cache_dir()
    absent = [e for e in needed if not (root / e.path).is_file()]
    if absent:
        print(f"[reproduce] downloading {len(absent)} data files into {root}", flush=True)
        try:
            download.fetch_many(absent, root, progress=True)
        except DatasetNotFoundError as err:
            missing = [e.path for e in needed if not (root / e.path).is_file()]
            reason = f"the cache {root} (BAMF_DATA_DIR is not set, and {err})"
            raise DatasetNotFoundError(download.missing_message(missing, reason)) from None
    return root


def convert(out_dir: Path, only: list[str] | None = None, root: str | Path | None = None) -> list[Path]:
    """Convert each MyST notebook to ``.ipynb`` in ``out_dir`` (kernel ``python3``)."""
    import jupytext

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in notebook_sources(only, root):
        nb = jupytext.read(src)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata.pop("jupytext", None)
        dst = out_dir / (src.stem + ".ipynb")
        jupytext.write(nb, dst)
        written.append(dst)
    return written


def execute(paths: list[Path], out_dir: Path, parameters: dict, root: str | Path | None = None) -> dict[str, float]:
    """Run each notebook with papermill, in the book's ``notebooks/`` folder; return seconds per notebook."""
    import papermill

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cwd = find_book(root) / NOTEBOOKS
    seconds = {}
    for path in paths:
        t0 = time.perf_counter()
        print(f"[reproduce] executing {path.name} with {parameters}", flush=True)
        papermill.execute_notebook(
            str(path),
            str(out_dir / path.name),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(cwd),
            progress_bar=False,
            # a lost kernel message must fail the build, not hang it
            execution_timeout=CELL_TIMEOUT,
        )
        seconds[path.stem] = time.perf_counter() - t0
        _hide_default_parameters(out_dir / path.name)
        print(f"[reproduce] {path.name}: {seconds[path.stem]:.1f} s", flush=True)
    return seconds


def _hide_default_parameters(path: Path) -> None:
    """Take both parameter cells (the defaults and papermill's injected ones) off the page.

    They are plumbing: each chapter says in prose which weights and profile its results
    come from. The cells stay in the executed notebook (Colab, Binder, nbval run them).
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, path)


def glued(path: Path, key: str) -> tuple[str, str | bytes]:
    """The value a notebook glued (``myst_nb.glue``) under ``key``: ``(mime type, data)``.

    An image comes back as bytes, Markdown or text as str. Raises ``KeyError`` when the
    executed notebook holds no such key.
    """
    import base64

    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook", {})
            if meta.get("name") != key:
                continue
            prefix = meta.get("mime_prefix", "")
            for mime in ("image/png", "text/markdown", "text/plain"):
                if prefix + mime in out.get("data", {}):
                    data = out["data"][prefix + mime]
                    data = "".join(data) if isinstance(data, list) else data
                    return mime, base64.b64decode(data) if mime == "image/png" else data
    raise KeyError(f"{path.name} glues no {key!r}")


def export_intro(executed: Path, out_dir: Path) -> list[Path]:
    """Write the chapter results the introduction shows (:data:`INTRO_EXPORTS`) from the executed
    notebooks in ``executed`` to ``out_dir``.

    Chapters whose executed notebook is missing are skipped (a partial ``--only`` run).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (chapter, key), name in INTRO_EXPORTS.items():
        path = Path(executed) / f"{chapter}.ipynb"
        if not path.exists():
            continue
        mime, data = glued(path, key)
        dst = out_dir / name
        if mime == "image/png":
            dst.write_bytes(data)
        else:
            dst.write_text(data.strip() + "\n")
        written.append(dst)
    return written


def build_book(warnings_as_errors: bool = True, root: str | Path | None = None) -> Path:
    """``jupyter-book build`` the book at ``root`` (:func:`find_book`); return the HTML folder."""
    root = find_book(root)
    # the console script lives beside this interpreter (the package has no __main__)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--path-output", str(root)]
    if warnings_as_errors:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    return root / "_build" / "html"


def reproduce(profile: str = "quick", book: bool = True, only: list[str] | None = None, seed: int = 0,
              root: str | Path | None = None) -> dict[str, float]:
    """Convert, execute (papermill) and, unless told not to, build the book at ``root`` (:func:`find_book`)."""
    from bamf_lib.config import get_profile

    get_profile(profile)  # fail early on an unknown name
    root = find_book(root)
    require_data()  # ... and on missing data, before the first notebook
    staging = root / "build" / "notebooks"
    paths = convert(staging, only, root)
    seconds = execute(paths, root / EXECUTED, {"profile": profile, "seed": seed}, root)
    export_intro(root / EXECUTED, root / GENERATED)
    if book:
        t0 = time.perf_counter()
        html = build_book(root=root)
        seconds["jupyter-book build"] = time.perf_counter() - t0
        print(f"[reproduce] book: {html / 'index.html'}", flush=True)
    total = sum(seconds.values())
    print(f"[reproduce] total {total:.1f} s: " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()), flush=True)
    return seconds


if __name__ == "__main__":  # python -m bamf_lib.book.reproduce convert OUT_DIR
    if len(sys.argv) == 3 and sys.argv[1] == "convert":
        for p in convert(Path(sys.argv[2])):
            print(p)
    else:
        sys.exit("usage: python -m bamf_lib.book.reproduce convert OUT_DIR")
