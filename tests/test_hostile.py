"""Careless and hostile input through the CLI: every failure is one line, exit status 2,
naming the file and the fix; nothing is left behind (issue 16)."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bamf_lib.fusion.pipeline
from bamf_lib import io
from bamf_lib.cli import main
from bamf_lib.io import read_image, write_image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(stand_in_folder):
    return stand_in_folder


def refused(capsys, argv, *words, status=2):
    """Run the CLI; it must fail with one line holding ``words``."""
    rc = main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "%|" not in line]  # not progress bars
    assert rc == status, err
    assert len(err) == 1, err
    for word in words:
        assert str(word) in err[0], err[0]
    return err[0]


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` (its pixel data cut short)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# ------------------------------------------------------------------ pixel budget
@pytest.mark.parametrize("side", [12000, 40000])
def test_pixel_budget_refuses_a_declared_giant_before_decoding(folder, capsys, side):
    bomb = folder / "bomb.png"
    bomb.write_bytes(_png_header(side, side))
    t0 = time.perf_counter()
    refused(capsys, ["fuse", bomb, folder / "a.png", "-o", folder / "f.png"], bomb, "pixel budget", "--max-pixels")
    assert time.perf_counter() - t0 < 5  # from the header: nothing decoded
    assert not (folder / "f.png").exists()
    assert Image.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)  # Pillow's own limit restored


def test_max_pixels_moves_the_budget(folder, capsys):
    a = folder / "a.png"  # 96 x 128 = 12288 pixels
    refused(capsys, ["fuse", a, folder / "b.png", "-o", folder / "f.png", "--max-pixels", "12000"], a, "12,000")
    assert main(["fuse", str(a), str(folder / "b.png"), "-o", str(folder / "f.png"), "--max-pixels", "12288"]) == 0
    (folder / "big.png").write_bytes(_png_header(12000, 12000))
    with pytest.raises(io.PixelBudgetError, match="144,000,000 pixels"):
        read_image(folder / "big.png")
    with pytest.raises(io.PixelBudgetError, match="over the pixel budget of 1,000 pixels"):
        read_image(folder / "a.png", max_pixels=1000)


# ------------------------------------------------------------------ EXIF orientation
def _tagged_jpeg(path: Path, display: np.ndarray, orientation: int) -> None:
    """Store ``display`` so that a viewer honouring ``orientation`` shows it upright."""
    stored = {1: display, 6: np.rot90(display, 1), 8: np.rot90(display, -1), 3: np.rot90(display, 2)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=98, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_on_read(textured_pair, tmp_path, orientation):
    display = textured_pair(h=40, w=56, colour=True)[0]
    _tagged_jpeg(tmp_path / "p.jpg", display, orientation)
    with Image.open(tmp_path / "p.jpg") as im:
        raw = np.asarray(im)
    got = read_image(tmp_path / "p.jpg")
    assert got.shape == display.shape
    np.testing.assert_array_equal(got, np.rot90(raw, {3: 2, 6: -1, 8: 1}[orientation]))


def test_tagged_pair_fuses_as_displayed_even_when_tags_disagree(textured_pair, folder, capsys):
    a, b, _, _ = textured_pair(h=96, w=128, colour=True)  # displayed landscape 128 x 96
    for tags in ((6, 6), (6, 1), (8, 3)):
        pa, pb, out = folder / f"a{tags}.jpg", folder / f"b{tags}.jpg", folder / f"f{tags}.png"
        _tagged_jpeg(pa, a, tags[0])
        _tagged_jpeg(pb, b, tags[1])
        assert main(["fuse", str(pa), str(pb), "-o", str(out), "-q"]) == 0
        fused = np.asarray(Image.open(out))
        assert fused.shape == a.shape, tags  # as displayed, not sideways
        ra, rb = read_image(pa), read_image(pb)
        np.testing.assert_array_equal(fused, bamf_lib.fusion.pipeline.fuse([ra, rb], device="cpu").fused)
        # the focused halves win, as displayed: the left from a, the right from b
        np.testing.assert_array_equal(fused[:, :56], ra[:, :56])
        np.testing.assert_array_equal(fused[:, 72:], rb[:, 72:])


# ------------------------------------------------------------------ outputs
def test_output_equal_to_an_input_is_refused_even_with_force(folder, capsys):
    a = folder / "a.png"
    before = a.read_bytes()
    refused(capsys, ["fuse", a, folder / "b.png", "-o", a, "--force"], a, "never replaces an input")
    refused(
        capsys,
        ["fuse", a, folder / "b.png", "-o", folder / "f.png", "--decision-map", folder / "b.png", "--force"],
        "--decision-map",
        "b.png",
    )
    os.symlink(a, folder / "link.png")  # the same file under another name
    refused(capsys, ["fuse", a, folder / "b.png", "-o", folder / "link.png", "--force"], "link.png")
    assert a.read_bytes() == before


def test_output_that_is_a_folder_is_refused_even_with_force(folder, capsys):
    (folder / "out").mkdir()
    refused(
        capsys,
        ["fuse", folder / "a.png", folder / "b.png", "-o", folder / "out", "--force"],
        "is a folder",
        folder / "out" / "fused.png",
    )


def test_read_only_output_folder_is_refused_before_fusing(folder, capsys, monkeypatch):
    monkeypatch.setattr(
        bamf_lib.fusion.pipeline, "fuse", lambda *a, **k: pytest.fail("fused before checking the output")
    )
    if os.geteuid() == 0:  # root writes anywhere permissions allow; sysfs refuses even root
        target = Path("/sys/fused.png")
    else:
        (folder / "ro").mkdir(mode=0o555)
        target = folder / "ro" / "fused.png"
    refused(
        capsys,
        ["fuse", folder / "a.png", folder / "b.png", "-o", target],
        target.parent,
        "cannot write",
        "writable folder",
    )


def test_a_folder_as_input_is_not_reported_missing(folder, capsys):
    refused(capsys, ["fuse", folder, folder / "b.png", "-o", folder / "f.png"], folder, "is a folder")


def test_257_sources_are_refused_before_any_reading(folder, capsys, monkeypatch):
    monkeypatch.setattr(bamf_lib.io, "read_image", lambda *a, **k: pytest.fail("read before counting"))
    refused(capsys, ["fuse", *[folder / "a.png"] * 257, "-o", folder / "f.png"], "257 sources", "256", "in groups")
    with pytest.raises(ValueError, match="257 sources"):
        bamf_lib.fusion.pipeline.fuse([np.zeros((8, 8), np.uint8)] * 257)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_outputs_follow_the_umask_and_keep_a_replaced_files_mode(folder, umask, mode):
    old = os.umask(umask)
    try:
        assert main(["fuse", str(folder / "a.png"), str(folder / "b.png"), "-o", str(folder / "f.png"), "-q"]) == 0
        assert (folder / "f.png").stat().st_mode & 0o777 == mode
        os.chmod(folder / "f.png", 0o604)
        assert (
            main(["fuse", str(folder / "a.png"), str(folder / "b.png"), "-o", str(folder / "f.png"), "-q", "--force"])
            == 0
        )
        assert (folder / "f.png").stat().st_mode & 0o777 == 0o604
    finally:
        os.umask(old)


def test_jpeg_output_is_quality_95_without_subsampling(textured_pair, tmp_path):
    image = textured_pair(colour=True)[2]
    write_image(tmp_path / "f.jpg", image)
    Image.fromarray(image).save(tmp_path / "ref.jpg", quality=95, subsampling=0)
    assert (tmp_path / "f.jpg").read_bytes() == (tmp_path / "ref.jpg").read_bytes()


# a child that starts `bamf fuse` and stops inside the write, its temporary file on disk
_STALLED_WRITE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import pytest
    import PIL.Image
    from conftest import StandInScorer  # the stand-in networks of the fixtures
    from bamf_lib.cli import main
    from bamf_lib.fusion import scorers
    mp = pytest.MonkeyPatch()
    mp.setattr(scorers, "load_scorer", lambda net, weights=None, **kw: StandInScorer())
    def stalled_save(self, fp, format=None, **kw):
        open(fp, "wb").write(b"half an image")
        print("writing", flush=True)
        time.sleep(60)
    mp.setattr(PIL.Image.Image, "save", stalled_save)
    sys.exit(main(sys.argv[1:]))
    """
)


def _stall(folder: Path) -> subprocess.Popen:
    script = folder / "stall.py"
    script.write_text(_STALLED_WRITE.format(tests=str(REPO / "tests")))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "fuse",
            str(folder / "a.png"),
            str(folder / "b.png"),
            "-o",
            str(folder / "out" / "f.png"),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        # as from a terminal: a test run started in the background (CI, nohup)
        # ignores SIGINT, and a child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
    temporaries = list((folder / "out").glob(".f.png.bamf-tmp-*"))
    assert len(temporaries) == 1
    return proc


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_temporary_file_is_removed_on_sigterm_and_sigint(folder, sig, status):
    proc = _stall(folder)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == status
    assert os.listdir(folder / "out") == []


def test_stale_temporary_of_a_killed_run_is_cleaned_by_the_next_write(folder):
    proc = _stall(folder)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stale = list((folder / "out").glob(".f.png.bamf-tmp-*"))
    assert len(stale) == 1
    mine = folder / "out" / f".g.png.bamf-tmp-{os.getpid()}-0123abcd.png"  # a live writer's: kept
    mine.write_bytes(b"in progress")
    remote = folder / "out" / ".h.png.bamf-tmp-1-0123abcd-h00000000.png"  # another host's: its pid means nothing here
    remote.write_bytes(b"in progress on another machine")
    write_image(folder / "out" / "other.png", np.zeros((4, 4), np.uint8))
    assert sorted(p.name for p in (folder / "out").iterdir()) == sorted(["other.png", mine.name, remote.name])


# ------------------------------------------------------------------ unexpected errors
def test_unexpected_error_is_one_line_with_a_debug_hint(folder, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something\ninside broke")

    monkeypatch.setattr(bamf_lib.fusion.pipeline, "fuse", broken)
    argv = ["fuse", folder / "a.png", folder / "b.png", "-o", folder / "f.png"]
    line = refused(capsys, argv, "RuntimeError", "something inside broke", "--debug", status=1)
    assert "Traceback" not in line
    with pytest.raises(RuntimeError, match="inside broke"):
        main([str(a) for a in argv] + ["--debug"])
    with pytest.raises(RuntimeError):
        main(["--debug"] + [str(a) for a in argv])


# ------------------------------------------------------------------ metrics
def test_metrics_on_constant_images_is_one_line(tmp_path, capsys):
    flat = np.full((32, 32), 128, np.uint8)
    for name in ("a", "b", "f"):
        Image.fromarray(flat).save(tmp_path / f"{name}.png")
    refused(
        capsys,
        ["metrics", tmp_path / "a.png", tmp_path / "b.png", tmp_path / "f.png"],
        "metrics: error",
        "Q_MI is undefined",
        tmp_path / "a.png",
        "constant",
        "some detail",
    )


# ------------------------------------------------------------------ checkpoints
def _checkpoint(folder: Path) -> Path:
    from bamf_lib.config import TrainConfig
    from bamf_lib.nets.checkpoint import rng_state, save_checkpoint

    model = torch.nn.Linear(2, 2)
    path = folder / "quick-initial" / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(
        path,
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        epoch=1,
        epochs=2,
        samples_seen=4,
        log=[],
        cfg=TrainConfig(),
        rng_ranks=[rng_state()],
    )
    return path


class _Payload:
    """A pickled object in place of a checkpoint: must never be unpickled."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("damage", ["empty", "truncated", "pickled", "foreign"])
def test_damaged_checkpoint_is_refused_with_its_path_and_no_resume(tmp_path, capsys, damage):
    path = _checkpoint(tmp_path)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "pickled":
        torch.save({"model": _Payload()}, path)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    line = refused(capsys, ["train", "--out", tmp_path, "-q", "--device", "cpu"], path, "--no-resume")
    assert "weights_only=False" not in line and "pwned" not in line


# ------------------------------------------------------------------ weights headers
def _weights(folder: Path, *, config_edit=None, tensor_edit=None) -> Path:
    """Shipped-format weights for a small net, with the header's config or a tensor changed."""
    from safetensors.torch import save_file

    from bamf_lib.config import ModelConfig
    from bamf_lib.nets.models import build_model

    model = build_model(ModelConfig(depth=8, width=4, patch_size=16))
    config = json.loads(json.dumps(model.config.__dict__))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if config_edit:
        config.update(config_edit)
    if tensor_edit:
        tensor_edit(state)
    folder.mkdir(exist_ok=True)
    for net in ("initial", "boundary"):
        save_file(state, str(folder / f"{net}.safetensors"), metadata={"config": json.dumps(config), "metadata": "{}"})
    return folder / "initial.safetensors"


def _cut_first_conv(state):
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = state[key][:, :1].contiguous()


@pytest.mark.parametrize(
    "edit, words",
    [
        ({"config_edit": {"colour": "red"}}, ["unknown config key", "colour"]),
        ({"config_edit": {"width": 20000}}, ["width=20000", "outside"]),
        ({"config_edit": {"depth": "deep"}}, ["depth='deep'"]),
        ({"tensor_edit": _cut_first_conv}, ["shape", "the config needs"]),
        ({"tensor_edit": lambda s: s.pop(sorted(s)[0])}, ["missing"]),
    ],
)
def test_hostile_weights_header_is_refused_in_one_line(textured_pair, tmp_path, capsys, edit, words):
    path = _weights(tmp_path / "w", **edit)
    a, b, _, _ = textured_pair()
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    refused(
        capsys,
        [
            "fuse",
            tmp_path / "a.png",
            tmp_path / "b.png",
            "-o",
            tmp_path / "f.png",
            "--weights",
            tmp_path / "w",
            "--device",
            "cpu",
        ],
        path,
        *words,
    )


def test_hostile_width_is_refused_before_any_allocation(tmp_path):
    """A config that builds 17 G parameters (68 GB) while the file holds a few KB."""
    path = _weights(tmp_path / "w", config_edit={"width": 4096, "depth": 998})
    code = (
        "import resource, sys\nfrom bamf_lib.nets.weightfile import load_weights\ntry:\n    load_weights(sys.argv[1])\n"
        "except ValueError as e:\n    print(e)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    ).stdout.splitlines()
    assert "parameters, over the 100,000,000" in out[0]
    assert int(out[-1]) < 1500  # MB at peak: torch itself, nothing of the network


# ------------------------------------------------------------------ bamf evaluate
@pytest.fixture
def two_pairs(monkeypatch):
    import bamf_lib.evaluation.table1 as ev

    pairs = [p for p in ev.pair_set("grayscale10") if p.name in ("g_05", "g_10")]
    monkeypatch.setattr(ev, "pair_set", lambda name: pairs)
    monkeypatch.setattr(ev, "default_methods", lambda *a, **k: {"GF": "published:GF", "bamf": lambda s: s[1]})
    return ev


@pytest.mark.requires_data("grayscale")
def test_evaluate_recovers_from_a_failed_run_by_flag(two_pairs, tmp_path, capsys):
    ev = two_pairs
    fused = tmp_path / "fused"
    fused.mkdir()
    left = np.full((8, 8), 7, np.uint8)  # what a failed run left behind
    write_image(fused / "g_05.png", left)
    argv = ["evaluate", "--pairs", "grayscale10", "--save-fused", fused]
    refused(capsys, argv, fused / "g_05.png", "--existing skip", "--existing overwrite")
    assert main([str(a) for a in argv] + ["--existing", "skip"]) == 0
    np.testing.assert_array_equal(read_image(fused / "g_05.png"), left)
    assert sorted(os.listdir(fused)) == ["g_05.png", "g_10.png"]
    assert main([str(a) for a in argv] + ["--existing", "overwrite"]) == 0
    np.testing.assert_array_equal(read_image(fused / "g_05.png"), ev.load_sources(ev.pair_set("")[0])[1])


@pytest.mark.requires_data("grayscale")
def test_evaluate_save_fused_is_atomic_when_a_method_fails(two_pairs, tmp_path, monkeypatch, capsys):
    ev = two_pairs
    calls = []

    def second_pair_breaks(sources):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("method gave up")
        return sources[1]

    monkeypatch.setattr(ev, "default_methods", lambda *a, **k: {"bamf": second_pair_breaks})
    refused(capsys, ["evaluate", "--pairs", "grayscale10", "--save-fused", tmp_path / "fused"], "method gave up")
    assert os.listdir(tmp_path / "fused") == ["g_05.png"]  # whole, and no temporary file
    read_image(tmp_path / "fused" / "g_05.png")


@pytest.mark.requires_data("grayscale")
def test_evaluate_stops_at_a_tampered_data_file_naming_both_hashes(two_pairs, tmp_path, monkeypatch, capsys):
    from bamf_lib.data import datasets

    data = tmp_path / "data" / "grayscale"
    data.mkdir(parents=True)
    for name in ("g_05_1.png", "g_05_2.png", "g_10_1.png", "g_10_2.png"):
        (data / name).write_bytes((datasets.data_dir() / "grayscale" / name).read_bytes())
    tampered = data / "g_10_2.png"
    raw = bytearray(tampered.read_bytes())
    raw[-20] ^= 0xFF
    tampered.write_bytes(bytes(raw))
    monkeypatch.setenv("BAMF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(two_pairs, "default_methods", lambda *a, **k: {"bamf": lambda s: s[1]})
    expected = datasets.registry()["grayscale/g_10_2.png"]
    refused(capsys, ["evaluate", "--pairs", "grayscale10"], tampered, expected, datasets.file_hash(tampered))
