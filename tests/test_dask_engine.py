"""``bamf fuse --batch --engine dask``: a 2-worker LocalCluster on loopback (processes, one thread
each) fuses like the local engine, survives a worker killed mid-batch, and is refused when its
workers cannot read the inputs.  The shipped networks on small images; skipped without dask."""

import os
import signal
import sys
import threading
import time

import pytest
from PIL import Image

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from bamf_lib.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=40,
    ) as cluster:
        yield cluster


@pytest.fixture
def make_shoot(textured_pair):
    """``make_shoot(root, n)``: root/s00 .. , n textured colour pairs (a.png, b.png), each its own texture."""

    def make(root, n, size=(128, 96)):
        w, h = size
        for i in range(n):
            a, b, _, _ = textured_pair(h, w, colour=True, seed=i)
            (root / f"s{i:02d}").mkdir(parents=True)
            Image.fromarray(a).save(root / f"s{i:02d}" / "a.png")
            Image.fromarray(b).save(root / f"s{i:02d}" / "b.png")
        return root

    return make


def _fuse(capsys, *argv):
    rc = main(["fuse", *map(str, argv)])
    return rc, capsys.readouterr().err


def _fuse_dask(capsys, scheduler, shoot, out):
    return _fuse(capsys, "--batch", shoot, "-o", out, "-q", "--engine", "dask", "--scheduler", scheduler)


def _same_outputs(a, b):
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def test_a_two_worker_cluster_fuses_a_batch_as_the_local_engine_does(cluster, tmp_path, capsys, make_shoot):
    shoot = make_shoot(tmp_path / "shoot", 4)
    (shoot / "torn").mkdir()
    (shoot / "torn" / "a.png").write_bytes((shoot / "s00" / "a.png").read_bytes())
    (shoot / "torn" / "b.jpg").write_bytes(b"not a jpeg")
    rc, err = _fuse(capsys, "--batch", shoot, "-o", tmp_path / "local", "-q")
    assert rc == 2, err
    address = cluster.scheduler_address
    rc, err = _fuse_dask(capsys, address, shoot, tmp_path / "dask")
    lines = err.strip().splitlines()
    assert rc == 2 and any(line.startswith("bamf fuse: failed torn") and "b.jpg" in line for line in lines), err
    assert lines[-2].startswith("bamf fuse: seconds a stack: median ")
    assert lines[-1] == "bamf fuse: 5 stacks: 4 fused, 0 skipped (output exists; --force replaces it), 1 failed"
    assert _same_outputs(tmp_path / "local", tmp_path / "dask")
    rc, err = _fuse_dask(capsys, address, shoot, tmp_path / "dask")
    assert rc == 2 and "0 fused, 4 skipped" in err  # a rerun skips the finished stacks
    with distributed.Client(address) as client:
        # each worker loaded the two networks once (the plugin), ran them without torch, and the
        # plugin is gone with the batch
        from bamf_lib.runtime.onnx import _load_once

        loads = client.run(lambda: (_load_once.cache_info().misses, "torch" in sys.modules))
        assert set(loads.values()) == {(2, False)}, loads
        plugins = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
        assert not [name for name in plugins if name.startswith("bamf")], plugins


class _Blind(distributed.WorkerPlugin):
    """A worker that cannot see ``folder`` (as one without the shared filesystem)."""

    def __init__(self, folder):
        self.folder = str(folder)

    def setup(self, worker):
        import builtins

        self.open = builtins.open
        folder, real = self.folder, builtins.open

        def blind_open(file, *args, **kwargs):
            if str(file).startswith(folder):
                raise FileNotFoundError(2, "No such file or directory", str(file))
            return real(file, *args, **kwargs)

        builtins.open = blind_open

    def teardown(self, worker):
        import builtins

        builtins.open = self.open


def test_stack_options_reach_the_workers(cluster, tmp_path, capsys):
    """--scale, --reference and --swap-average travel with the tasks: a 3-frame stack fuses on the
    cluster as it does locally with the same options (and --scale and --swap-average each change
    the result, so the test can fail)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(2)
    sharp = cv2.resize(rng.integers(0, 256, (48, 64), dtype=np.uint8), (256, 192), interpolation=cv2.INTER_NEAREST)
    shoot = tmp_path / "shoot" / "s00"
    shoot.mkdir(parents=True)
    for k in range(3):
        f = cv2.GaussianBlur(sharp, (0, 0), 2.5)
        f[:, k * 85 : (k + 1) * 85] = sharp[:, k * 85 : (k + 1) * 85]
        Image.fromarray(f).save(shoot / f"{k}.png")
    opts = ["--scale", "0.5", "--no-align", "--reference", "1", "--swap-average"]
    local, dask_out, full, one_order = (tmp_path / d for d in ("local", "dask", "full", "one_order"))
    assert _fuse(capsys, "--batch", shoot.parent, "-o", local, "-q", *opts)[0] == 0
    assert (
        _fuse(
            capsys,
            "--batch",
            shoot.parent,
            "-o",
            dask_out,
            "-q",
            "--engine",
            "dask",
            "--scheduler",
            cluster.scheduler_address,
            *opts,
        )[0]
        == 0
    )
    assert _fuse(capsys, "--batch", shoot.parent, "-o", full, "-q", "--no-align", "--swap-average")[0] == 0
    assert _fuse(capsys, "--batch", shoot.parent, "-o", one_order, "-q", *opts[:-1])[0] == 0
    _same_outputs(local, dask_out)
    assert (local / "s00.png").read_bytes() != (full / "s00.png").read_bytes()
    assert (local / "s00.png").read_bytes() != (one_order / "s00.png").read_bytes()


def test_workers_that_cannot_read_the_inputs_are_refused_in_one_line(cluster, tmp_path, capsys, make_shoot):
    shoot = make_shoot(tmp_path / "shoot", 2)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with distributed.Client(cluster.scheduler_address) as client:
        client.register_plugin(_Blind(shoot), name="blind")
        try:
            rc, err = _fuse_dask(capsys, cluster.scheduler_address, shoot, tmp_path / "out")
        finally:
            client.unregister_worker_plugin("blind")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot use" in err and "s00/a.png" in err and "shared filesystem" in err
    assert not (tmp_path / "out").exists()


def test_a_worker_killed_mid_batch_loses_nothing(cluster, tmp_path, capsys, make_shoot):
    shoot = make_shoot(tmp_path / "shoot", 12, size=(256, 192))
    rc, err = _fuse(capsys, "--batch", shoot, "-o", tmp_path / "local", "-q")
    assert rc == 0, err
    out, killed = tmp_path / "dask", []

    def kill_a_busy_worker():
        with distributed.Client(cluster.scheduler_address) as client:
            pids = client.run(os.getpid)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = len(list(out.glob("s*.png")))
                busy = [
                    w
                    for w, keys in client.processing().items()
                    if w in pids and any(str(k).startswith("bamf-run_stack") for k in keys)
                ]
                if done and busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(done)
                    return
                time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    rc, err = _fuse_dask(capsys, cluster.scheduler_address, shoot, out)
    killer.join()
    assert killed and killed[0] < 12, killed  # killed while stacks were left
    assert rc == 0 and "12 stacks: 12 fused, 0 skipped" in err, err
    assert _same_outputs(tmp_path / "local", out)  # every output, byte-identical, no temporaries
    cluster.wait_for_workers(2, timeout=60)


def test_the_plain_tool_never_imports_dask():
    import subprocess

    code = (
        "import sys, bamf_lib.cli, bamf_lib.fusion.batch, bamf_lib.fusion.engines, bamf_lib.evaluation.table1; "
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--batch", "{root}", "--scheduler", "tcp://127.0.0.1:1"], "add --engine dask"),
        (
            ["{root}/s00/a.png", "{root}/s00/b.png", "-o", "{root}/f.png", "--engine", "dask"],
            "many stacks",
        ),
    ],
)
def test_engine_usage_errors_are_one_line(tmp_path, capsys, argv, words, make_shoot):
    root = make_shoot(tmp_path / "shoot", 1)
    rc, err = _fuse(capsys, *(a.format(root=root) for a in argv))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and words in err, err
