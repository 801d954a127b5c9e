"""``bamf fuse`` end to end through ``bamf_lib.cli.main``, with stand-in networks."""

import numpy as np
import pytest
from PIL import Image

from bamf_lib.cli import main


@pytest.fixture
def folder(stand_in_folder):
    return stand_in_folder


def run(capsys, *argv):
    rc = main(["fuse", *map(str, argv)])
    return rc, capsys.readouterr().err


def assert_refused(rc, err, folder, before, *words):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bamf fuse: error:")
    for word in words:
        assert word in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == before  # no output, no temporary file


def test_fuses_a_pair_and_writes_the_decision_map(folder, capsys):
    rc, err = run(
        capsys, folder / "a.png", folder / "b.png", "-o", folder / "f.png", "--decision-map", folder / "d.png"
    )
    assert rc == 0 and "wrote" in err
    fused = np.asarray(Image.open(folder / "f.png"))
    dm = np.asarray(Image.open(folder / "d.png"))
    assert fused.shape == (96, 128, 3) and fused.dtype == np.uint8
    assert set(np.unique(dm)) == {0, 255}
    assert dm[:, :50].mean() < 10 and dm[:, 78:].mean() > 245  # A on the left, B on the right


def test_three_sources_scale_the_map_to_the_index(folder, capsys):
    a = np.asarray(Image.open(folder / "a.png"))
    Image.fromarray(a).save(folder / "c.png")
    rc, _ = run(
        capsys,
        folder / "a.png",
        folder / "b.png",
        folder / "c.png",
        "-o",
        folder / "f.png",
        "--decision-map",
        folder / "d.png",
        "-q",
    )
    assert rc == 0
    assert set(np.unique(np.asarray(Image.open(folder / "d.png")))) <= {0, 127, 254}


def test_existing_output_needs_force(folder, capsys):
    (folder / "f.png").write_bytes(b"old")
    before = sorted(p.name for p in folder.iterdir())
    rc, err = run(capsys, folder / "a.png", folder / "b.png", "-o", folder / "f.png")
    assert_refused(rc, err, folder, before, "exists", "--force")
    assert (folder / "f.png").read_bytes() == b"old"
    rc, _ = run(capsys, folder / "a.png", folder / "b.png", "-o", folder / "f.png", "--force", "-q")
    assert rc == 0 and np.asarray(Image.open(folder / "f.png")).shape == (96, 128, 3)


def test_existing_decision_map_needs_force(folder, capsys):
    (folder / "d.png").write_bytes(b"old")
    before = sorted(p.name for p in folder.iterdir())
    rc, err = run(
        capsys, folder / "a.png", folder / "b.png", "-o", folder / "f.png", "--decision-map", folder / "d.png"
    )
    assert_refused(rc, err, folder, before, "d.png", "exists")


def write_gray(folder, name, shape=(96, 128)):
    Image.fromarray(np.full(shape, 100, np.uint8)).save(folder / name)
    return folder / name


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda f: [f / "a.png"], ["at least two"]),
        (lambda f: [f / "a.png", f / "missing.png"], ["not found", "missing.png"]),
        (lambda f: [f / "a.png", (f / "x.png").write_bytes(b"not an image") and f / "x.png"], ["cannot read", "x.png"]),
        (lambda f: [f / "a.png", (f / "t.txt").write_text("hello") and f / "t.txt"], ["cannot read", "t.txt"]),
        (lambda f: [f / "a.png", write_gray(f, "g.png")], ["mix gray and colour"]),
        (lambda f: [write_gray(f, "g1.png"), write_gray(f, "g2.png", (96, 120))], ["differ in size", "g2.png"]),
        (lambda f: [write_gray(f, "s1.png", (8, 8)), write_gray(f, "s2.png", (8, 8))], ["smaller than", "patch"]),
    ],
    ids=["one-source", "missing", "corrupt", "text-file", "gray-and-colour", "sizes", "smaller-than-patch"],
)
def test_bad_sources_are_refused_with_one_line(folder, capsys, make, words):
    sources = make(folder)
    before = sorted(p.name for p in folder.iterdir())
    rc, err = run(capsys, *sources, "-o", folder / "f.png", "--decision-map", folder / "d.png")
    assert_refused(rc, err, folder, before, *words)


def test_transparent_alpha_is_refused(folder, capsys):
    rgba = np.dstack([np.asarray(Image.open(folder / "b.png")), np.full((96, 128), 255, np.uint8)])
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(folder / "alpha.png")
    before = sorted(p.name for p in folder.iterdir())
    rc, err = run(capsys, folder / "a.png", folder / "alpha.png", "-o", folder / "f.png")
    assert_refused(rc, err, folder, before, "transparent alpha", "alpha.png")


def test_sixteen_bit_sources_keep_their_depth_and_fuse_like_eight_bit(textured_pair, folder, capsys):
    a, b, _, _ = textured_pair()
    for name, img in (("a", a), ("b", b)):
        Image.fromarray(img).save(folder / f"{name}8.png")
        Image.fromarray(img.astype(np.uint16) * 257).save(folder / f"{name}16.png")
    assert run(capsys, folder / "a8.png", folder / "b8.png", "-o", folder / "f8.png", "-q")[0] == 0
    assert run(capsys, folder / "a16.png", folder / "b16.png", "-o", folder / "f16.png", "-q")[0] == 0
    f8, f16 = np.asarray(Image.open(folder / "f8.png")), np.asarray(Image.open(folder / "f16.png"))
    assert f16.dtype == np.uint16  # the output keeps the inputs' depth (issue 25), decided as the 8-bit pair
    assert np.array_equal(f8.astype(np.uint16) * 257, f16)


def test_unknown_output_format_is_refused_before_work(folder, capsys):
    before = sorted(p.name for p in folder.iterdir())
    rc, err = run(capsys, folder / "a.png", folder / "b.png", "-o", folder / "fused.xyz")
    assert_refused(rc, err, folder, before, "suffix", "fused.xyz")


def test_same_file_for_both_outputs_is_refused(folder, capsys):
    before = sorted(p.name for p in folder.iterdir())
    rc, err = run(
        capsys, folder / "a.png", folder / "b.png", "-o", folder / "f.png", "--decision-map", folder / "f.png"
    )
    assert_refused(rc, err, folder, before, "same file")


def test_parser_offers_the_documented_options():
    with pytest.raises(SystemExit):
        main(["fuse", "a.png", "b.png", "-o", "f.png", "--path", "slow"])
    with pytest.raises(SystemExit):
        main(["fuse", "a.png", "b.png", "-o", "f.png", "--device", "tpu"])


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys, textured_pair):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    folder = tmp_path  # the real networks: the device is resolved when they load
    for name, image in zip(("a.png", "b.png"), textured_pair(colour=True)[:2]):
        Image.fromarray(image).save(folder / name)
    before = sorted(p.name for p in folder.iterdir())
    rc, err = run(capsys, folder / "a.png", folder / "b.png", "-o", folder / "f.png", "--device", "cuda")
    assert_refused(rc, err, folder, before, "CUDA")


def test_fuse_with_weights_from_a_training_folder(tmp_path, monkeypatch):
    """`--weights DIR` takes the networks `bamf train --out DIR` wrote; a missing one is a clear error."""
    import shutil

    from bamf_lib.runtime.locate import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "initial.safetensors").is_file():
        pytest.skip("no shipped weights to copy")
    runs = tmp_path / "runs"
    runs.mkdir()
    for net in ("initial", "boundary"):  # the graphs `python -m bamf_lib.nets.export runs` would write
        shutil.copy(WEIGHTS_DIR / f"{net}.onnx", runs / f"cpu-{net}.onnx")
    shutil.copy(WEIGHTS_DIR / "initial.safetensors", runs / "cpu-initial.safetensors")
    rng = np.random.default_rng(0)
    src = [tmp_path / "a.png", tmp_path / "b.png"]
    for p in src:
        Image.fromarray(rng.integers(0, 256, (80, 90), dtype=np.uint8)).save(p)
    code = main(["fuse", *map(str, src), "-o", str(tmp_path / "f.png"), "--weights", str(runs), "-q"])
    assert code == 2 and not (tmp_path / "f.png").exists()  # no boundary net in runs/
    shutil.copy(WEIGHTS_DIR / "boundary.safetensors", runs / "cpu-boundary.safetensors")
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "f.png"), "--weights", str(runs), "-q"]) == 0
    assert np.asarray(Image.open(tmp_path / "f.png")).shape == (80, 90)
    assert main(["fuse", *map(str, src), "-o", str(tmp_path / "g.png"), "--weights", str(tmp_path / "nope")]) == 2


def test_swap_average_reaches_the_fusion(folder, capsys, monkeypatch):
    """--swap-average hands fusion scorers of both orders (and only then)."""
    from bamf_lib.fusion import pipeline
    from bamf_lib.fusion.scorers import SwapAveraged

    seen = []
    real = pipeline.fuse

    def spy(sources, **kw):
        seen.append(type(kw["initial"]) is SwapAveraged and type(kw["boundary"]) is SwapAveraged)
        return real(sources, **kw)

    monkeypatch.setattr(pipeline, "fuse", spy)
    for k, extra in enumerate(([], ["--swap-average"])):
        rc, _ = run(capsys, folder / "a.png", folder / "b.png", "-o", folder / f"f{k}.png", "-q", *extra)
        assert rc == 0
    assert seen == [False, True]
