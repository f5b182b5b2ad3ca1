"""Run configuration: round trips, presets, command-line overrides and their error messages."""
from __future__ import annotations

import dataclasses
import json

import pytest

from pdiff.core.config import RunConfig, config_from_dict, config_hash, config_to_dict, parse_set, with_overrides
from pdiff.core.errors import ConfigError
from pdiff.core.presets import PRESET_OVERRIDES, preset


@pytest.mark.parametrize("name", sorted(PRESET_OVERRIDES))
def test_config_dict_round_trip_through_json(name):
    config = preset(name)
    data = json.loads(json.dumps(config_to_dict(config)))  # what run.json holds
    assert config_from_dict(data) == config
    assert config_hash(config_from_dict(data)) == config_hash(config)


def test_config_from_dict_defaults_missing_and_rejects_unknown():
    assert config_from_dict({}) == RunConfig()
    assert config_from_dict({"autoencoder": {"steps": 7}}).autoencoder.steps == 7
    with pytest.raises(ConfigError, match="autoencoder.stepz"):
        config_from_dict({"autoencoder": {"stepz": 7}})


def test_config_is_frozen_and_overrides_do_not_mutate():
    base = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.seed = 3  # type: ignore[misc]
    changed = with_overrides(base, {"seed": 3, "autoencoder.steps": 10})
    assert base.seed == 0 and base.autoencoder.steps == RunConfig().autoencoder.steps
    assert changed.seed == 3 and changed.autoencoder.steps == 10
    assert config_hash(changed) != config_hash(base)


def test_parse_set_types():
    parsed = parse_set(["autoencoder.steps=500", "collect.lr=0.01", "analysis.umap=false", "data.name=digits",
                        "autoencoder.channels=[8,16]", "collect.target=last-norm:2,head.*", "x.y=a=b"])
    assert parsed == {"autoencoder.steps": 500, "collect.lr": 0.01, "analysis.umap": False, "data.name": "digits",
                      "autoencoder.channels": [8, 16], "collect.target": "last-norm:2,head.*", "x.y": "a=b"}
    assert type(parsed["autoencoder.steps"]) is int and type(parsed["collect.lr"]) is float
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["autoencoder.steps"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["=3"])


def test_overrides_are_coerced_to_field_types():
    config = with_overrides(RunConfig(), {"autoencoder.channels": [8, 16], "collect.lr": 1, "analysis.umap": "no",
                                          "diffusion.steps": 20.0, "baselines.noise_sigmas": 0.5})
    assert config.autoencoder.channels == (8, 16)
    assert config.collect.lr == 1.0 and type(config.collect.lr) is float
    assert config.analysis.umap is False
    assert config.diffusion.steps == 20 and type(config.diffusion.steps) is int
    assert config.baselines.noise_sigmas == (0.5,)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'autoencoder.stepz'; valid keys here: .*latent_dim.*steps"):
        with_overrides(RunConfig(), {"autoencoder.stepz": 3})
    with pytest.raises(ConfigError, match=r"unknown config key 'nope'.*autoencoder.*diffusion"):
        with_overrides(RunConfig(), {"nope": 3})
    with pytest.raises(ConfigError, match="is a section"):
        with_overrides(RunConfig(), {"autoencoder": 3})
    with pytest.raises(ConfigError, match="has no sub-keys"):
        with_overrides(RunConfig(), {"seed.x": 3})


@pytest.mark.parametrize("key,value", [("autoencoder.steps", "many"), ("autoencoder.steps", 2.5),
                                       ("autoencoder.steps", True), ("collect.lr", "fast"),
                                       ("analysis.umap", "maybe"), ("autoencoder.channels", ["a"])])
def test_bad_type_names_key_and_expected_type(key, value):
    with pytest.raises(ConfigError, match=rf"'{key}' expects (int|float|bool|tuple)"):
        with_overrides(RunConfig(), {key: value})


@pytest.mark.parametrize("key,value,needs", [("autoencoder.steps", 0, "> 0"), ("collect.lr", -0.1, "> 0"),
                                             ("sample.eta", -1.0, ">= 0"), ("evaluate.chunk_size", -5, ">= 0")])
def test_out_of_range_values_name_the_key(key, value, needs):
    with pytest.raises(ConfigError, match=rf"'{key}' must be {needs}"):
        with_overrides(RunConfig(), {key: value})


def test_cross_field_validation():
    with pytest.raises(ConfigError, match=r"unknown sample.sampler 'leapfrog'; samplers: ddpm, ddim, euler, heun"):
        with_overrides(RunConfig(), {"sample.sampler": "leapfrog"})
    with pytest.raises(ConfigError, match=r"sample.steps \(50\) cannot exceed diffusion.timesteps \(20\)"):
        with_overrides(RunConfig(), {"diffusion.timesteps": 20, "sample.steps": 50})
    assert with_overrides(RunConfig(), {"diffusion.timesteps": 20}).sample.steps == 0  # 0: the sampler's default
    with pytest.raises(ConfigError, match="beta_start < beta_end"):
        with_overrides(RunConfig(), {"diffusion.beta_start": 0.5, "diffusion.beta_end": 0.1})
    with pytest.raises(ConfigError, match="odd"):
        with_overrides(RunConfig(), {"autoencoder.kernel": 4})
    with pytest.raises(ConfigError, match="collect.optimizer"):
        with_overrides(RunConfig(), {"collect.optimizer": "adam"})
    with pytest.raises(ConfigError, match="device"):
        with_overrides(RunConfig(), {"device": "tpu"})
    assert with_overrides(RunConfig(), {"sample.sampler": "ddim"}).sample.sampler == "ddim"


def test_zoo_size_is_checked_against_the_stages_that_need_checkpoints():
    with pytest.raises(ConfigError, match=r"collect.seeds \(5\) cannot exceed collect.num_checkpoints \(4\)"):
        with_overrides(RunConfig(), {"collect.num_checkpoints": 4, "collect.seeds": 5})
    with pytest.raises(ConfigError, match=r"heldout_every=1 holds out all 10 checkpoints, leaving none"):
        with_overrides(RunConfig(), {"collect.num_checkpoints": 10, "collect.heldout_every": 1})
    assert with_overrides(RunConfig(), {"collect.num_checkpoints": 2, "collect.heldout_every": 2}).collect.heldout_every == 2
    assert with_overrides(RunConfig(), {"collect.num_checkpoints": 1}).collect.num_checkpoints == 1  # the paper's K=1
