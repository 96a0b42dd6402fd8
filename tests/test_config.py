"""The config loader: YAML -> dataclass, key=value overrides, unknown keys, types, nesting, YAML errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from murmurlm.config import config_to_dict, load_config, parse_override, save_config
from murmurlm.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "cosine"


@dataclass
class Lora:
    rank: int = 8
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class Run:
    epochs: int = 10
    name: str = "run"
    out: Path = Path("runs")
    seed: Optional[int] = None
    fp16: bool = False
    optim: Optim = field(default_factory=Optim)
    lora: Lora = field(default_factory=Lora)

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults_file_and_overrides_in_order(tmp_path):
    assert load_config(Run) == Run()
    path = _yaml(tmp_path, "# murmurlm train run.yaml\nepochs: 4\noptim:\n  lr: 3e-4  # YAML reads this as a string\n")
    cfg = load_config(Run, path, ["epochs=7", "optim.schedule=constant", "lora.targets=[q_proj]"])
    assert cfg.epochs == 7 and cfg.optim.lr == pytest.approx(3e-4) and cfg.optim.schedule == "constant"
    assert cfg.lora.targets == ["q_proj"] and cfg.lora.rank == 8 and cfg.optim.betas == (0.9, 0.999)
    assert load_config(Run, path, ["optim.lr=1e-2"]).optim.lr == pytest.approx(0.01)


def test_override_values_are_converted_to_the_field_type():
    cfg = load_config(Run, overrides=["seed=3", "out=/tmp/x", "name=1e3", "fp16=true",
                                      "optim.betas=[0.8, 0.9]", "epochs=2e1"])
    assert cfg.seed == 3 and cfg.out == Path("/tmp/x") and cfg.name == "1e3" and cfg.fp16 is True
    assert cfg.optim.betas == (0.8, 0.9) and isinstance(cfg.optim.betas, tuple) and cfg.epochs == 20
    assert load_config(Run, overrides=["seed=null"]).seed is None
    assert parse_override("optim.lr = 3e-4") == ("optim.lr", "3e-4")
    assert parse_override("name=") == ("name", "")


@pytest.mark.parametrize("override, message", [
    ("nope=1", "unknown config key(s) nope; valid: epochs, name, out, seed, fp16, optim, lora"),
    ("optim.momentum=0.9", "unknown config key(s) optim.momentum; valid: optim.lr, optim.betas, optim.schedule"),
    ("epochs=2.5", "epochs: expected a whole number, got 2.5"),
    ("epochs=ten", "epochs: expected a number, got 'ten'"),
    ("epochs=.inf", "epochs: expected a whole number"),
    ("epochs=true", "epochs: expected a number, got True"),
    ("fp16=1", "fp16: expected true or false, got 1"),
    ("optim.schedule=linear", "optim.schedule: 'linear' is not one of 'constant', 'cosine'"),
    ("optim=3", "optim: expected a mapping for Optim, got 3"),
    ("lora.targets=q_proj", "lora.targets: expected a list"),
    ("seed=abc", "seed: 'abc' fits none of"),
    ("epochs=0", "epochs must be >= 1, got 0"),
    ("no_equals_sign", "must look like key=value"),
    ("=3", "must look like key=value"),
    ("epochs.x=1", "epochs: expected a number, got {'x': 1}"),
])
def test_bad_overrides_are_config_errors(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(Run, overrides=[override])
    assert message in str(info.value)


def test_yaml_errors_name_file_and_line(tmp_path):
    path = _yaml(tmp_path, "epochs: 3\noptim:\n  lr: [1, 2\nname: x\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: invalid YAML"):
        load_config(Run, path)
    path = _yaml(tmp_path, "epochs: 3\n\tname: x\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: invalid YAML"):
        load_config(Run, path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Run, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Run, _yaml(tmp_path, "- epochs\n"))
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(Run, _yaml(tmp_path, "optim:\n  lr: 0.1\n  warmup: 10\n"))
    assert load_config(Run, _yaml(tmp_path, "# only comments\n")) == Run()


def test_resolved_config_round_trip(tmp_path):
    cfg = load_config(Run, overrides=["seed=1", "lora.rank=16"])
    plain = config_to_dict(cfg)
    assert plain["out"] == "runs" and plain["optim"]["betas"] == [0.9, 0.999] and plain["lora"]["rank"] == 16
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(Run, tmp_path / "resolved.yaml") == cfg


def test_configs_defined_in_a_local_scope():
    @dataclass
    class Inner:
        width: int = 2

    @dataclass
    class Outer:
        inner: Inner = field(default_factory=Inner)

    assert load_config(Outer, overrides=["inner.width=5"]).inner.width == 5


def test_required_fields():
    @dataclass
    class Needs:
        data: Path

    assert load_config(Needs, overrides=["data=/x"]).data == Path("/x")
    with pytest.raises(ConfigError, match="data"):
        load_config(Needs)
