"""evaluate.challenge: the PhysioNet Challenge 2022 output files, written and read back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from murmurlm.data import labels as L
from murmurlm.errors import DataFormatError
from murmurlm.evaluate.challenge import (CHALLENGE_CLASSES, challenge_probabilities, read_challenge_output,
                                         write_challenge_outputs)
from murmurlm.evaluate.predictions import prob_column


def frame(rows):
    data = {}
    for pid, murmur, outcome, pm, po in rows:
        row = {f: L.NO_MURMUR for f in L.FEATURE_NAMES} | {L.MURMUR.name: murmur, L.OUTCOME.name: outcome}
        row |= {prob_column(L.MURMUR.name, c): p for c, p in zip(L.MURMUR.classes, pm)}
        row |= {prob_column(L.OUTCOME.name, c): p for c, p in zip(L.OUTCOME.classes, po)}
        data[pid] = row
    return pd.DataFrame.from_dict(data, orient="index")


def test_files_parse_back_into_the_same_labels_and_probabilities(tmp_path):
    rows = [("50782", "Present", "Abnormal", [0.71, 0.19, 0.1], [0.66, 0.34]),
            ("9979", "Absent", "Normal", [0.05, 0.15, 0.8], [0.2, 0.8]),
            ("1234", "Unknown", "Normal", [1 / 3, 1 / 3, 1 / 3], [0.49, 0.51])]
    written = write_challenge_outputs(frame(rows), tmp_path / "out")
    assert sorted(p.name for p in written) == ["1234.csv", "50782.csv", "9979.csv"]
    for pid, murmur, outcome, pm, po in rows:
        got = read_challenge_output(tmp_path / "out" / f"{pid}.csv")
        assert got.patient_id == pid and got.classes == CHALLENGE_CLASSES
        assert got.label(("Present", "Unknown", "Absent")) == murmur and got.label(("Abnormal", "Normal")) == outcome
        probs = challenge_probabilities(got)
        np.testing.assert_allclose(probs[L.MURMUR.name], pm, atol=1e-6)
        np.testing.assert_allclose(probs[L.OUTCOME.name], po, atol=1e-6)
    assert (tmp_path / "out" / "50782.csv").read_text().splitlines()[:3] == [
        "#50782", "Present,Unknown,Absent,Abnormal,Normal", "1,0,0,1,0"]


def test_a_frame_without_outcome_is_refused_by_name(tmp_path):
    f = frame([("1", "Present", "Normal", [0.6, 0.2, 0.2], [0.5, 0.5])]).drop(columns=[L.OUTCOME.name])
    with pytest.raises(ValueError, match="missing: Outcome"):
        write_challenge_outputs(f, tmp_path)


@pytest.mark.parametrize("text, line, message", [
    ("50782\nPresent,Unknown,Absent,Abnormal,Normal\n1,0,0,1,0\n0.7,0.2,0.1,0.6,0.4\n", 1, "#<patient id>"),
    ("#1\nPresent,Unknown,Absent,Abnormal\n1,0,0,1\n0.7,0.2,0.1,0.6\n", 2, "classes"),
    ("#1\nPresent,Unknown,Absent,Abnormal,Normal\n1,1,0,1,0\n0.7,0.2,0.1,0.6,0.4\n", 3, "exactly one"),
    ("#1\nPresent,Unknown,Absent,Abnormal,Normal\n1,0,0,1,0\n0.7,x,0.1,0.6,0.4\n", 4, "numbers"),
    ("#1\nPresent,Unknown,Absent,Abnormal,Normal\n1,0,0,1,0\n0.7,0.2,0.1,1.6,0.4\n", 4, r"\[0, 1\]"),
    ("#1\nPresent,Unknown\n", None, "4 lines"),
])
def test_a_malformed_file_names_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message) as err:
        read_challenge_output(path)
    assert "bad.csv" in str(err.value)
    if line is not None:
        assert f":{line}" in str(err.value) or f"line {line}" in str(err.value)
