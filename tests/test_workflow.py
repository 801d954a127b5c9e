"""The Pages workflow (.github/workflows/book.yml): valid, and its data and build steps dry-run here.

The dry run plays the workflow's own ``run:`` lines against the upstream-shaped server of
``_upstream_server`` (its registry standing in for the real one, a temporary folder for
``~/.cache/bamf``): fetch, check, then the book command up to its first notebook.
"""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from bamf_lib.book import reproduce

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _validate(path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _steps() -> dict:
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]
    return job, {s["id"]: s for s in job["steps"] if "id" in s}


def test_the_workflow_is_valid_and_a_broken_one_is_not(tmp_path):
    result = _validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert _validate(broken).returncode != 0


def test_the_workflow_fetches_caches_and_builds_with_the_bamf_commands():
    job, steps = _steps()
    assert job["env"]["BAMF_DATA_DIR"] == ""  # downloads, never a local copy
    order = [s.get("id") or s.get("uses", "").split("@")[0] for s in job["steps"]]
    assert (
        order.index("setup")
        < order.index("actions/cache")
        < order.index("data")
        < order.index("check")
        < order.index("book")
    ), order
    cache = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert (
        cache["with"]["path"] == "~/.cache/bamf" and "hashFiles('bamf_lib/data/registry.txt')" in cache["with"]["key"]
    )
    assert steps["data"]["run"].strip() == ".venv/bin/bamf data fetch"
    assert steps["book"]["run"].strip() == "make book PROFILE=quick"


def _run_step(step: dict, env: dict) -> subprocess.CompletedProcess:
    script = step["run"].replace(".venv/bin/bamf", f"{sys.executable} -m bamf_lib.cli")
    return subprocess.run(["bash", "-ec", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_dry_run_of_the_data_and_build_steps_against_a_local_server(tmp_path, monkeypatch, serve_upstream):
    server, registry_file, _ = serve_upstream(tampered=False)
    try:
        _, steps = _steps()
        cache = tmp_path / "home-cache-bamf"
        env = {
            **os.environ,
            "BAMF_DATA_DIR": "",
            "BAMF_REGISTRY": str(registry_file),
            "BAMF_CACHE_DIR": str(cache),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        fetched = _run_step(steps["data"], env)
        assert fetched.returncode == 0, fetched.stderr
        assert str(cache) in fetched.stdout and (cache / "grayscale" / "g_01_1.png").is_file()
        checked = _run_step(steps["check"], env)
        assert checked.returncode == 0 and " 0 missing, 0 wrong" in checked.stdout, checked.stdout + checked.stderr
        again = _run_step(steps["data"], env)  # a restored cache: verified, nothing downloaded
        requests = sum(server.requests.values())
        assert again.returncode == 0 and sum(server.requests.values()) == requests
        make = subprocess.run(
            ["make", "-n", *steps["book"]["run"].split()[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "bamf reproduce --profile quick" in make.stdout, make.stdout + make.stderr
        for key, value in env.items():  # the book command's data gate, in this process, with the step's env
            if key.startswith("BAMF_"):
                monkeypatch.setenv(key, value)
        assert reproduce.require_data() == cache
        assert sum(server.requests.values()) == requests
    finally:
        server.shutdown()
