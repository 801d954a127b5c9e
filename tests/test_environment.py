"""The pip lock and the conda/Binder environment pin the same packages."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lock_pins():
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {l.strip() for l in lines if l.strip() and not l.startswith("#")}


def _environment_pip_pins():
    pins, in_pip = set(), False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        s = line.strip()
        if s == "- pip:":
            in_pip = True
            continue
        if in_pip and s.startswith("- ") and "==" in s:
            pins.add(s[2:].strip())
    return pins


def test_environment_yml_matches_lock():
    lock, env = _lock_pins(), _environment_pip_pins()
    assert lock, "requirements.lock is empty"
    assert lock == env, f"only in lock: {sorted(lock - env)}; only in environment.yml: {sorted(env - lock)}"


def test_installed_torch_is_the_locked_one():
    import torch

    pinned = [p.split("==")[1] for p in _lock_pins() if p.startswith("torch==")]
    assert pinned, "requirements.lock pins no torch"
    assert torch.__version__.split("+")[0] == pinned[0]


def test_jupyter_book_is_1x():
    jb = [p for p in _lock_pins() if p.lower().startswith("jupyter-book==")]
    assert jb and jb[0].split("==")[1].startswith("1."), jb
