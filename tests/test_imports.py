"""The package's import graph: no cycle, and every import points down the floor plan.

Imports inside functions count too.  The floors, top to bottom:
cli -> book -> evaluation -> fusion -> nets -> runtime -> data -> ground floor (config, io ...):
a module may import its own floor and the floors below it, never one above.  The ONNX path of
``fuse()`` imports neither torch nor the exporter (checked in a fresh interpreter).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bamf_lib

PACKAGE = Path(bamf_lib.__file__).parent
#: floors from the ground up; a module not in a subpackage is on the ground floor
FLOORS = ("", "data", "runtime", "nets", "fusion", "evaluation", "book", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(_module_name(p) for p in PACKAGE.rglob("*.py") if _module_name(p))


def _source(module: str) -> str:
    path = PACKAGE.joinpath(*module.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()


def _resolve(name: str) -> str | None:
    """The bamf_lib module a dotted name (``bamf_lib.fusion.boundary.refine``) lives in."""
    parts = name.split(".")[1:]
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


def _imports(module: str) -> set[str]:
    """The bamf_lib modules ``module`` imports anywhere in its source (top level or in a function)."""
    found = set()
    for node in ast.walk(ast.parse(_source(module))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from bamf_lib.fusion import boundary" names a module; "from bamf_lib.x import y" a name in x
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {m for n in names if n.split(".")[0] == "bamf_lib" and (m := _resolve(n))}
    found.discard(module)
    return found


def _floor(module: str) -> int:
    top = module.split(".")[0]
    return FLOORS.index(top) if top in FLOORS else 0


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in graph:
        if m not in state and (found := visit(m)):
            return found
    return None


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {n}" for m, deps in graph.items() for n in deps if _floor(n) > _floor(m))


def test_the_walk_sees_imports_inside_functions_and_resolves_them_to_modules():
    assert "fusion.pipeline" in _imports("evaluation.table1")  # imported inside _bamf's closure only
    assert "evaluation.tables" in _imports("cli.evaluate")  # inside evaluate_cli
    assert "fusion.boundary" in _imports("fusion.pipeline")  # "from bamf_lib.fusion import boundary"
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert _upward({"data.sources": {"fusion.boundary"}, "fusion.boundary": {"config"}}) == [
        "data.sources -> fusion.boundary"
    ]


def test_bamf_lib_imports_form_no_cycle():
    graph = {m: _imports(m) for m in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_every_module_lives_on_a_floor_and_subpackages_depend_only_downwards():
    graph = {m: _imports(m) for m in MODULES if m != "__init__"}
    tops = {m.split(".")[0] for m in graph if "." in m}
    assert tops <= set(FLOORS), f"subpackages without a floor: {sorted(tops - set(FLOORS))}"
    assert _upward(graph) == []


def test_runtime_never_imports_torch_code():
    for module in (m for m in MODULES if m.split(".")[0] == "runtime"):
        tree = ast.parse(_source(module))
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not roots & {"torch", "safetensors", "onnx"}, module
        assert not {d for d in _imports(module) if d.split(".")[0] != "runtime" and _floor(d) >= _floor("runtime")}


@pytest.mark.parametrize("backend", ["auto", "onnx"])
def test_fusing_on_onnx_runtime_imports_neither_torch_nor_the_exporter(backend):
    code = (
        "import sys, numpy as np\n"
        "import bamf_lib, bamf_lib.cli.fuse\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.integers(0, 256, (80, 90), dtype=np.uint8)\n"
        f"bamf_lib.fuse([a, a[::-1].copy()], backend={backend!r}, device='cpu')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'safetensors', 'onnx')\n"
        "             or m.startswith('bamf_lib.nets'))\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
