"""Every chapter, as papermill executed it for the book: each notebook runs once per `make test`.

`make test` executes the chapters once (`bamf reproduce`: papermill, then the HTML book)
and runs pytest with ``BAMF_BOOK_REQUIRED=1``: these tests then read the executed copies in
``book/executed/`` instead of running the notebooks a second time (as nbval did).  Without
that variable and without an executed copy (a plain ``pytest tests``), they skip.
"""

import os
from pathlib import Path

import nbformat
import pytest

from bamf_lib.book import reproduce

REQUIRED = os.environ.get("BAMF_BOOK_REQUIRED") == "1"
BOOK = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("source", reproduce.notebook_sources(root=BOOK), ids=lambda p: p.stem)
def test_chapter_ran_to_the_end_without_error(source):
    copy = BOOK / reproduce.EXECUTED / f"{source.stem}.ipynb"
    if not copy.is_file():
        message = f"{copy} is missing: run `bamf reproduce` (make book) first"
        pytest.fail(message) if REQUIRED else pytest.skip(message)
    if REQUIRED:
        assert copy.stat().st_mtime >= source.stat().st_mtime, f"{copy.name} is older than {source.name}"
    nb = nbformat.read(copy, as_version=4)
    assert not nb.metadata["papermill"].get("exception"), f"{copy.name}: papermill recorded an exception"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and nb.metadata["papermill"]["parameters"].get("profile"), copy.name
    unrun = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unrun, f"{copy.name}: code cells {unrun} were not executed"
    errors = [o.get("ename") for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{copy.name}: cells raised {errors}"
