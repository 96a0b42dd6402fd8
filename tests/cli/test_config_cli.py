"""``murmurlm config list|cp`` and ``--config NAME``: the shipped configs, found by name."""

from __future__ import annotations

import pytest

from murmurlm.cli import main
from murmurlm.errors import ConfigError
from murmurlm.recipes import config_names, config_path, resolve_config, shipped_file


def test_list_names_every_shipped_run_config(capsys):
    assert main(["config", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == config_names()
    assert {"compact/default", "audio_lm/tiny", "audio_lm/whisper_base_cpu", "audio_lm/qwen2_audio_7b",
            "segment/mamba"} <= set(listed)
    assert "audio_lm/prompts" not in listed  # a file configs refer to, not a run config
    assert main(["config", "list", "--all"]) == 0
    assert "audio_lm/prompts" in capsys.readouterr().out


def test_cp_copies_and_refuses_to_overwrite(tmp_path, capsys):
    dest = tmp_path / "mine.yaml"
    assert main(["config", "cp", "compact/default", str(dest)]) == 0
    assert dest.read_text() == config_path("compact/default").read_text()
    dest.write_text("seed: 3\n")
    assert main(["config", "cp", "compact/default", str(dest)]) == 2
    assert "exists" in capsys.readouterr().err and dest.read_text() == "seed: 3\n"
    assert main(["config", "cp", "compact/default", str(dest), "--force"]) == 0
    assert main(["config", "cp", "segment/mamba", str(tmp_path)]) == 0  # into a folder: its own name
    assert (tmp_path / "mamba.yaml").is_file()
    assert main(["config", "cp", "compact/nope", str(tmp_path / "x.yaml")]) == 2
    assert "no shipped config named 'compact/nope'" in capsys.readouterr().err


def test_a_config_value_is_a_file_or_a_shipped_name(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("seed: 1\n")
    assert resolve_config(own) == own
    assert resolve_config("compact/default") == resolve_config("compact/default.yaml") == config_path("compact/default")
    assert resolve_config("configs/compact/default.yaml").is_file()  # the checkout's spelling, from anywhere
    assert resolve_config(None) is None
    with pytest.raises(ConfigError, match="neither a file nor a shipped config"):
        resolve_config(tmp_path / "missing.yaml")


def test_files_a_config_names_are_found_in_the_shipped_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout: relative names must resolve inside the package
    assert shipped_file("audio_lm/prompts.yaml") == shipped_file("configs/audio_lm/prompts.yaml")
    assert shipped_file("audio_lm/prompts.yaml").is_file()
    (tmp_path / "my_prompts.yaml").write_text("x: 1\n")
    assert shipped_file("my_prompts.yaml").name == "my_prompts.yaml"
    with pytest.raises(ConfigError, match="file not found"):
        shipped_file("audio_lm/none.yaml")


def test_train_takes_a_shipped_name(tmp_path):
    from murmurlm.signal.synth import write_synthetic_circor

    data = tmp_path / "circor"
    write_synthetic_circor(data, num_patients=6, seed=2, locations=("MV",), duration=(3.0, 3.0))
    assert main(["train", "--config", "compact/default", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--no-progress", "epochs=1", "crop_seconds=2.0", "model.channels=[8,16]",
                 f"cache_dir={tmp_path / 'cache'}"]) == 0
    assert main(["train", "--config", "compact/missing", "--data", str(data), "--out", str(tmp_path / "r2")]) == 2


def test_the_recipe_script_takes_the_shared_command_line(tmp_path):
    """``python -m murmurlm.recipes.train_compact``: the arguments every recipe shares."""
    from murmurlm.recipes import train_compact
    from murmurlm.signal.synth import write_synthetic_circor

    data = tmp_path / "circor"
    write_synthetic_circor(data, num_patients=6, seed=5, locations=("MV",), duration=(3.0, 3.0))
    assert train_compact.main(["--data", str(data), "--out", str(tmp_path / "run"), "--no-progress", "epochs=1",
                               "crop_seconds=2.0", "model.channels=[8,16]", f"cache_dir={tmp_path / 'cache'}"]) == 0
    assert (tmp_path / "run" / "best.pt").is_file()
    assert train_compact.main(["--data", str(data), "--split", str(tmp_path / "nowhere"), "--out",
                               str(tmp_path / "r2")]) == 2  # a clear error, exit 2
