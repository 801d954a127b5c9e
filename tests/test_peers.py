"""The classic pipeline (align_image_stack + enfuse) the benchmarks and the book set beside bamf."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bamf_lib.evaluation import peers


def _frames(tmp_path, n=3):
    rng = np.random.default_rng(0)
    sharp = cv2.GaussianBlur((rng.random((120, 160, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    paths = []
    for k in range(n):  # frame k sharp in the k-th vertical band
        f = cv2.GaussianBlur(sharp, (0, 0), 3)
        f[:, k * 160 // n : (k + 1) * 160 // n] = sharp[:, k * 160 // n : (k + 1) * 160 // n]
        paths.append(str(tmp_path / f"{k}.png"))
        cv2.imwrite(paths[-1], f)
    return paths, sharp


def test_a_missing_tool_is_named_with_its_package(tmp_path, monkeypatch):
    monkeypatch.setattr(peers.shutil, "which", lambda name: None if name == "enfuse" else "/usr/bin/" + name)
    assert not peers.have_classic()
    with pytest.raises(FileNotFoundError, match=r"enfuse not found.*apt-get install hugin-tools enfuse"):
        peers.run_classic(["a.png", "b.png"], tmp_path / "o.tif", tmp_path)


def test_the_command_lines_are_issue_25s():
    align, enfuse = peers.classic_commands(["a.jpg", "b.jpg"], "o.tif", "w")
    assert align[:4] == ["align_image_stack", "-m", "-a", "w/aligned_"] and align[4:] == ["a.jpg", "b.jpg"]
    assert enfuse[1:6] == list(peers.ENFUSE_FLAGS) and "--hard-mask" in enfuse and enfuse[-2] == "o.tif"


def test_a_failing_tool_reports_its_error(tmp_path, monkeypatch):
    monkeypatch.setattr(peers.shutil, "which", lambda name: "/usr/bin/" + name)

    class Failed:
        returncode, stderr = 1, "no control points found\n"

    with pytest.raises(RuntimeError, match="align_image_stack failed .exit 1.: no control points found"):
        peers.run_classic(["a.png"], tmp_path / "o.tif", tmp_path, run=lambda cmd, **kw: Failed())


@pytest.mark.skipif(not peers.have_classic(), reason="align_image_stack and enfuse are not installed")
def test_the_classic_pipeline_fuses_a_small_stack(tmp_path):
    paths, sharp = _frames(tmp_path)
    out = peers.run_classic(paths, tmp_path / "fused.tif", tmp_path / "work")
    fused = peers.read_output(out)
    assert fused.dtype == np.uint8 and fused.ndim == 3 and fused.shape[:2] == (120, 160)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    err = lambda im: np.abs(im[10:-10, 10:-10].astype(int) - cv2.cvtColor(sharp, cv2.COLOR_BGR2RGB)[10:-10, 10:-10])  # noqa: E731
    assert err(fused).mean() < 0.5 * err(cv2.cvtColor(blurred, cv2.COLOR_BGR2RGB)).mean()
