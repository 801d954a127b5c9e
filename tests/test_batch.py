"""``bamf fuse --batch DIR`` and ``--list FILE``: many stacks in one process (stand-in networks)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bamf_lib.cli import main
from bamf_lib.fusion.batch import stacks_in_list

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def shoot(tmp_path, stand_in_nets, textured_pair):
    """shoot/ with stacks bee (2 images), fern (3), lone (1 image), torn (a file that is no image)."""
    a, b, _, _ = textured_pair(colour=True)
    root = tmp_path / "shoot"
    for name, images in (("bee", [a, b]), ("fern", [a, b, a]), ("lone", [a]), ("torn", [a])):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(root / name / f"{i}.png")
    (root / "torn" / "1.jpg").write_bytes(b"not a jpeg")
    (root / "notes.txt").write_text("not a stack")
    return root


def run(capsys, *argv):
    rc = main(["fuse", *map(str, argv)])
    return rc, capsys.readouterr().err


def test_a_folder_of_stacks_fuses_the_good_ones_and_reports_the_bad(shoot, tmp_path, capsys):
    rc, err = run(capsys, "--batch", shoot, "-o", tmp_path / "out", "-q")
    assert rc == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bee.png", "fern.png"]
    fern = np.asarray(Image.open(tmp_path / "out" / "fern.png")).shape  # 3 frames: aligned, cropped
    assert fern[2] == 3 and 92 <= fern[0] <= 96 and 124 <= fern[1] <= 128
    lines = err.strip().splitlines()
    assert any(line.startswith("bamf fuse: failed lone") and "at least two" in line for line in lines)
    assert any(line.startswith("bamf fuse: failed torn") and "1.jpg" in line for line in lines)
    assert lines[-1] == ("bamf fuse: 4 stacks: 2 fused, 0 skipped (output exists; --force replaces it), 2 failed")


def test_a_second_run_skips_what_is_done_unless_forced(shoot, tmp_path, capsys):
    run(capsys, "--batch", shoot, "-o", tmp_path / "out", "-q")
    done = tmp_path / "out" / "bee.png"
    done.write_bytes(b"kept")
    rc, err = run(capsys, "--batch", shoot, "-o", tmp_path / "out", "-q")
    assert rc == 2 and "0 fused, 2 skipped" in err and done.read_bytes() == b"kept"
    rc, err = run(capsys, "--batch", shoot, "-o", tmp_path / "out", "-q", "--force")
    assert "2 fused, 0 skipped" in err and np.asarray(Image.open(done)).shape == (96, 128, 3)


def test_all_good_stacks_exit_zero_and_default_to_beside_the_stacks(shoot, capsys):
    for bad in ("lone", "torn"):
        for f in (shoot / bad).iterdir():
            f.unlink()
        (shoot / bad).rmdir()
    rc, err = run(capsys, "--batch", shoot, "-q")  # default: beside the stacks
    assert rc == 0 and (shoot / "bee.png").exists() and (shoot / "fern.png").exists()


def test_a_list_file_with_quotes_comments_and_relative_paths(shoot, tmp_path, capsys):
    (shoot / "bee" / "a b.png").write_bytes((shoot / "bee" / "0.png").read_bytes())
    listing = shoot / "stacks.txt"
    listing.write_text(
        "# bee twice\n'bee/a b.png' bee/1.png -> out/one.png\n\nbee/0.png bee/1.png -> out/two.jpg  # jpeg\n"
    )
    rc, err = run(capsys, "--list", listing, "-q")
    assert rc == 0, err
    assert (shoot / "out" / "one.png").exists() and (shoot / "out" / "two.jpg").exists()


@pytest.mark.parametrize(
    "line, words",
    [
        ("a.png b.png out.png", "expected"),
        ("a.png -> ", "expected"),
        ("'a.png b.png -> o.png", "l.txt:1: No closing"),
        ("a.png -> o.png -> p.png", "expected"),
    ],
)
def test_a_malformed_list_line_is_named(tmp_path, line, words):
    (tmp_path / "l.txt").write_text(line + "\n")
    with pytest.raises(ValueError, match=words):
        stacks_in_list(tmp_path / "l.txt")


def test_two_stacks_writing_one_file_both_fail(shoot, capsys):
    listing = shoot / "dup.txt"
    listing.write_text("bee/0.png bee/1.png -> same.png\nfern/0.png fern/1.png -> same.png\n")
    rc, err = run(capsys, "--list", listing, "-q")
    assert rc == 2 and "more than one stack" in err and not (shoot / "same.png").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--batch", "{shoot}", "--list", "{shoot}/x.txt"], "not both"),
        (["--batch", "{shoot}", "{shoot}/bee/0.png"], "no source images"),
        (["--batch", "{shoot}", "--depth-map", "d.png"], "one stack"),
        (["--list", "{shoot}/x.txt", "-o", "o.png"], "drop -o"),
        (["--batch", "{shoot}/notes.txt"], "not a folder"),
        (["{shoot}/bee/0.png", "{shoot}/bee/1.png"], "-o OUTPUT"),
    ],
)
def test_batch_usage_errors_are_one_line(shoot, capsys, argv, words):
    rc, err = run(capsys, *(a.format(shoot=shoot) for a in argv))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and words in err


def _synthetic_stacks(tmp_path, *, seed, size=None):
    """shoot/s0 .. s3: four synthetic pairs (a.png, b.png) for the shipped networks, resized to
    ``size`` (width, height) when given."""
    import cv2

    from bamf_lib.evaluation.groundtruth import groundtruth_set

    root = tmp_path / "shoot"
    for i, pair in enumerate(groundtruth_set(4, seed=seed)):
        (root / f"s{i}").mkdir(parents=True)
        for name, image in (("a.png", pair.a), ("b.png", pair.b)):
            if size is not None:
                image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
            Image.fromarray(image).save(root / f"s{i}" / name)
    return root


def test_stacks_fused_side_by_side_are_reported_in_order(tmp_path):
    """jobs > 1: a worker per stack; failures are collected, the report keeps the stacks' order."""
    import threading
    import time

    from bamf_lib.fusion.batch import Stack, run_batch

    stacks = [Stack((), tmp_path / f"{i}.png", f"s{i}") for i in range(6)]
    names, ready = set(), []

    def fuse_one(stack):
        names.add(threading.current_thread().name)
        time.sleep(0.05 if stack.name == "s0" else 0.0)  # s0 finishes after the others
        if stack.name in ("s1", "s4"):
            raise ValueError(f"{stack.name} is broken")
        ready.append(threading.current_thread().name)

    report = run_batch(stacks, fuse_one, progress=False, jobs=2, setup=lambda: ready.append("setup"))
    assert [s.name for s in report.fused] == ["s0", "s2", "s3", "s5"]
    assert [(s.name, str(e)) for s, e in report.failed] == [("s1", "s1 is broken"), ("s4", "s4 is broken")]
    assert report.exit_status() == 2 and ready.count("setup") == 2
    assert len(names) == 2 and all(n.startswith("bamf-stack") for n in names)
    with pytest.raises(ValueError, match="broken"):
        run_batch(stacks, fuse_one, progress=False, jobs=2, debug=True)


def test_jobs_fuse_exactly_what_one_job_fuses(tmp_path, capsys):
    """The shipped networks on ONNX Runtime, a thread each: the same images, bit for bit."""
    root = _synthetic_stacks(tmp_path, seed=7)
    for jobs in ("1", "2"):
        rc, err = run(capsys, "--batch", root, "-o", tmp_path / jobs, "-q", "--jobs", jobs)
        assert rc == 0, err
    for i in range(4):
        one, two = (np.asarray(Image.open(tmp_path / j / f"s{i}.png")) for j in ("1", "2"))
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--batch", "{shoot}", "--jobs", "0"], "at least 1"),
        (["{shoot}/bee/0.png", "{shoot}/bee/1.png", "-o", "{shoot}/f.png", "--jobs", "2"], "many stacks"),
    ],
)
def test_jobs_errors_are_one_line(shoot, capsys, argv, words):
    rc, err = run(capsys, *(a.format(shoot=shoot) for a in argv))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and words in err


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_batch_stops_early_and_keeps_what_it_finished(tmp_path, sig, status):
    """Four stacks over 1 MP, two workers (one fusing, one waiting for the cores): interrupted after
    the first output, the fusing stack stops between tiles and the waiting one never starts, so at
    most one more output appears (the one being written); without the stop there would be three."""
    root = _synthetic_stacks(tmp_path, seed=11, size=(1200, 1100))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bamf_lib.cli", "fuse", "--batch", str(root), "-o", str(out), "-q", "--jobs", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # as from a terminal
    deadline = time.monotonic() + 120
    while not (out.is_dir() and list(out.glob("s*.png"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == status
    written = sorted(p.name for p in out.iterdir())
    assert 1 <= len(written) <= 2 and all(n.startswith("s") and n.endswith(".png") for n in written), written
    for name in written:
        assert np.asarray(Image.open(out / name)).shape == (1100, 1200)
    if sig == signal.SIGINT:
        assert "run again to go on" in proc.stderr.read()
