import dataclasses

import pytest

from bamf_lib.config import PROFILES, FDBConfig, ModelConfig, get_profile


def test_profiles_are_consistent():
    for name, profile in PROFILES.items():
        assert profile.name == name
        # the network sees exactly the patches the synthesis makes
        assert profile.model.patch_size == profile.synthesis.patch_size


@pytest.mark.parametrize("version,depth", [("v1", 21), ("v1", 2), ("v2", 21), ("v3", 20)])
def test_invalid_model_config_is_refused(version, depth):
    with pytest.raises(ValueError, match="ModelConfig"):
        ModelConfig(version=version, depth=depth)


@pytest.mark.parametrize(("version", "depth", "blocks"), [("v1", 56, 27), ("v1", 20, 9), ("v2", 56, 18), ("v2", 29, 9)])
def test_depth_sets_the_number_of_residual_blocks(version, depth, blocks):
    """depth = 6n + 2 (v1, two convolutions a block) or 9n + 2 (v2, three), n blocks in each of 3 stages."""
    from bamf_lib.nets.models import build_model

    assert len(build_model(ModelConfig(version=version, depth=depth, width=4)).blocks) == blocks


def test_configs_are_frozen_so_a_profile_cannot_be_changed_in_place():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("quick").model.depth = 8  # type: ignore[misc]


def test_the_fallback_fdb_values_are_the_shipped_default_nets_tuned_ones():
    """FDBConfig() stands in for weights without tuned values; for the shipped default it must be
    what select_weights.py stored, and every shipped set's stored values must be valid."""
    from bamf_lib.runtime.header import header_info
    from bamf_lib.runtime.locate import WEIGHTS_DIR

    _, default = header_info(WEIGHTS_DIR / "initial.safetensors")
    assert FDBConfig(**default["fdb"]) == FDBConfig()
    for file in sorted(WEIGHTS_DIR.glob("*/initial.safetensors")):
        stored = header_info(file)[1].get("fdb")
        assert stored is None or FDBConfig(**stored), file


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="quick"):
        get_profile("nope")


@pytest.mark.parametrize("kwargs", [{"k": 4}, {"k": 0}, {"tau": 0.5}, {"tau": -0.1}])
def test_fdb_config_validation(kwargs):
    with pytest.raises(ValueError, match="FDBConfig"):
        FDBConfig(**kwargs)
