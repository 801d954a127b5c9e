"""Stand-in networks and scoring for the fusion, boundary and CLI tests.

The real networks need trained weights; these tests check the pipeline's logic, so the
score comes from a classical focus measure (local Laplacian energy) that needs none:
S = E_A / (E_A + E_B).  Swapping the sources gives 1 - S, as the paper's network does.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from bamf_lib.config import ModelConfig

import bamf_lib.nets.scoring as scoring  # the stand-in replaces its functions


class StandInNet(torch.nn.Module):
    """Carries ``.config`` like the real networks; the window is its patch size."""

    def __init__(self, patch_size: int = 16):
        super().__init__()
        self.config = ModelConfig(depth=8, patch_size=patch_size)
        self.calls: list[int] = []  # pixels scored per call, to check what refine asks for


def focus_score(a: np.ndarray, b: np.ndarray, window: int) -> np.ndarray:
    energy = [cv2.blur(cv2.Laplacian(x.astype(np.float32), cv2.CV_32F) ** 2, (window, window)) for x in (a, b)]
    return (energy[0] / (energy[0] + energy[1] + 1e-12)).astype(np.float32)


def fake_score_map(model, a, b, *, path="fast", device="cpu", **kw):
    model.calls.append(a.size)
    return focus_score(a, b, model.config.patch_size // 2 + 1)


def fake_score_masked(model, a, b, mask, *, path="fast", device="cpu", **kw):
    model.calls.append(int(mask.sum()))
    out = np.full(a.shape, np.nan, np.float32)
    out[mask] = focus_score(a, b, 3)[mask]
    return out


def install(monkeypatch) -> None:
    monkeypatch.setattr(scoring, "score_map", fake_score_map)
    monkeypatch.setattr(scoring, "score_masked", fake_score_masked)


def textured_pair(h: int = 96, w: int = 128, *, colour: bool = False, seed: int = 0):
    """A random texture with its left half blurred in B and its right half blurred in A."""
    rng = np.random.default_rng(seed)
    sharp = rng.integers(0, 256, (h, w, 3) if colour else (h, w)).astype(np.uint8)
    sharp = cv2.resize(cv2.resize(sharp, (w // 2, h // 2)), (w, h), interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    truth = np.zeros((h, w), bool)
    truth[:, : w // 2] = True  # A is focused on the left
    a = np.where(truth[..., None] if colour else truth, sharp, blurred)
    b = np.where(truth[..., None] if colour else truth, blurred, sharp)
    return a, b, sharp, truth


def stand_in_folder(folder, monkeypatch):
    """``folder`` with a colour pair ``a.png``/``b.png``, and ``fuse`` running the stand-in net
    (the CLI tests' set-up)."""
    from PIL import Image

    import bamf_lib.fusion.pipeline

    install(monkeypatch)
    monkeypatch.setattr(bamf_lib.fusion.pipeline, "load_net", lambda net, weights=None, **kw: StandInNet())
    a, b, _, _ = textured_pair(colour=True)
    Image.fromarray(a).save(folder / "a.png")
    Image.fromarray(b).save(folder / "b.png")
    return folder
