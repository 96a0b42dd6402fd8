"""``murmurlm serve`` argument errors (a running server is tested by tests/serve/test_load_benchmark.py)."""

from __future__ import annotations

from murmurlm.cli import main
from predict_helpers import save_tiny_checkpoint


def test_bad_port_and_missing_audio_lm(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    assert main(["serve", "--model", str(ckpt), "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err
    assert main(["serve", "--model", str(ckpt), "--audio-lm", str(tmp_path / "nope")]) == 2
    assert "nope: not found" in capsys.readouterr().err
    assert main(["serve", "--model", str(ckpt), "--max-upload-mb", "0"]) == 2
    assert "limits must be positive" in capsys.readouterr().err
    assert main(["serve", "--model", str(ckpt), "--segment-method", "guess"]) == 2
    assert "unknown segmentation method 'guess'" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
