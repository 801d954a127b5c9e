"""The pip lock, the conda/Binder environment and pyproject.toml agree, on versions and on torch's build."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _lock_pins():
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _lock_versions():
    return {canonicalize_name(p.split("==")[0]): Version(p.split("==")[1]) for p in _lock_pins()}


def _environment_pip_lines():
    lines, in_pip = [], False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        s = line.strip()
        if s == "- pip:":
            in_pip = True
        elif in_pip and s.startswith("- "):
            lines.append(s[2:].strip())
    return lines


def test_every_lock_line_is_an_exact_pin():
    bad = [p for p in _lock_pins() if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", p)]
    assert not bad and _lock_pins(), bad


def test_environment_yml_matches_lock():
    lock, env = _lock_pins(), {line for line in _environment_pip_lines() if "==" in line}
    assert lock == env, f"only in lock: {sorted(lock - env)}; only in environment.yml: {sorted(env - lock)}"


def test_installed_torch_is_the_locked_one():
    import torch

    pinned = [p.split("==")[1] for p in _lock_pins() if p.startswith("torch==")]
    assert pinned, "requirements.lock pins no torch"
    assert torch.__version__ == pinned[0], "the installed torch is not the locked build"


def test_pyproject_dependencies_admit_the_locked_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    locked = _lock_versions()
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in locked, f"{spec} (pyproject.toml) is not in requirements.lock"
        assert spec.specifier.contains(locked[name], prereleases=True), f"lock has {name}=={locked[name]}, not {spec}"


def test_torch_is_the_cpu_build_everywhere():
    assert "torch==2.13.0+cpu" in _lock_pins()  # the local version names the build; pip takes no other
    assert f"--extra-index-url {CPU_INDEX}" in _environment_pip_lines()
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH_INDEX ?= {CPU_INDEX}" in makefile and "$(TORCH_INDEX)" in makefile
    for doc in ("requirements.lock", "README.md"):
        assert CPU_INDEX in (ROOT / doc).read_text(), f"{doc} does not say where the CPU build comes from"
    assert not [p for p in _lock_pins() if p.startswith(("nvidia-", "triton=="))]


def test_jupyter_book_is_1x():
    assert _lock_versions()["jupyter-book"].major == 1
