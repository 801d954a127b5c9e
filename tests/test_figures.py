"""Figure helpers: the paper's Fig. 5 difference maps."""

from __future__ import annotations

import numpy as np
import pytest

from bamf_lib.figures import difference_map
from bamf_lib.io import rgb2gray


def test_difference_map_is_bright_where_fused_copies_the_source():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    fused = src.copy()
    fused[:, 8:] = 255 - src[:, 8:]
    dm = difference_map(fused, src)
    assert dm.shape == (16, 16) and np.all(dm[:, :8] == 255)
    gray_gap = np.abs(rgb2gray(fused).astype(float) - rgb2gray(src))
    np.testing.assert_allclose(dm, np.clip(255 - 10 * gray_gap, 0, 255))
    assert difference_map(fused, src, lam=1).min() >= dm.min()
    with pytest.raises(ValueError, match="shape"):
        difference_map(fused, src[:, :8])
    with pytest.raises(ValueError, match="lam"):
        difference_map(fused, src, lam=0)
