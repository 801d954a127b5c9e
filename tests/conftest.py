"""Shared test setup: the one ``requires_data`` marker.

``@pytest.mark.requires_data`` skips a test when ``BAMF_DATA_DIR`` is not set (or is not a
folder); ``@pytest.mark.requires_data("lytro/triple", ...)`` also when those files or
folders are missing in it.  ``pytest -m requires_data`` selects exactly these tests.
"""

from __future__ import annotations

import pytest

from bamf_lib.data import datasets


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_data"):
        root = datasets.data_dir()
        if root is None or not root.is_dir():
            pytest.skip("BAMF_DATA_DIR is not set: point it at the data folder (here /work/shared/data)")
        missing = [p for p in mark.args if not (root / p).exists()]
        if missing:
            pytest.skip(f"BAMF_DATA_DIR has no {missing[0]}")
