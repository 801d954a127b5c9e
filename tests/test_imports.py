"""The package's import graph has no cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import bamf_lib

PACKAGE = Path(bamf_lib.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The bamf_lib modules ``module`` imports anywhere in its source (top level or in a function)."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from bamf_lib import scoring" names modules; "from bamf_lib.x import y" the module x
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "bamf_lib" else [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "bamf_lib" and len(parts) > 1 and parts[1] in MODULES:
                found.add(parts[1])
    found.discard(module)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in graph:
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_walk_sees_imports_inside_functions():
    assert "fusion" in _imports("evaluation")  # imported inside _bamf's closure only
    assert "tables" in _imports("cli")  # inside evaluate_cli
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_bamf_lib_imports_form_no_cycle():
    graph = {m: _imports(m) for m in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
