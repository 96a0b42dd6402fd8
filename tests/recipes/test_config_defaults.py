"""One source of defaults: a recipe's config dataclass and its default YAML agree key by key.

``configs/compact/default.yaml`` is what ``murmurlm train`` runs without ``--config``, and the
dataclasses (``TrainConfig`` of ``recipes/train_compact.py`` with its nested ``FrontEnd`` and
``CompactConfig``) are what a run without a file, or a key the file leaves out, gets: the two must
not drift. The segmenter recipe's ``model`` section is the library's ``MambaSegmenterConfig`` itself
(no hand-written mirror). The segmenter and the audio-LM fine-tuning have no default YAML
(``configs/segment/mamba.yaml`` and ``configs/audio_lm/*.yaml`` are named runs), so only the compact
recipe is compared with a file."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from murmurlm.cli.train import DEFAULT_CONFIG as DEFAULT_NAME
from murmurlm.recipes import config_path, load_recipe
from murmurlm.config import config_to_dict, load_config

DEFAULT_CONFIG = config_path(DEFAULT_NAME)

# keys a run fills in itself, never set in a config file
DERIVED = {"model.class_weights"}  # from the training set's class counts (class_weight_power)


def _differences(defaults: dict, written: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(defaults) | set(written)):
        where = prefix + key
        if where in DERIVED:
            if key in written:
                out.append(f"{where}: derived by the run, should not be in the file")
            continue
        if key not in written:
            out.append(f"{where}: dataclass default {defaults[key]!r}, missing from the file")
        elif key not in defaults:
            out.append(f"{where}: in the file ({written[key]!r}), not a dataclass field")
        elif isinstance(defaults[key], dict) and isinstance(written[key], dict):
            out.extend(_differences(defaults[key], written[key], where + "."))
        elif defaults[key] != written[key] or isinstance(defaults[key], bool) != isinstance(written[key], bool):
            out.append(f"{where}: dataclass default {defaults[key]!r}, file {written[key]!r}")
    return out


def test_differences_are_found_recursively():
    assert _differences({"a": 1, "m": {"b": [1, 2]}}, {"a": 1, "m": {"b": [1, 2]}}) == []
    assert _differences({"a": 1, "m": {"b": [1, 2], "c": 0}}, {"a": 2, "m": {"b": [1], "d": 0}}) == [
        "a: dataclass default 1, file 2", "m.b: dataclass default [1, 2], file [1]",
        "m.c: dataclass default 0, missing from the file", "m.d: in the file (0), not a dataclass field"]
    assert _differences({"flag": False}, {"flag": 0}) == ["flag: dataclass default False, file 0"]


@pytest.fixture(scope="module")
def compact():
    return load_recipe("train_compact")


def test_compact_train_config_defaults_are_the_default_yaml(compact):
    written = yaml.safe_load(DEFAULT_CONFIG.read_text())
    defaults = config_to_dict(compact.TrainConfig())
    assert {"front_end", "model"} <= set(defaults)  # the nested configs are compared too
    assert _differences(defaults, written) == []
    # and loaded through the config loader the file gives exactly the dataclass defaults
    assert compact.load_train_config(DEFAULT_CONFIG) == compact.TrainConfig()
    assert compact.load_train_config(None) == compact.load_train_config(DEFAULT_CONFIG)


def test_segmenter_model_config_is_the_librarys():
    from murmurlm.signal.segment.mamba import MambaSegmenterConfig

    recipe = load_recipe("train_segmenter")
    field = {f.name: f for f in dataclasses.fields(recipe.TrainConfig)}["model"]
    assert field.default_factory is MambaSegmenterConfig
    assert recipe.TrainConfig().model == MambaSegmenterConfig()
    # the shipped config's keys are still valid and reach the model config
    cfg = load_config(recipe.TrainConfig, config_path("segment/mamba"), ["model.chunk_size=16"])
    assert isinstance(cfg.model, MambaSegmenterConfig) and cfg.model.chunk_size == 16
    assert cfg.model.d_model == yaml.safe_load((config_path("segment/mamba")).read_text())["model"]["d_model"]
