"""Decision maps of several methods scored against a known truth."""

from __future__ import annotations

import types

import numpy as np
import pytest

from bamf_lib.evaluation.groundtruth import evaluate_decisions


def test_evaluate_decisions_scores_each_decider_against_the_truth():
    truth = np.zeros((32, 32), bool)
    truth[:, 12:] = True
    img = np.zeros((32, 32), np.uint8)
    pairs = [types.SimpleNamespace(name=f"s{i}", a=img, b=img, truth=truth) for i in range(2)]
    out = evaluate_decisions(
        pairs,
        {
            "right": lambda a, b: truth,
            "wrong": lambda a, b: ~truth,
            "left-shift": lambda a, b: np.roll(truth, -4, axis=1),
        },
    )
    assert out["right"]["mean"] == {"accuracy": 1.0, "boundary_accuracy": 1.0, "boundary_f": 1.0}
    assert out["wrong"]["mean"]["accuracy"] == 0.0
    shifted = out["left-shift"]["mean"]
    assert 0.5 < shifted["accuracy"] < 1.0 and shifted["boundary_f"] < 1.0
    assert set(out["right"]["seconds"]) == {"s0", "s1"} and out["right"]["decisions"]["s1"].dtype == bool
    with pytest.raises(ValueError, match="pairs"):
        evaluate_decisions([], {"right": lambda a, b: truth})
