"""The predictions file: round trip and every validation error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from murmurlm.data import labels as L
from murmurlm.errors import DataFormatError
from murmurlm.evaluate.aggregate import PatientPrediction
from murmurlm.evaluate.predictions import (PROB_COLUMN, predictions_frame, prob_columns, read_predictions,
                                           select_patients, write_predictions)

HEADER = ["Patient ID", *L.FEATURE_NAMES]


def row(pid: str, murmur: str = "Absent", **extra: str) -> list[str]:
    cells = {name: "nan" for name in L.FEATURE_NAMES}
    cells["Murmur"] = murmur
    if murmur == "Present":
        for f in L.SYSTOLIC:
            cells[f.name] = f.classes[1]
    cells.update(extra)
    return [pid] + [cells[n] for n in L.FEATURE_NAMES]


def write_csv(path, header, rows):
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


def test_prob_column_naming():
    assert PROB_COLUMN.format(feature="Murmur", cls="Present") == "P(Murmur=Present)"
    assert prob_columns("Outcome") == ["P(Outcome=Abnormal)", "P(Outcome=Normal)"]


def test_read_minimal_file(tmp_path):
    path = write_csv(tmp_path / "p.csv", HEADER, [row("10"), row("2", "Present")])
    frame = read_predictions(path)
    assert list(frame.index) == ["10", "2"] and frame.index.name == "Patient ID"
    assert list(frame.columns) == list(L.FEATURE_NAMES)
    assert frame.loc["2", "Systolic murmur timing"] == "Early-systolic"
    assert frame.attrs["source"] == str(path) and frame.attrs["lines"]["2"] == 3


def test_empty_cell_and_float_nan_mean_no_murmur(tmp_path):
    r = row("1")
    r[2] = ""  # Systolic murmur timing
    frame = read_predictions(write_csv(tmp_path / "p.csv", HEADER, [r]))
    assert frame.loc["1", "Systolic murmur timing"] == L.NO_MURMUR


def test_round_trip_with_outcome_and_probabilities(tmp_path):
    rng = np.random.default_rng(0)
    preds = {}
    for pid, murmur in (("5", "Absent"), ("7", "Present")):
        labels = {n: L.NO_MURMUR for n in L.FEATURE_NAMES}
        labels["Murmur"] = murmur
        labels["Outcome"] = "Normal"
        probs = {f.name: rng.dirichlet(np.ones(f.num_classes)) for f in (L.MURMUR, L.OUTCOME, L.SYSTOLIC[0])}
        preds[pid] = PatientPrediction(labels, probs)
    frame = predictions_frame(preds)
    path = tmp_path / "out" / "pred.csv"
    write_predictions(frame, path)
    back = read_predictions(path)
    assert list(back.columns[:12]) == [*L.FEATURE_NAMES, "Outcome"]
    assert "P(Systolic murmur timing=Holosystolic)" in back.columns
    np.testing.assert_allclose(back["P(Murmur=Absent)"].to_numpy(), frame["P(Murmur=Absent)"].to_numpy(), rtol=1e-5)
    pd.testing.assert_frame_equal(back[list(L.FEATURE_NAMES)], frame[list(L.FEATURE_NAMES)])


def test_missing_column(tmp_path):
    header = [h for h in HEADER if h != "Systolic murmur pitch"]
    rows = [[c for h, c in zip(HEADER, row("1")) if h != "Systolic murmur pitch"]]
    with pytest.raises(DataFormatError, match=r"p\.csv:1: missing column\(s\): Systolic murmur pitch"):
        read_predictions(write_csv(tmp_path / "p.csv", header, rows))
    with pytest.raises(DataFormatError, match="no 'Patient ID' column"):
        read_predictions(write_csv(tmp_path / "q.csv", HEADER[1:], [row("1")[1:]]))


def test_duplicate_patient_row(tmp_path):
    path = write_csv(tmp_path / "p.csv", HEADER, [row("1"), row("2"), row("1")])
    with pytest.raises(DataFormatError, match=r"p\.csv:4: patient 1 appears twice \(first on line 2\)"):
        read_predictions(path)


def test_unknown_label_string(tmp_path):
    path = write_csv(tmp_path / "p.csv", HEADER, [row("1"), row("2", "Present", **{"Systolic murmur pitch": "Loud"})])
    with pytest.raises(DataFormatError, match=r"p\.csv:3: patient 2: unknown label 'Loud' for 'Systolic murmur pitch'; valid: nan, Low"):
        read_predictions(path)
    path = write_csv(tmp_path / "q.csv", HEADER, [row("1", "")])  # empty Murmur is not a class
    with pytest.raises(DataFormatError, match="q.csv:2: patient 1: unknown label 'nan' for 'Murmur'"):
        read_predictions(path)


def test_probability_columns_checked(tmp_path):
    header = HEADER + prob_columns("Murmur")
    with pytest.raises(DataFormatError, match=r"p\.csv:2: patient 1: P\(Murmur=Unknown\) = 1.5 is not a probability"):
        read_predictions(write_csv(tmp_path / "p.csv", header, [row("1") + ["0.2", "1.5", "0.3"]]))
    with pytest.raises(DataFormatError, match="is not a number"):
        read_predictions(write_csv(tmp_path / "p.csv", header, [row("1") + ["0.2", "x", "0.3"]]))
    with pytest.raises(DataFormatError, match=r"incomplete: missing P\(Murmur=Absent\)"):
        read_predictions(write_csv(tmp_path / "p.csv", header[:-1], [row("1") + ["0.2", "0.3"]]))
    with pytest.raises(DataFormatError, match="unknown class 'Maybe'"):
        read_predictions(write_csv(tmp_path / "p.csv", HEADER + ["P(Murmur=Maybe)"], [row("1") + ["0.2"]]))
    with pytest.raises(DataFormatError, match="unknown feature 'Loudness'"):
        read_predictions(write_csv(tmp_path / "p.csv", HEADER + ["P(Loudness=High)"], [row("1") + ["0.2"]]))


def test_other_errors(tmp_path):
    with pytest.raises(DataFormatError, match="predictions file not found"):
        read_predictions(tmp_path / "none.csv")
    with pytest.raises(DataFormatError, match="no patient rows"):
        read_predictions(write_csv(tmp_path / "p.csv", HEADER, []))
    with pytest.raises(DataFormatError, match=r"p\.csv:2: 3 fields, the header has 12"):
        read_predictions(write_csv(tmp_path / "p.csv", HEADER, [["1", "Absent", "nan"]]))
    # unrelated extra columns are ignored
    frame = read_predictions(write_csv(tmp_path / "p.csv", HEADER + ["note"], [row("1") + ["hi"]]))
    assert "note" not in frame.columns


def test_select_patients_missing_extra_and_strangers(tmp_path):
    frame = read_predictions(write_csv(tmp_path / "p.csv", HEADER, [row("1"), row("2"), row("99")]))
    with pytest.raises(DataFormatError, match=r"p\.csv: no prediction for 1 patient\(s\): 3"):
        select_patients(frame, ["1", "3"])
    with pytest.raises(DataFormatError, match=r"p\.csv:4: 1 patient\(s\) not in the dataset: 99"):
        select_patients(frame, ["1"], known_ids=["1", "2", "3"])
    picked = select_patients(frame, ["2", "1"], known_ids=["1", "2", "99"])
    assert list(picked.index) == ["2", "1"] and picked.attrs["source"] == frame.attrs["source"]


def test_predictions_frame_rejects_inconsistent_input():
    labels = {n: L.NO_MURMUR for n in L.FEATURE_NAMES}
    labels["Murmur"] = "Absent"
    with pytest.raises(ValueError, match="'Outcome' missing for patient"):
        predictions_frame({"1": PatientPrediction({**labels, "Outcome": "Normal"}), "2": PatientPrediction(labels)})
    with pytest.raises(ValueError, match="probabilities of 'Murmur' missing"):
        predictions_frame({"1": PatientPrediction(labels, {"Murmur": np.array([0.1, 0.1, 0.8])}),
                           "2": PatientPrediction(labels)})
    with pytest.raises(ValueError, match="have 2 classes"):
        predictions_frame({"1": PatientPrediction(labels, {"Murmur": np.array([0.5, 0.5])})})
    with pytest.raises(L.LabelError):
        predictions_frame({"1": PatientPrediction({**labels, "Murmur": "Yes"})})
    with pytest.raises(ValueError, match="no patients"):
        predictions_frame({})


def test_bom_crlf_quotes_and_duplicated_header(tmp_path):
    text = "\r\n".join(",".join(f'"{c}"' for c in r) for r in [HEADER, row(" 7 ", "Absent")]) + "\r\n"
    path = tmp_path / "p.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    frame = read_predictions(path)
    assert list(frame.index) == ["7"] and frame.loc["7", "Murmur"] == "Absent"
    with pytest.raises(DataFormatError, match=r"p2\.csv:1: duplicated column\(s\): Murmur"):
        read_predictions(write_csv(tmp_path / "p2.csv", HEADER + ["Murmur"], [row("1") + ["Absent"]]))
    (tmp_path / "p3.csv").write_text("")
    with pytest.raises(DataFormatError, match="empty predictions file"):
        read_predictions(tmp_path / "p3.csv")


def test_location_columns_are_read_checked_and_ordered(tmp_path):
    header = [*HEADER, "Murmur locations", "Most audible location"]
    path = write_csv(tmp_path / "p.csv", header, [row("1") + ["nan", "nan"], row("2", "Present") + ["TV+AV", "TV"]])
    frame = read_predictions(path)
    assert frame.loc["2", "Murmur locations"] == "AV+TV" and frame.loc["2", "Most audible location"] == "TV"
    assert frame.loc["1", "Murmur locations"] == "nan"
    bad = write_csv(tmp_path / "b.csv", header, [row("1", "Present") + ["AV+XX", "AV"]])
    with pytest.raises(DataFormatError, match=r"b\.csv:2: patient 1: unknown location 'XX'"):
        read_predictions(bad)
    bad = write_csv(tmp_path / "c.csv", header + ["P(Murmur locations=AV)"], [row("1") + ["nan", "nan", "0.5"]])
    with pytest.raises(DataFormatError, match="unknown feature 'Murmur locations'"):
        read_predictions(bad)
