import pytest

from bamf_lib.config import PROFILES, FDBConfig, ModelConfig, get_profile


def test_profiles_are_consistent():
    for name, profile in PROFILES.items():
        assert profile.name == name
        # the network sees exactly the patches the synthesis makes
        assert profile.model.patch_size == profile.synthesis.patch_size


def test_paper_profile_matches_the_paper():
    paper = get_profile("paper")
    assert paper.model.depth == 56 and paper.model.patch_size == 64
    assert paper.train.batch_size == 128 and paper.train.epochs == 200
    assert paper.train.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("version,depth", [("v1", 21), ("v1", 2), ("v2", 21), ("v3", 20)])
def test_invalid_model_config_is_refused(version, depth):
    with pytest.raises(ValueError, match="ModelConfig"):
        ModelConfig(version=version, depth=depth)


def test_valid_depths():
    assert ModelConfig(version="v1", depth=56).depth == 56
    assert ModelConfig(version="v2", depth=56).depth == 56


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="quick"):
        get_profile("nope")


@pytest.mark.parametrize("kwargs", [{"k": 4}, {"k": 0}, {"tau": 0.5}, {"tau": -0.1}])
def test_fdb_config_validation(kwargs):
    with pytest.raises(ValueError, match="FDBConfig"):
        FDBConfig(**kwargs)
