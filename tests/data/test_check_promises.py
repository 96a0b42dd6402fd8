"""Severity promises of docs/data.md (``murmurlm data check``) that test_check.py does not pin:
silent audio, a missing ``.tsv`` and an undefined segmentation state are warnings (the item is kept),
NaN samples are an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from murmurlm.data.check import check_dataset
from murmurlm.data.circor import load_circor
from murmurlm.signal.synth import write_synthetic_circor


@pytest.fixture
def synth(tmp_path) -> tuple[Path, str]:
    root = tmp_path / "circor"
    ids = write_synthetic_circor(root, num_patients=2, seed=4, locations=("AV", "MV"), duration=(3.0, 3.5))
    return root, ids[0]


def _only_problem(root: Path):
    report = check_dataset(root, progress=False, workers=1)
    [problem] = report.problems
    return report, problem


def test_silent_audio_is_a_warning(synth):
    root, pid = synth
    wav = root / "training_data" / f"{pid}_AV.wav"
    n = sf.info(str(wav)).frames
    sf.write(str(wav), np.zeros(n, dtype=np.float32), 4000, subtype="PCM_16")
    report, problem = _only_problem(root)
    assert report.ok and problem.severity == "warning" and problem.path.name == wav.name
    assert "silent" in problem.message


def test_a_missing_segmentation_is_a_warning_and_the_recording_is_kept(synth):
    root, pid = synth
    (root / "training_data" / f"{pid}_MV.tsv").unlink()
    report, problem = _only_problem(root)
    assert report.ok and problem.severity == "warning" and "segmentation file missing" in problem.message
    assert report.recordings == 4
    assert any(r.name == f"{pid}_MV" for r in load_circor(root).recordings)


def test_an_undefined_state_is_a_warning_and_kept_as_unannotated(synth):
    root, pid = synth
    tsv = root / "training_data" / f"{pid}_AV.tsv"
    lines = tsv.read_text().splitlines()
    start, end, _ = lines[0].split("\t")
    tsv.write_text("\n".join([f"{start}\t{end}\t7", *lines[1:]]) + "\n")
    report, problem = _only_problem(root)
    assert report.ok and problem.severity == "warning" and (problem.path.name, problem.line) == (tsv.name, 1)
    assert "unknown state '7'" in problem.message
    recording = next(r for r in load_circor(root).recordings if r.name == f"{pid}_AV")
    assert recording.load_segments()[0].state == 0


def test_nan_samples_are_an_error(synth):
    root, pid = synth
    wav = root / "training_data" / f"{pid}_MV.wav"
    wave, rate = sf.read(str(wav), dtype="float32")
    wave[100] = np.nan
    sf.write(str(wav), wave, rate, subtype="FLOAT")
    report = check_dataset(root, progress=False, workers=1)
    assert not report.ok
    [error] = report.errors
    assert error.path.name == wav.name and "NaN or infinite" in error.message
