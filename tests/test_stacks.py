"""Focus stacks: alignment, the joint N-frame decision, full-depth I/O with metadata, the
soft-cell score, ``bamf fuse`` on a stack, and the rendered ground-truth stacks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from bamf_lib import io as stack_io
from bamf_lib.cli.main import main
from bamf_lib.evaluation import soft_cells as stack_score
from bamf_lib.fusion import pipeline as fusion
from bamf_lib.fusion import stack as stack_fusion
from bamf_lib.fusion import stack_align


def _scene(h=160, w=192, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((h + 40, w + 40)).astype(np.float32), (0, 0), 1.2)


def _warped(scene, m, h=160, w=192):
    """The scene as a frame whose coordinates are ``m`` of the reference's (3 x 3)."""
    to_scene = np.array([[1.0, 0, 20], [0, 1.0, 20], [0, 0, 1]]) @ np.linalg.inv(m)
    img = cv2.warpAffine(scene, to_scene[:2], (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return np.clip(img * 255 * 3 - 255, 0, 255).astype(np.uint8)


def _sim(scale, dx, dy, c=(95.5, 79.5)):
    m = np.eye(3)
    m[:2, :2] *= scale
    m[:2, 2] = np.array(c) * (1 - scale) + [dx, dy]
    return m


def test_align_stack_recovers_breathing_and_crops_the_common_area():
    scene = _scene()
    truth = [_sim(1.0, 0, 0), _sim(1.01, 1.5, -1.0), _sim(1.02, 2.5, -0.5)]
    frames = [_warped(scene, m) for m in truth]
    al = stack_align.align_stack(frames)
    errs = [stack_align.corner_error(al.warps[k], truth[k], (160, 192)) for k in range(3)]
    assert max(errs) < 0.3, errs
    y0, y1, x0, x1 = al.crop
    assert (y1 - y0) * (x1 - x0) < 0.97 * 160 * 192  # magnified frames: a smaller common area
    assert al.apply(frames[0], 0).shape == al.out_shape  # the reference is cropped, not resampled
    np.testing.assert_array_equal(al.apply(frames[0], 0), frames[0][y0:y1, x0:x1])
    assert len(al.residuals) == 2 and max(al.residuals) < 1.0
    mid = stack_align.align_stack(frames, reference=1)
    assert np.allclose(mid.warps[1], np.eye(3))


def test_align_stack_rejects_bad_reference():
    with pytest.raises(ValueError, match="reference"):
        stack_align.align_stack([np.zeros((64, 64), np.uint8)] * 2, reference=5)


def test_remove_small_labels_merges_into_surroundings():
    idx = np.zeros((40, 40), np.uint8)
    idx[:, 20:] = 2
    idx[10, 5] = 1  # a speck
    out = stack_fusion.remove_small_labels(idx, 0.01)
    assert out[10, 5] == 0 and (out[:, 20:] == 2).all()


def _three_frames(h=96, w=144):
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 256, (h, w), dtype=np.uint8)
    blur = [sharp] + [cv2.GaussianBlur(sharp, (0, 0), s) for s in (2.0, 4.0)]
    frames = []
    for k in range(3):  # frame k is sharp in the k-th third, blurrier the farther from it
        f = np.empty_like(sharp)
        for third in range(3):
            f[:, third * 48 : (third + 1) * 48] = blur[abs(third - k)][:, third * 48 : (third + 1) * 48]
        frames.append(f)
    return frames


def test_fuse_stack_picks_the_sharp_frame_of_each_region():
    frames = _three_frames()
    r = stack_fusion.fuse_stack(frames, align=False, device="cpu")
    for k in range(3):
        assert (r.index[:, k * 48 + 12 : k * 48 + 36] == k).mean() > 0.95
    assert r.fused.shape == frames[0].shape and r.fused.dtype == np.uint8


def test_fuse_stack_two_frames_is_todays_fuse_exactly():
    a, b, _ = _three_frames()
    r = stack_fusion.fuse_stack([a, b], align=False, device="cpu")
    q = fusion.fuse([a, b], device="cpu")
    np.testing.assert_array_equal(r.fused, q.fused)
    np.testing.assert_array_equal(r.index, q.decision_map)


def test_fuse_stack_keeps_16_bits():
    frames = [f.astype(np.uint16) * 256 + 3 for f in _three_frames()]
    r = stack_fusion.fuse_stack(frames, align=False, device="cpu")
    assert r.fused.dtype == np.uint16
    assert set(np.unique(r.fused % 256)) == {3}  # every pixel is a frame's 16-bit value


def test_write_and_read_16_bit_with_icc_and_exif(tmp_path):
    img = (np.arange(48 * 64 * 3, dtype=np.uint32).reshape(48, 64, 3) * 37 % 65536).astype(np.uint16)
    exif = Image.Exif()
    exif[0x010F] = "bamf-test-camera"
    icc = b"\x00" * 128 + b"fake-icc"
    for suffix in (".png", ".tif"):
        out = tmp_path / f"f{suffix}"
        stack_io.write_frame(out, img, exif=exif.tobytes(), icc_profile=icc)
        back = stack_io.read_frame(out)
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back, img)
        assert stack_io.read_metadata(out)["icc_profile"] == icc
    assert Image.open(tmp_path / "f.png").getexif()[0x010F] == "bamf-test-camera"


def test_soft_cell_share_counts_cells_left_soft():
    rng = np.random.default_rng(0)
    sharp = (rng.random((96, 96)) * 255).astype(np.uint8)
    soft = cv2.GaussianBlur(sharp, (0, 0), 3)
    half = sharp.copy()
    half[:, 48:] = soft[:, 48:]
    assert stack_score.soft_cell_share(sharp, [sharp, soft], grid=4)["share"] == 0.0
    assert stack_score.soft_cell_share(soft, [sharp, soft], grid=4)["share"] == 1.0
    assert stack_score.soft_cell_share(half, [sharp, soft], grid=4)["share"] == 0.5
    # registering the soft frame onto the half-soft output is ill-posed for ECC on noise; where
    # it ends worse than it started (it wandered 3.4 px off on one machine) the start is kept
    np.testing.assert_allclose(stack_score.register_onto(soft, half), np.eye(3), atol=0.05)


def test_cli_fuses_a_stack_with_depth_map_and_metadata(tmp_path, capsys):
    paths = []
    exif = Image.Exif()
    exif[0x010F] = "stack-camera"
    for k, f in enumerate(_three_frames()):
        p = tmp_path / f"{k}.jpg"
        Image.fromarray(f).save(p, quality=95, exif=exif.tobytes(), icc_profile=b"\x00" * 128 + b"icc")
        paths.append(p)
    out, depth = tmp_path / "out.jpg", tmp_path / "depth.png"
    assert main(["fuse", *map(str, paths), "-o", str(out), "--depth-map", str(depth), "-v"]) == 0
    err = capsys.readouterr().err
    assert "residual" in err and "aligned 3 frames" in err
    with Image.open(out) as im:
        assert im.getexif()[0x010F] == "stack-camera" and im.info["icc_profile"].endswith(b"icc")
    index = np.asarray(Image.open(depth))
    assert index.max() <= 2 and (tmp_path / "depth-preview.png").is_file()
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "n.png"), "--no-align", "-q"]) == 0
    assert np.asarray(Image.open(tmp_path / "n.png")).shape == (96, 144)  # not cropped


@pytest.mark.requires_data("backgrounds/kodak24", "alphamatting")
def test_truth_stack_scores_its_own_truth_perfectly():
    from bamf_lib.evaluation import stacks as stack_bench

    st = stack_bench.truth_stack(3, seed=0, size=128)
    assert len(st.frames) == 3 and st.truth.shape == (128, 128, 3)
    assert set(np.unique(st.truth_index)) <= {0, 1, 2}
    s = stack_bench.score_fused(st.truth, st, index=st.truth_index)
    assert s["psnr"] > 60 and s["accuracy"] == 1.0
    blurred = stack_bench.score_fused(st.frames[1], st)
    assert blurred["psnr"] < s["psnr"]


def test_a_strided_chain_still_finds_the_skipped_frames_sharp_region():
    frames = _three_frames()
    r = stack_fusion.fuse_stack(frames, align=False, device="cpu", max_steps=1)  # chain 0 -> 2
    assert (r.index[:, 48 + 12 : 48 + 36] == 1).mean() > 0.9  # frame 1, skipped by the chain
    assert (r.index[:, 12:36] == 0).mean() > 0.9 and (r.index[:, 96 + 12 : 96 + 36] == 2).mean() > 0.9


@pytest.mark.requires_data("backgrounds/kodak24", "alphamatting")
def test_truth_stack_drift_and_flat_backdrop_options():
    from bamf_lib.evaluation import stacks as stack_bench

    plain = stack_bench.truth_stack(3, seed=0, size=96)
    same = stack_bench.truth_stack(3, seed=0, size=96, exposure=0.0, contrast=1.0)
    np.testing.assert_array_equal(plain.frames[2], same.frames[2])  # the defaults are the old stacks
    drift = stack_bench.truth_stack(3, seed=0, size=96, exposure=0.05)
    np.testing.assert_array_equal(drift.frames[0], plain.frames[0])  # frame 0 keeps gain 1
    assert np.abs(drift.frames[2].astype(float).mean() / plain.frames[2].mean() - 1) > 0.005
    flat = stack_bench.truth_stack(3, seed=0, size=96, contrast=0.15)
    background = flat.truth_index == flat.truth_index[0, 0]
    assert flat.truth[background].std() < 0.4 * plain.truth[background].std()


def _faint_drifting_frames(h=96, w=144, amp=0.1, gains=(1.0, 1.02, 1.04)):
    """A faint texture on a bright backdrop (contrast ``amp``), sharp in frame k's third, and an
    exposure that rises 2 % a frame: what the shipped nets were never trained on."""
    rng = np.random.default_rng(1)
    tex = rng.random((h, w)).astype(np.float32)
    blur = [tex] + [cv2.GaussianBlur(tex, (0, 0), s) for s in (2.0, 4.0)]
    frames = []
    for k in range(3):
        f = np.empty_like(tex)
        for third in range(3):
            f[:, third * 48 : (third + 1) * 48] = blur[abs(third - k)][:, third * 48 : (third + 1) * 48]
        frames.append(np.clip((0.85 + amp * (f - 0.5)) * gains[k] * 255, 0, 255).astype(np.uint8))
    return frames


def test_contrast_term_and_exposure_matching_find_faint_detail_under_drift():
    frames = _faint_drifting_frames()
    picked = lambda r: [float((r.index[:, k * 48 + 12 : k * 48 + 36] == k).mean()) for k in range(3)]  # noqa: E731
    shipped = stack_fusion.fuse_stack(frames, align=False, device="cpu")
    assert min(picked(shipped)) > 0.95
    net_alone = stack_fusion.fuse_stack(frames, align=False, device="cpu", energy_weight=0, match_exposure=False)
    assert min(picked(net_alone)) < 0.5  # the nets take the brightest frame for the sharpest here


def test_gain_matched_equalises_the_mean():
    a = np.full((8, 8), 0.5, np.float32)
    b = np.full((8, 8), 0.4, np.float32)
    assert abs(float(stack_fusion.gain_matched(a, b).mean()) - 0.5) < 1e-6
    assert stack_fusion.gain_matched(a, np.zeros_like(b)).max() == 0  # a black frame stays black


def test_a_reduced_decision_keeps_full_size_pixels():
    frames = [cv2.resize(f, (288, 192), interpolation=cv2.INTER_NEAREST) for f in _three_frames()]
    r = stack_fusion.fuse_stack(frames, align=False, device="cpu", scale=0.5)
    assert r.index.shape == (192, 288) and r.fused.shape == (192, 288)
    for k in range(3):
        assert (r.index[:, k * 96 + 24 : k * 96 + 72] == k).mean() > 0.95
    rows, cols = np.indices(r.index.shape)
    stack = np.stack(frames)
    np.testing.assert_array_equal(r.fused, stack[r.index, rows, cols])  # every pixel is its frame's own
    with pytest.raises(ValueError, match="scale"):
        stack_fusion.fuse_stack(frames, align=False, device="cpu", scale=0)


def test_cli_scale_is_checked_and_reaches_the_stack(tmp_path, capsys):
    paths = []
    for k, f in enumerate(cv2.resize(f, (288, 192), interpolation=cv2.INTER_NEAREST) for f in _three_frames()):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(f).save(paths[-1])
    out = tmp_path / "s.png"
    assert main(["fuse", *map(str, paths), "-o", str(out), "--no-align", "--scale", "0.5", "-q"]) == 0
    assert np.asarray(Image.open(out)).shape == (192, 288)
    capsys.readouterr()
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "t.png"), "--scale", "1.5"]) == 2
    assert main(["fuse", *map(str, paths[:2]), "-o", str(tmp_path / "u.png"), "--scale", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--scale must be in (0, 1]" in err and "more than two frames" in err
    assert not (tmp_path / "t.png").exists() and not (tmp_path / "u.png").exists()


def test_a_frames_border_beside_a_cell_is_not_read_as_detail():
    """A frame whose field ends just outside a cell: its fill must not put a step there whose
    Laplacian makes the sharpest frame look sharper than an output that equals it."""
    rng = np.random.default_rng(3)
    big = cv2.GaussianBlur((rng.random((140, 160)) * 255).astype(np.uint8), (0, 0), 0.8)
    out = big[10:130, 10:150]
    shifted = big[10:130, 16:156]  # the scene moved 6 px: this frame does not reach the left edge
    r = stack_score.soft_cell_share(out, [shifted, cv2.GaussianBlur(out, (0, 0), 3)], grid=6)
    assert r["share"] == 0.0 and r["cells"] > 20
    assert r["ratio"][:, 1:].min() > 0.9  # the cells right of the uncovered column
