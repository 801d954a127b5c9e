"""The camera blur model (bamf_lib.defocus) and how synthesis and validation use it."""

import math
from dataclasses import replace

import numpy as np
import pytest

from bamf_lib.config import SynthesisConfig, get_profile
from bamf_lib.data import defocus
from bamf_lib.data.synthesis import blurred_pair, make_source_pair


def _axis_std(kernel: np.ndarray) -> float:
    """Standard deviation of a kernel along x (its second central moment, per axis)."""
    k = kernel / kernel.sum()
    x = np.arange(k.shape[1]) - (k.shape[1] - 1) / 2
    px = k.sum(axis=0)
    return float(math.sqrt((px * x**2).sum() - (px * x).sum() ** 2))


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0])
def test_disk_psf_is_a_disc_of_radius_two_sigma_softened(sigma):
    k = defocus.disk_psf(sigma)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    # a uniform disc of radius R has per-axis variance R^2 / 4; the rim's Gaussian adds soften^2
    # and integrating over a pixel 1/12
    expected = math.sqrt(sigma**2 + defocus.DISK_SOFTEN**2 + 1 / 12)
    assert _axis_std(k) == pytest.approx(expected, rel=0.01)
    # flat top: inside the disc, well away from the rim, the kernel is constant
    c = k.shape[0] // 2
    inner = k[c - int(sigma) + 1 : c + int(sigma), c - int(sigma) + 1 : c + int(sigma)]
    assert inner.max() - inner.min() < 0.02 * inner.max()
    # next to nothing beyond the softened rim (a pixel's half diagonal plus three softening sigmas)
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]] - c
    assert k[np.hypot(yy, xx) > 2 * sigma + 0.71 + 3 * defocus.DISK_SOFTEN].max() < 1e-3 * k.max()


def test_gaussian_psf_has_its_sigma_and_blur_matches_opencv():
    assert _axis_std(defocus.gaussian_psf(2.5)) == pytest.approx(2.5, rel=0.02)
    import cv2

    img = np.random.default_rng(0).uniform(0, 255, (40, 50)).astype(np.float32)
    ref = cv2.GaussianBlur(img, (0, 0), sigmaX=2.0, borderType=cv2.BORDER_REFLECT)
    assert np.array_equal(defocus.blur(img, 2.0, "gaussian"), ref)
    with pytest.raises(ValueError, match="blur family"):
        defocus.psf("cauchy", 1.0)
    with pytest.raises(ValueError, match="sigma"):
        defocus.disk_psf(0.0)


def test_disc_and_gaussian_of_equal_sigma_remove_different_frequencies():
    # the disc's spectrum has a zero ring; the Gaussian's has none: at the disc's first zero
    # (about 3.83 / R rad/px) the disc passes far less than the Gaussian
    sigma, n = 3.0, 256
    f = 3.8317 / (2 * sigma) / (2 * np.pi)  # cycles/px
    x = np.arange(n, dtype=np.float32)
    wave = np.tile(np.cos(2 * np.pi * f * x), (64, 1)).astype(np.float32)
    gain = {fam: np.abs(defocus.blur(wave, sigma, fam)[:, 64:-64]).max() for fam in ("gaussian", "disk")}
    assert gain["disk"] < 0.1 < gain["gaussian"]


def test_depth_varying_blur_sharpens_one_end_and_blurs_the_other():
    rng_img = np.random.default_rng(1)
    img = rng_img.uniform(0, 255, (96, 96)).astype(np.float32)
    flat = defocus.depth_varying_blur(img, 2.0, "disk", 0.0, np.random.default_rng(0))
    assert np.array_equal(flat, defocus.blur(img, 2.0, "disk"))
    out = defocus.depth_varying_blur(img, 2.0, "gaussian", 0.7, np.random.default_rng(0))
    ramp = defocus.depth_ramp(img.shape, np.random.default_rng(0))  # the same draw
    lap = np.abs(np.diff(out, axis=1))[:-1, :] + np.abs(np.diff(out, axis=0))[:, :-1]
    r = ramp[:-1, :-1]
    near, far = lap[r < -0.6].mean(), lap[r > 0.6].mean()
    assert near > 1.5 * far  # sigma * exp(-0.7) at one end, sigma * exp(+0.7) at the other
    assert ramp.min() == pytest.approx(-1) and ramp.max() == pytest.approx(1)


def test_loguniform_sigma_is_as_likely_per_octave():
    rng = np.random.default_rng(0)
    s = np.array([defocus.draw_sigma(rng, (0.5, 8.0), "loguniform") for _ in range(4000)])
    assert s.min() >= 0.5 and s.max() <= 8.0
    octaves = np.histogram(np.log2(s), bins=4, range=(-1, 3))[0]
    assert octaves.min() > 0.85 * octaves.max()
    u = np.array([defocus.draw_sigma(rng, (0.5, 8.0), "uniform") for _ in range(4000)])
    assert (u < 1.0).mean() < 0.1 < 0.2 < (s < 1.0).mean()  # 1/15 and 1/4 expected
    with pytest.raises(ValueError, match="sigma law"):
        defocus.draw_sigma(rng, (1, 2), "normal")


def test_mix_draws_both_families_and_unknown_families_are_refused():
    rng = np.random.default_rng(0)
    draws = [defocus.draw_family(rng, "mix") for _ in range(400)]
    assert 0.4 < draws.count("disk") / 400 < 0.6 and set(draws) == {"disk", "gaussian"}
    assert defocus.draw_family(rng, "disk") == "disk"
    with pytest.raises(ValueError, match="blur family"):
        defocus.draw_family(rng, "box")


def test_camera_noise_has_its_std_at_mid_grey_and_more_in_the_highlights():
    rng = np.random.default_rng(0)
    mid = np.full((200, 200), 127.5, np.float32)
    assert (defocus.camera_noise(mid, 3.0, rng) - mid).std() == pytest.approx(3.0, rel=0.03)
    white = np.full((200, 200), 255.0, np.float32)
    assert (defocus.camera_noise(white, 3.0, rng) - white).std() > 3.3
    assert defocus.camera_noise(mid, 0.0, rng) is mid


def test_jpeg_roundtrip_loses_more_at_low_quality():
    img = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    err = {q: np.abs(defocus.jpeg_roundtrip(img, q).astype(int) - img).mean() for q in (100, 20)}
    assert err[100] < err[20]
    assert defocus.jpeg_roundtrip(img, 90).dtype == np.uint8


def test_default_config_draws_the_papers_data_bit_for_bit():
    # the options must not disturb the paper's path: no camera, or the default config, give the
    # same random draws and so the same pair as before the options existed
    rng_data = np.random.default_rng(3)
    fg = rng_data.uniform(0, 255, (64, 64)).astype(np.float32)
    bg = rng_data.uniform(0, 255, (80, 80)).astype(np.float32)
    alpha = np.zeros((64, 64), np.float32)
    alpha[16:48, 16:48] = 1
    plain = blurred_pair(fg, alpha, bg, np.random.default_rng(7), (2.0, 5.0))
    default = blurred_pair(fg, alpha, bg, np.random.default_rng(7), (2.0, 5.0), camera=SynthesisConfig())
    for x, y in zip(plain, default):
        assert np.array_equal(x, y)
    cam = get_profile("camera").synthesis
    other = blurred_pair(fg, alpha, bg, np.random.default_rng(7), cam.sigma_range, camera=cam)
    assert not np.array_equal(other[1], plain[1])
    assert cam.sigma_range[0] <= min(other[3:]) and max(other[3:]) <= cam.sigma_range[1]


def test_clean_share_spares_that_share_of_pairs_noise_and_jpeg():
    # a pair is clean when its focused layer comes through untouched: no noise, no JPEG
    rng_data = np.random.default_rng(5)
    fg = rng_data.uniform(0, 255, (64, 64)).astype(np.float32)
    bg = rng_data.uniform(0, 255, (80, 80)).astype(np.float32)
    alpha = np.zeros((64, 64), np.float32)
    alpha[16:48, 16:48] = 1
    inner = (slice(20, 44), slice(20, 44))

    def clean_count(share: float, n: int = 60) -> int:
        cam = replace(get_profile("camera").synthesis, clean_share=share)
        count = 0
        for seed in range(n):
            _, a, _, _, _ = blurred_pair(fg, alpha, bg, np.random.default_rng(seed), cam.sigma_range, camera=cam)
            count += bool(np.array_equal(a[inner], np.rint(fg[inner]).astype(np.uint8)))
        return count

    assert clean_count(0.0) == 0 and clean_count(1.0) == 60
    assert 18 <= clean_count(0.5) <= 42  # binomial(60, 0.5): 30 +- 12 is beyond 3 sigma
    assert get_profile("camera2").synthesis == replace(get_profile("camera").synthesis, clean_share=0.5)


def test_make_source_pair_blurs_each_layer_with_the_family_asked():
    rng = np.random.default_rng(0)
    fg, bg = (rng.uniform(0, 255, (48, 48)).astype(np.float32) for _ in range(2))
    alpha = np.zeros((48, 48), np.float32)
    alpha[:, :24] = 1
    a_g, b_g = make_source_pair(fg, alpha, bg, sigma_fg=2, sigma_bg=2, family="gaussian")
    a_d, b_d = make_source_pair(fg, alpha, bg, sigma_fg=2, sigma_bg=2, family="disk")
    # the focused halves are the inputs themselves, whatever the family
    assert np.allclose(a_g[:, :20], fg[:, :20]) and np.allclose(a_d[:, :20], fg[:, :20])
    assert np.allclose(b_g[:, 28:], bg[:, 28:]) and np.allclose(b_d[:, 28:], bg[:, 28:])
    assert not np.allclose(a_g[:, 28:], a_d[:, 28:])  # the defocused halves differ by PSF


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("blur", "box", "blur"),
        ("sigma_law", "normal", "sigma_law"),
        ("depth_ramp", 3.0, "depth_ramp"),
        ("noise_range", (2.0, 1.0), "noise_range"),
        ("jpeg_quality", (90, 80), "jpeg_quality"),
        ("clean_share", 1.5, "clean_share"),
    ],
)
def test_camera_fields_are_validated(field, value, match):
    with pytest.raises(ValueError, match=match):
        SynthesisConfig(**{field: value})


@pytest.mark.requires_data("backgrounds/kodak24", "alphamatting")
def test_camera_validation_set_is_held_out_and_blurred_by_the_camera_model():
    from bamf_lib.evaluation.groundtruth import camera_validation_set

    pairs = camera_validation_set(4, seed=2)
    assert len(pairs) == 4 and len({p.name for p in pairs}) == 4
    assert all("kodak24" in p.name for p in pairs)  # every background is a held-out photograph
    assert sum("-GT" in p.name for p in pairs) == 2  # half alpha-matting foregrounds
    lo, hi = get_profile("camera").synthesis.sigma_range
    assert all(lo <= s <= hi for p in pairs for s in (p.sigma_fg, p.sigma_bg))
    again = camera_validation_set(4, seed=2)
    assert all(np.array_equal(p.a, q.a) for p, q in zip(pairs, again))
    tuning = camera_validation_set(4, seed=1)
    assert not any(np.array_equal(p.a, q.a) for p, q in zip(pairs, tuning))
