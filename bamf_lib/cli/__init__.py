"""The ``bamf`` command line: ``fuse``, ``metrics``, ``train``, ``evaluate``, ``reproduce``, ``data``.

:mod:`~bamf_lib.cli.main` parses the arguments and turns errors into one-line messages and exit
statuses; each subcommand's work is in a module of its own (:mod:`~bamf_lib.cli.fuse` and the
others), which resolves the networks once and hands them to the library.  This is the top of the
dependency graph: nothing in ``bamf_lib`` imports it.  ``main`` is re-exported here for the
``bamf`` console script and ``python -m bamf_lib.cli``.
"""

from bamf_lib.cli.main import main

__all__ = ["main"]
