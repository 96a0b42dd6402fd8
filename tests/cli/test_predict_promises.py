"""A promise of docs/serve.md about ``murmurlm predict`` that test_predict_cli.py does not pin: without
``--out`` the predictions CSV of several files goes to stdout, one row per file (``Patient ID`` = the
file stem), in the format ``murmurlm evaluate`` reads."""

from __future__ import annotations

import soundfile as sf

from murmurlm.cli import main
from murmurlm.data import labels as L
from murmurlm.evaluate.predictions import read_predictions
from predict_helpers import save_tiny_checkpoint, synthetic_wave


def test_the_csv_of_several_files_goes_to_stdout(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    folder = tmp_path / "recordings"
    folder.mkdir()
    sf.write(folder / "first.wav", synthetic_wave(5.0, 4000, seed=0), 4000)
    sf.write(folder / "second.flac", synthetic_wave(5.0, 8000, seed=1), 8000, format="FLAC")
    assert main(["predict", "--model", str(ckpt), str(folder / "first.wav"), str(folder / "second.flac")]) == 0
    out = capsys.readouterr().out
    csv = tmp_path / "stdout.csv"
    csv.write_text(out)
    frame = read_predictions(csv)  # validated: every feature column, consistent labels, probabilities
    assert sorted(frame.index) == ["first", "second"]
    assert "P(Murmur=Present)" in frame.columns and set(L.FEATURE_NAMES) <= set(frame.columns)
