"""recipes.team_code: murmurlm behind the PhysioNet Challenge 2022 model interface."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from murmurlm.data.circor import load_circor
from murmurlm.errors import DataFormatError
from murmurlm.evaluate.challenge import CHALLENGE_CLASSES
from murmurlm.recipes.team_code import load_challenge_model, run_challenge_model, train_challenge_model

TINY = ["epochs=1", "batch_size=16", "crop_seconds=2.0", "model.channels=[4,8]", "threads=1"]


@pytest.mark.slow
def test_train_load_run_as_the_harness_calls_them(synthetic_circor, tmp_path):
    """The harness's three calls, its inputs as it reads them (header text, int16 PCM arrays): the
    answer is the Challenge's classes with one murmur and one outcome label, and the same patient
    answer murmurlm gives through predict_dataset."""
    from murmurlm.inference.predict import predict_dataset

    train_challenge_model(synthetic_circor, tmp_path / "model", verbose=0, overrides=TINY, members=1)
    model = load_challenge_model(tmp_path / "model", verbose=0)
    patient = load_circor(synthetic_circor).patients[0]
    data = (patient.recordings[0].audio_path.parent / f"{patient.patient_id}.txt").read_text()
    recordings = [sf.read(r.audio_path, dtype="int16")[0] for r in patient.recordings]
    classes, labels, probabilities = run_challenge_model(model, data, recordings, verbose=0)
    assert list(classes) == list(CHALLENGE_CLASSES)
    assert labels[:3].sum() == 1 and labels[3:].sum() == 1
    assert probabilities[:3].sum() == pytest.approx(1.0) and probabilities[3:].sum() == pytest.approx(1.0)
    frame, _ = predict_dataset(model, synthetic_circor, [patient.patient_id], progress=False)
    row = frame.loc[patient.patient_id]
    assert classes[int(np.argmax(labels[:3]))] == row["Murmur"]
    np.testing.assert_allclose(probabilities[:3], [row[f"P(Murmur={c})"] for c in CHALLENGE_CLASSES[:3]], atol=1e-4)


def test_a_bad_header_is_named():
    with pytest.raises(DataFormatError, match="<patient data>:1: number of recordings"):
        run_challenge_model(None, "not a header\n", [np.zeros(4000, np.int16)])
