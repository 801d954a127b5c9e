"""Figure helpers: the paper's Fig. 5 difference maps."""

from __future__ import annotations

import numpy as np
import pytest

from bamf_lib.figures import difference_map


def test_difference_map_is_bright_where_fused_copies_the_source():
    # gray levels worked by hand: DM = 255 - 10 |F - S|, clipped at 0
    src = np.full((1, 5), 100, np.uint8)
    fused = np.array([[100, 105, 95, 120, 200]], np.uint8)
    assert difference_map(fused, src).tolist() == [[255.0, 205.0, 205.0, 55.0, 0.0]]
    assert difference_map(fused, src, lam=1).tolist() == [[255.0, 250.0, 250.0, 235.0, 155.0]]
    # colour is compared through MATLAB's rgb2gray: pure red 255 is gray round(0.2989 * 255) = 76
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    assert difference_map(red, np.full((1, 1, 3), 76, np.uint8)).tolist() == [[255.0]]
    assert difference_map(red, np.full((1, 1, 3), 70, np.uint8)).tolist() == [[195.0]]
    src, fused = np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        difference_map(fused, src[:, :8])
    with pytest.raises(ValueError, match="lam"):
        difference_map(fused, src, lam=0)
