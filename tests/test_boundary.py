import numpy as np
import pytest

from bamf_lib.colour import to_float_gray
from bamf_lib.fusion.boundary import near_boundary, refine, select_fdb, smooth_scores, tune_fdb


def step_map(h=40, w=60, edge=30):
    s = np.zeros((h, w), np.float32)
    s[:, :edge] = 1.0
    return s


def test_smooth_scores_is_box_mean_with_mirrored_borders():
    rng = np.random.default_rng(1)
    s = rng.random((20, 30)).astype(np.float32)
    k = 5
    padded = np.pad(s, k // 2, mode="symmetric")
    expected = np.mean([padded[i : i + 20, j : j + 30] for i in range(k) for j in range(k)], axis=0)
    np.testing.assert_allclose(smooth_scores(s, k), expected, atol=1e-6)
    assert np.allclose(smooth_scores(np.full((9, 9), 0.7), 7), 0.7)


def test_near_boundary_is_a_band_of_width_k_minus_one_around_a_step():
    for k in (3, 7, 11):
        band = near_boundary(step_map(), k, 0.01)
        cols = np.flatnonzero(band.any(axis=0))
        assert cols.min() == 30 - k // 2 and cols.max() == 30 + k // 2 - 1
        assert band.all(axis=0)[cols].all()


def test_larger_tau_narrows_the_band_and_uniform_maps_have_none():
    s = smooth_scores(step_map(), 9)  # a soft edge
    widths = [near_boundary(s, 9, tau).sum() for tau in (0.0, 0.1, 0.3, 0.45)]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    assert not near_boundary(np.ones((30, 30)), 9, 0.05).any()
    assert not near_boundary(np.zeros((30, 30)), 9, 0.05).any()


@pytest.mark.parametrize("kwargs", [{"k": 4}, {"k": 0}, {"k": -3}, {"tau": 0.5}, {"tau": -0.1}])
def test_bad_parameters_raise_value_error_naming_them(kwargs):
    args = {"k": 5, "tau": 0.1, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        near_boundary(step_map(), **args)


def test_score_must_be_2d():
    with pytest.raises(ValueError, match="score"):
        smooth_scores(np.zeros((4, 4, 3)), 3)


def test_refine_asks_the_scorer_for_the_band_only_and_keeps_the_rest(stand_in, textured_pair):
    a8, b8, _, _ = textured_pair()
    a, b = to_float_gray(a8), to_float_gray(b8)
    score = np.zeros(a.shape, np.float32)
    score[:, :64] = 1.0
    net = stand_in()
    refined, mask = refine(score, a, b, net, k=9, tau=0.05)
    assert mask.dtype == bool and mask.sum() == mask.shape[0] * 8
    assert net.calls == [mask.sum()]  # one score_masked call with the band; how it scores is the scorer's
    assert np.array_equal(refined[~mask], score[~mask])
    assert not np.array_equal(refined[mask], score[mask])
    assert np.isfinite(refined).all()


def test_refine_without_a_band_does_not_call_the_network(stand_in):
    net = stand_in()
    score = np.ones((32, 32), np.float32)
    refined, mask = refine(score, score, score, net, k=5, tau=0.05)
    assert not mask.any() and net.calls == [] and np.array_equal(refined, score)


def test_select_fdb_picks_the_smallest_band_that_catches_the_errors():
    truth = step_map(60, 80, 40).astype(bool)
    score = smooth_scores(truth.astype(np.float32), 15)
    score[:, 36:40] = 0.4  # the initial net is wrong just left of the boundary
    choice = select_fdb([score], [truth], ks=(3, 9, 21), taus=(0.05, 0.2), coverage=1.0)
    assert choice["coverage"] == 1.0
    caught = [g for g in choice["grid"] if g["coverage"] == 1.0]
    assert choice["band_fraction"] == min(g["band_fraction"] for g in caught)
    assert len(choice["grid"]) == 6


def test_tune_fdb_reports_the_choice_and_the_error_rate(stand_in, textured_pair):
    from types import SimpleNamespace

    a8, b8, _, truth = textured_pair()
    pairs = [SimpleNamespace(a=a8, b=b8, truth=truth)] * 2
    result = tune_fdb(stand_in(), pairs, ks=(5, 15), taus=(0.05, 0.2))
    assert {"k", "tau", "coverage", "band_fraction", "error_rate", "grid"} <= set(result)
    assert 0.0 <= result["error_rate"] < 0.1 and len(result["grid"]) == 4


def test_with_boundary_scores_the_best_deciding_band_wins():
    truth = step_map(60, 80, 40).astype(bool)
    score = truth.astype(np.float32)
    score[:, 32:40] = 0.3  # initial net wrong over 8 columns left of the edge
    score[20:40, 10:30] = 0.45  # and hesitant (but right) far from it
    bscore = truth.astype(np.float32)  # the boundary net is right everywhere
    choice = select_fdb([score], [truth], [bscore], ks=(3, 9, 21), taus=(0.05, 0.35))
    assert choice["accuracy"] == 1.0
    perfect = [g for g in choice["grid"] if g["accuracy"] == 1.0]
    assert choice["band_fraction"] == min(g["band_fraction"] for g in perfect)
    worse = select_fdb([score], [truth], [1.0 - bscore], ks=(3, 9, 21), taus=(0.05, 0.35))
    assert worse["band_fraction"] < choice["band_fraction"]  # a wrong boundary net earns a small band
    assert worse["accuracy"] < choice["accuracy"]


def test_fdb_parameters_have_one_source_of_truth():
    """k and tau come from the weights' metadata or FDBConfig, never from defaults in boundary.py."""
    import inspect

    from bamf_lib.fusion import boundary

    for fn in (boundary.smooth_scores, boundary.near_boundary, boundary.refine):
        params = inspect.signature(fn).parameters
        for name in ("k", "tau"):
            if name in params:
                assert params[name].default is inspect.Parameter.empty, (fn.__name__, name)
