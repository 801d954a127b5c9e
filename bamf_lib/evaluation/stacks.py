"""Focus stacks with an all-in-focus truth, and the scores of a fused stack against it.

Real stacks have no truth.  :func:`truth_stack` renders one: a layered scene (a held-out Kodak
photograph cut into depth steps, behind alpha-matting foregrounds with their true mattes), each
layer sharp in exactly one frame and blurred in the others by a Gaussian whose sigma grows with
the focus distance, composited far to near with blurred mattes (so a near object's blurred rim
spreads over the sharp background, as in a camera); every frame is then magnified, shifted and
rotated a little (focus breathing) and gets sensor noise.  The truth is the scene with every
layer sharp, in frame 0's geometry, with the index of the frame in which each pixel is sharp.

Only training-side data is read (``backgrounds/kodak24``, held out of training, and
``alphamatting/``); never a test set.  :func:`score_fused` gives PSNR, decision accuracy and the
*halo error*: the RMS error in a band of ``radius`` px around the depth edges, where defocus
spreads one layer over another (a fusion that takes a blurred rim there shows a halo).

The no-reference score of a fused *real* stack, the share of cells left soft, is in
:mod:`bamf_lib.evaluation.soft_cells`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bamf_lib.evaluation.soft_cells import gray_unit

__all__ = [
    "TruthStack",
    "truth_stack",
    "depth_edges",
    "score_fused",
    "register_to",
]


@dataclass
class TruthStack:
    """A rendered focus stack and its truth (frame 0's geometry).

    Attributes
    ----------
    frames : list of uint8 (H, W, 3)
    truth : uint8 (H, W, 3)
        Every layer sharp.
    truth_index : uint8 (H, W)
        The frame in which each pixel is sharp.
    warps : list of (3, 3)
        Frame 0 pixel coordinates -> frame k pixel coordinates.
    name : str
    """

    frames: list
    truth: np.ndarray
    truth_index: np.ndarray
    warps: list
    name: str


def _similarity(scale: float, angle_deg: float, shift: tuple[float, float], centre: tuple[float, float]):
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre, float)
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = c - r @ c + np.asarray(shift, float)
    return m


def _layers(shape, rng, n_steps, n_objects, photos, mattes):
    """(rgb float32, alpha float32) per layer, far to near, at the canvas size."""
    h, w = shape
    name, bg = photos[rng.integers(len(photos))]
    bg = cv2.resize(bg if bg.ndim == 3 else np.dstack([bg] * 3), (w, h), interpolation=cv2.INTER_AREA)
    bg = bg.astype(np.float32) / 255
    layers = []
    edges = np.sort(rng.choice(np.arange(w // 8, w - w // 8), n_steps - 1, replace=False)) if n_steps > 1 else []
    bounds = [0, *edges, w]
    for j in range(n_steps):  # depth steps of the background, far (left) to near (right) or reverse
        a = np.zeros((h, w), np.float32)
        a[:, bounds[j] : bounds[j + 1]] = 1
        layers.append((bg, a))
    names = [name]
    for _ in range(n_objects):
        k = int(rng.integers(len(mattes)))
        fg, alpha = mattes[k]
        s = rng.uniform(0.35, 0.55) * min(h, w) / max(fg.shape[:2])
        size = (max(8, round(fg.shape[1] * s)), max(8, round(fg.shape[0] * s)))
        fg = cv2.resize(fg, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        y, x = int(rng.integers(0, h - size[1])), int(rng.integers(0, w - size[0]))
        rgb, a = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
        rgb[y : y + size[1], x : x + size[0]] = fg
        a[y : y + size[1], x : x + size[0]] = alpha
        layers.append((rgb, a))
        names.append(f"GT{k + 1:02d}")
    return layers, names


def _composite(layers, sigmas):
    out = np.zeros(layers[0][0].shape, np.float32)
    for (rgb, a), s in zip(layers, sigmas):
        if s > 0.05:
            a_b = cv2.GaussianBlur(a, (0, 0), s)
            c_b = cv2.GaussianBlur(rgb * a[..., None], (0, 0), s)
        else:
            a_b, c_b = a, rgb * a[..., None]
        out = c_b + (1 - a_b[..., None]) * out
    return out


def truth_stack(
    n_frames: int,
    *,
    seed: int = 0,
    size: int = 384,
    n_steps: int = 3,
    n_objects: int = 2,
    sigma_max: float = 6.0,
    breathing: float = 0.03,
    shift_px: float = 1.5,
    angle_deg: float = 0.05,
    noise: float = 1.0,
    exposure: float = 0.0,
    contrast: float = 1.0,
) -> TruthStack:
    """Render a focus stack of ``n_frames`` frames with its all-in-focus truth.

    Parameters
    ----------
    n_frames : int
        At least 2; the layers' sharp frames spread over them (layers share a frame when there
        are more layers than frames).
    seed : int
        Fixes the photographs, mattes, layout, warps and noise.
    size : int
        Frame side in pixels.
    n_steps, n_objects : int
        Depth steps of the background photograph and matted foreground objects.
    sigma_max : float
        Blur sigma (px) of a layer in the frame farthest from its sharp one.
    breathing : float
        Magnification of the last frame relative to the first (frames in between: linear).
    shift_px, angle_deg : float
        Standard deviations of each frame's random shift step (px) and rotation step (degrees).
    noise : float
        Sensor noise, grey levels (standard deviation).
    exposure : float
        Exposure drift: each frame's gain is the previous frame's times ``1 + N(0, exposure)``
        (frame 0 has gain 1, as the truth; real stacks drift by a fraction of a percent a frame
        as the aperture's effective size changes with focus).
    contrast : float
        The background photograph's contrast around its mean (1: as photographed; below 1 a dim,
        nearly flat backdrop such as paper or cloth, where focus shows only in faint texture).
        The foreground objects keep theirs.

    Returns
    -------
    TruthStack
    """
    from bamf_lib.data import datasets
    from bamf_lib.data.sources import natural_backgrounds

    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2, got {n_frames}")
    rng = np.random.default_rng([seed, 25, n_frames])
    photos = natural_backgrounds(held_out=True)
    mattes = [datasets.alphamatting(i) for i in datasets.ALPHAMATTING_INDICES]
    margin = size // 8
    canvas = (size + 2 * margin, size + 2 * margin)
    layers, names = _layers(canvas, rng, n_steps, n_objects, photos, mattes)
    if contrast != 1.0:
        bg = layers[0][0]
        flat = (bg.mean() + contrast * (bg - bg.mean())).astype(np.float32)
        layers = [(flat, a) for _, a in layers[:n_steps]] + layers[n_steps:]
    gains = np.ones(n_frames)
    if exposure:  # its own generator: a stack without drift is the same as before the option
        steps = 1 + np.random.default_rng([seed, 26, n_frames]).normal(0, exposure, n_frames - 1)
        gains[1:] = np.cumprod(steps)
    n_layers = len(layers)
    # the far layers (background steps) focus last: sharp frame of layer j, far -> near
    sharp_at = np.round(np.linspace(n_frames - 1, 0, n_layers)).astype(int)
    if rng.random() < 0.5:  # steps rising to the left or to the right
        order = list(range(n_steps))[::-1] + list(range(n_steps, n_layers))
        sharp_at = sharp_at[np.argsort(order)]
    truth_canvas = _composite(layers, [0.0] * n_layers)
    index_canvas = np.zeros(canvas, np.uint8)
    for (_, a), k in zip(layers, sharp_at):
        index_canvas[a > 0.5] = k
    centre = ((size - 1) / 2, (size - 1) / 2)
    to_canvas = np.array([[1.0, 0, margin], [0, 1.0, margin], [0, 0, 1]])
    frames, warps, shift, angle = [], [], np.zeros(2), 0.0
    for k in range(n_frames):
        if k:
            shift = shift + rng.normal(0, shift_px, 2)
            angle += rng.normal(0, angle_deg)
        m = _similarity(1 + breathing * k / max(1, n_frames - 1), angle, shift, centre)
        sig = sigma_max * np.abs(sharp_at - k) / max(1, n_frames - 1)
        img = _composite(layers, sig)
        # frame k's pixel p shows the scene at m^-1 p (a magnified frame sees less)
        frame_to_canvas = to_canvas @ np.linalg.inv(m)
        img = cv2.warpAffine(img, frame_to_canvas[:2], (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        img = img * (255 * gains[k]) + rng.normal(0, noise, img.shape)
        frames.append(np.clip(np.round(img), 0, 255).astype(np.uint8))
        warps.append(m)
    truth = truth_canvas[margin : margin + size, margin : margin + size]
    truth = np.clip(np.round(truth * 255), 0, 255).astype(np.uint8)
    index = np.ascontiguousarray(index_canvas[margin : margin + size, margin : margin + size])
    name = f"stack{n_frames:02d}-s{seed}-" + "+".join(names)
    return TruthStack(frames, np.ascontiguousarray(truth), index, warps, name)


def depth_edges(index: np.ndarray, radius: float = 6) -> np.ndarray:
    """Pixels within ``radius`` px of a change of the truth's sharp frame (the halo band)."""
    from scipy import ndimage

    idx = np.asarray(index)
    edge = np.zeros(idx.shape, bool)
    edge[:, 1:] |= idx[:, 1:] != idx[:, :-1]
    edge[1:, :] |= idx[1:, :] != idx[:-1, :]
    if not edge.any():
        return edge
    return ndimage.distance_transform_edt(~edge) <= radius


def register_to(image: np.ndarray, truth: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
    """Affine warp (2 x 3, ``image`` pixel -> ``truth`` pixel) registering the truth onto a fused
    image by ECC; ``init`` starts it (e.g. the known offset of a crop).  The image is the
    template, so a cropped output needs no padding."""

    warp = np.eye(2, 3, dtype=np.float32) if init is None else np.asarray(init, np.float32).copy()
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    try:
        _, warp = cv2.findTransformECC(gray_unit(image), gray_unit(truth), warp, cv2.MOTION_AFFINE, crit, None, 1)
    except cv2.error:
        pass
    return warp


def _psnr(err: np.ndarray) -> float:
    mse = float(np.mean(err.astype(np.float64) ** 2)) if err.size else float("nan")
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def score_fused(
    fused: np.ndarray,
    stack: TruthStack,
    *,
    index: np.ndarray | None = None,
    offset: tuple[int, int] | None = None,
    radius: float = 6,
) -> dict[str, float]:
    """PSNR, halo error and (given the chosen-frame ``index``) decision accuracy against the truth.

    Parameters
    ----------
    fused : ndarray
        The fused image, in frame 0's geometry or near it: the truth is registered onto it by
        ECC (affine; ``offset`` = (y0, x0) of a crop of frame 0's geometry starts it) and the
        scores are taken in the fused image's geometry, where the truth covers it.
    stack : TruthStack
    index : ndarray of int, optional
        The frame the method took at each pixel, in ``fused``'s geometry.
    radius : float
        Half-width (px) of the band around depth edges where the halo error is measured.

    Returns
    -------
    dict
        ``psnr`` (dB, over the covered area), ``halo_rmse`` (grey levels, in the band),
        ``halo_psnr``, ``accuracy`` (share of pixels whose frame is the true sharp one) and
        ``accuracy_1`` (within one frame), ``coverage`` (share of the truth's area compared).
    """
    init = None
    if offset is not None:
        init = np.array([[1, 0, offset[1]], [0, 1, offset[0]]], np.float32)
    warp = register_to(fused, stack.truth, init)
    h, w = fused.shape[:2]
    flags = cv2.WARP_INVERSE_MAP
    truth = cv2.warpAffine(stack.truth, warp, (w, h), flags=cv2.INTER_LINEAR | flags)
    t_index = cv2.warpAffine(stack.truth_index, warp, (w, h), flags=cv2.INTER_NEAREST | flags)
    size = stack.truth.shape[:2]
    cover = cv2.warpAffine(np.ones(size, np.uint8), warp, (w, h), flags=cv2.INTER_NEAREST | flags)
    cover = cv2.erode(cover, np.ones((5, 5), np.uint8)) > 0  # away from the truth's border
    err = fused.astype(np.float64) - truth
    band = depth_edges(t_index, radius) & cover
    out = {
        "psnr": _psnr(err[cover]),
        "halo_psnr": _psnr(err[band]),
        "halo_rmse": float(np.sqrt(np.mean(err[band] ** 2))) if band.any() else float("nan"),
        "coverage": float(cover.sum() / (size[0] * size[1])),
    }
    if index is not None:
        d = np.abs(np.asarray(index).astype(int) - t_index)[cover]
        out["accuracy"], out["accuracy_1"] = float(np.mean(d == 0)), float(np.mean(d <= 1))
    return out
