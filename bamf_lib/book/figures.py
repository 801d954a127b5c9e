"""Helpers for the figures the chapters share.

* :func:`difference_map` computes the paper's Fig. 5 maps (fused image against one source).
* :func:`compare_maps` measures how far two score maps are apart (fast against reference,
  or S(A, B) against 1 - S(B, A)).
* :func:`top_windows` places non-overlapping square crops where a weight map is largest.
* :func:`captioned_table` wraps a Markdown table in a numbered, referable MyST table.
* :func:`provenance` says in one short phrase which weights made a result.
"""

from __future__ import annotations

import numpy as np

from bamf_lib.colour import rgb2gray

__all__ = ["difference_map", "compare_maps", "top_windows", "captioned_table", "provenance"]


def difference_map(fused: np.ndarray, source: np.ndarray, *, lam: float = 10.0) -> np.ndarray:
    """The paper's Fig. 5 map ``DM = 255 - lam |F - S|`` on gray images, clipped to 0..255.

    Both images are made gray first (MATLAB ``rgb2gray``), as the paper's maps are gray
    before their pseudo-colour. With a jet-like colour map, 255 (red) marks pixels the fused
    image copied from ``source`` and low values (blue) pixels where it differs, i.e. taken
    from the other source where ``source`` is blurred.

    Parameters
    ----------
    fused, source : ndarray, uint8, (H, W) or (H, W, 3), one shape
    lam : float
        Gain on the absolute difference (paper: 10).

    Returns
    -------
    ndarray, float32, (H, W), values in [0, 255]

    Examples
    --------
    >>> f = np.array([[10, 20]], np.uint8); s = np.array([[10, 0]], np.uint8)
    >>> difference_map(f, s).tolist()
    [[255.0, 55.0]]
    """
    fused, source = np.asarray(fused), np.asarray(source)
    if fused.shape != source.shape:
        raise ValueError(f"fused {fused.shape} and source {source.shape} must have one shape")
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    diff = np.abs(rgb2gray(fused).astype(np.float32) - rgb2gray(source).astype(np.float32))
    return np.clip(255.0 - lam * diff, 0.0, 255.0).astype(np.float32)


def compare_maps(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, *, threshold: float = 0.5) -> dict:
    """How far two score maps are apart, on the pixels of ``mask`` (default: all).

    Parameters
    ----------
    x, y : ndarray, float, one shape
        Score maps in [0, 1] (e.g. a fast map and the per-patch reference).
    mask : ndarray of bool, optional
        The pixels to compare; must select at least one pixel.
    threshold : float
        The decisions compared are ``x > threshold`` and ``y > threshold``.

    Returns
    -------
    dict
        ``{"pixels": n, "mean_abs": float, "max_abs": float, "agreement": share of the
        pixels whose decisions agree}``.

    Examples
    --------
    >>> compare_maps(np.array([0.2, 0.6]), np.array([0.3, 0.4]))
    {'pixels': 2, 'mean_abs': 0.15, 'max_abs': 0.2, 'agreement': 0.5}
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"score maps of shapes {x.shape} and {y.shape} cannot be compared")
    mask = np.ones(x.shape, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != x.shape or not mask.any():
        raise ValueError(f"mask must have the maps' shape {x.shape} and select a pixel")
    xs, ys = x[mask], y[mask]
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("the maps hold NaN or inf on the compared pixels")
    diff = np.abs(xs - ys)
    return {
        "pixels": int(mask.sum()),
        "mean_abs": round(float(diff.mean()), 12),
        "max_abs": round(float(diff.max()), 12),
        "agreement": float(((xs > threshold) == (ys > threshold)).mean()),
    }


def top_windows(weight: np.ndarray, side: int, n: int) -> list[tuple[int, int]]:
    """Top-left corners of ``n`` non-overlapping ``side`` x ``side`` windows of largest total weight.

    Greedy: the window with the largest sum of ``weight``, then the best one that does not
    overlap any chosen so far, and so on; windows lie inside the image. Fewer than ``n``
    corners come back when no further window fits or has positive weight.

    Parameters
    ----------
    weight : ndarray, (H, W), float or bool, non-negative
    side : int, 1 <= side <= min(H, W)
    n : int, >= 1

    Returns
    -------
    list of (row, col)

    Examples
    --------
    >>> w = np.zeros((8, 8)); w[5:7, 5:7] = 1; w[0, 0] = 0.5
    >>> top_windows(w, 2, 2)
    [(5, 5), (0, 0)]
    """
    weight = np.asarray(weight, np.float64)
    if weight.ndim != 2 or (weight < 0).any():
        raise ValueError(f"weight must be a non-negative 2-D map, got shape {weight.shape}")
    if not 1 <= side <= min(weight.shape) or n < 1:
        raise ValueError(f"need 1 <= side <= {min(weight.shape)} and n >= 1, got side={side}, n={n}")
    # window sums at every top-left corner, from the summed-area table
    sat = np.pad(weight.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = sat[side:, side:] - sat[:-side, side:] - sat[side:, :-side] + sat[:-side, :-side]
    corners: list[tuple[int, int]] = []
    for _ in range(n):
        if not (sums > 0).any():
            break
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        corners.append((int(y), int(x)))
        # every corner whose window would overlap this one is out
        sums[max(0, y - side + 1): y + side, max(0, x - side + 1): x + side] = -1.0
    return corners


def captioned_table(table: str, caption: str, name: str) -> str:
    """A Markdown table as a MyST ``{table}`` directive: numbered, captioned, citable as ``name``.

    The book renders the Markdown that notebooks display as MyST, so a cell that displays
    this text yields "Table N.M: caption", which the prose cites with ``{numref}`name```.
    A colon fence is used because a caption may hold backticks.

    Parameters
    ----------
    table : str
        A Markdown pipe table (header, rule, rows); text after it (notes) stays below.
    caption : str
        One line of Markdown.
    name : str
        The label, letters, digits and ``-`` only.

    Examples
    --------
    >>> print(captioned_table("| a |\\n|---|\\n| 1 |", "One value.", "tab-one"))
    :::{table} One value.
    :name: tab-one
    <BLANKLINE>
    | a |
    |---|
    | 1 |
    :::
    """
    import re

    lines = table.strip().splitlines()
    if len(lines) < 2 or not lines[0].lstrip().startswith("|") or not re.fullmatch(r"\|?[\s:|-]+\|?", lines[1].strip()):
        raise ValueError("table must be a Markdown pipe table: a header line, then a |---| rule")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name):
        raise ValueError(f"name must be letters, digits and '-', got {name!r}")
    caption = " ".join(caption.split())
    if not caption:
        raise ValueError("a table needs a caption")
    n = next((i for i, line in enumerate(lines) if not line.lstrip().startswith("|")), len(lines))
    body, notes = "\n".join(lines[:n]), "\n".join(lines[n:]).strip()
    return f":::{{table}} {caption}\n:name: {name}\n\n{body}\n:::" + (f"\n\n{notes}" if notes else "")


def provenance(metadata: dict, *, where: str = "shipped") -> str:
    """One phrase naming the weights behind a result, for a caption: profile, net, training time.

    Parameters
    ----------
    metadata : dict
        A weights file's metadata (``load_pretrained(...).metadata``): ``profile`` and
        ``architecture`` are required; ``seconds`` and ``device`` are used when present.
    where : str
        Which weight set ("shipped", "padded", ...).

    Examples
    --------
    >>> provenance({"profile": "exact", "architecture": "ResNet v1 depth 8 width 16, 64x64 patches, 2 channels",
    ...             "seconds": 1410.7, "device": "cpu"})
    'shipped `exact` weights (ResNet v1-8, width 16, 64x64 patches; trained 24 min on the CPU)'
    """
    import re

    missing = [k for k in ("profile", "architecture") if k not in metadata]
    if missing:
        raise ValueError(f"weights metadata lacks {missing}: cannot say where a result comes from")
    arch = str(metadata["architecture"])
    m = re.match(r"ResNet (v\d) depth (\d+) width (\d+), (\d+x\d+) patches", arch)
    net = f"ResNet {m[1]}-{m[2]}, width {m[3]}, {m[4]} patches" if m else arch.split(",")[0]
    trained = ""
    if "seconds" in metadata:
        device = str(metadata.get("device", "?"))
        device = "the CPU" if device == "cpu" else device
        trained = f"; trained {float(metadata['seconds']) / 60:.0f} min on {device}"
    return f"{where} `{metadata['profile']}` weights ({net}{trained})"
