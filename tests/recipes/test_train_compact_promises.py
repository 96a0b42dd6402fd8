"""Promises of docs/compact.md about the compact recipe's config that need no training: the shipped
``configs/compact/default.yaml`` (select: last, 25 epochs, the murmur scale [1.0, 0.35, 1.0], 20 %
validation share) builds the documented 51,110-parameter model, and values are validated on load."""

from __future__ import annotations

import pytest

from murmurlm.cli.train import DEFAULT_CONFIG as DEFAULT_NAME
from murmurlm.recipes import config_path, load_recipe
from murmurlm.errors import ConfigError
from murmurlm.models.compact import CompactModel

DEFAULT_CONFIG = config_path(DEFAULT_NAME)


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("train_compact")


def test_the_default_config_is_the_documented_one(recipe):
    assert DEFAULT_CONFIG.name == "default.yaml" and DEFAULT_CONFIG.parent.name == "compact"
    cfg = recipe.load_train_config(DEFAULT_CONFIG)
    assert (cfg.select, cfg.epochs, cfg.val_fraction) == ("last", 25, 0.2)
    assert list(cfg.murmur_scale) == [1.0, 0.35, 1.0]
    assert (cfg.batch_size, cfg.crop_seconds, cfg.window_hop_seconds, cfg.lr) == (32, 4.0, 4.0, 2e-3)
    assert (cfg.murmur_rule, cfg.character_rule) == ("any", "murmur-weighted")
    assert (cfg.front_end.sample_rate, cfg.front_end.n_mels, cfg.front_end.low, cfg.front_end.high) == \
        (2000, 64, 25.0, 800.0)
    model = CompactModel(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == 51_110


def test_values_are_validated_on_load(recipe):
    with pytest.raises(ConfigError, match=r"model\.n_mels \(32\) must equal front_end\.n_mels \(64\)"):
        recipe.load_train_config(DEFAULT_CONFIG, ["model.n_mels=32"])
    with pytest.raises(ConfigError, match="colour"):
        recipe.load_train_config(DEFAULT_CONFIG, ["colour=blue"])
