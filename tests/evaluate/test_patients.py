"""From recordings to patients: scale_murmur, aggregate_recordings, predict_patients (hand-worked)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import aggregate_patient
from murmurlm.evaluate.patients import aggregate_recordings, predict_patients, scale_murmur
from murmurlm.evaluate.predictions import PATIENT_ID, prob_column

SCALE = [1.0, 0.35, 1.0]


def recording(murmur, outcome=None, systolic_nan=1.0):
    """Character features: P("nan") = systolic_nan for the systolic ones, 1 for the diastolic ones."""
    probs = {}
    for f in L.SYSTOLIC:
        rest = (1.0 - systolic_nan) / (f.num_classes - 1)
        probs[f.name] = np.array([systolic_nan] + [rest] * (f.num_classes - 1))
    for f in L.DIASTOLIC:
        probs[f.name] = np.eye(f.num_classes)[0]
    probs[L.MURMUR.name] = np.array(murmur, dtype=np.float64)
    if outcome is not None:
        probs[L.OUTCOME.name] = np.array(outcome, dtype=np.float64)
    return probs


def p_murmur(frame, pid, cls):
    return float(frame.loc[pid, prob_column("Murmur", cls)])


def test_scale_murmur_by_hand_and_leaves_the_rest():
    rec = recording([0.32, 0.40, 0.28])
    scaled = scale_murmur(rec, SCALE)
    # (0.32, 0.14, 0.28) / 0.74 = (16, 7, 14) / 37
    np.testing.assert_allclose(scaled["Murmur"], np.array([16, 7, 14]) / 37, rtol=1e-12)
    assert scaled["Systolic murmur timing"] is rec["Systolic murmur timing"]
    np.testing.assert_array_equal(rec["Murmur"], [0.32, 0.40, 0.28])  # the input is not changed
    for bad in ([1.0, 1.0], [1.0, 0.0, 1.0], [1.0, -1.0, 1.0]):
        with pytest.raises(ValueError, match="3 positive factors"):
            scale_murmur(rec, bad)


def test_the_murmur_scale_is_applied_once():
    raw = {"a": [recording([0.32, 0.40, 0.28])]}
    unscaled = predict_patients(raw)
    assert unscaled.loc["a", "Murmur"] == "Unknown"
    scaled = predict_patients(raw, murmur_scale=SCALE)
    assert scaled.loc["a", "Murmur"] == "Present"
    assert p_murmur(scaled, "a", "Present") == pytest.approx(16 / 37, abs=1e-12)
    # once: the same as scaling by hand and aggregating without a scale, not scaling twice
    by_hand = predict_patients({"a": [scale_murmur(r, SCALE) for r in raw["a"]]})
    pd.testing.assert_frame_equal(scaled, by_hand)
    twice = predict_patients({"a": [scale_murmur(r, SCALE) for r in raw["a"]]}, murmur_scale=SCALE)
    # (0.32, 0.049, 0.28) / 0.649
    assert p_murmur(twice, "a", "Present") == pytest.approx(0.32 / 0.649, abs=1e-12)


def test_patients_with_differing_recording_counts():
    # a: three recordings, one of them hearing a systolic murmur; b: one Absent recording
    a = [recording([0.1, 0.1, 0.8]), recording([0.7, 0.1, 0.2], systolic_nan=0.1), recording([0.2, 0.2, 0.6])]
    b = [recording([0.05, 0.05, 0.9])]
    frame = predict_patients({"a": a, "b": b})
    assert list(frame.index) == ["a", "b"] and frame.index.name == PATIENT_ID
    assert frame["Murmur"].tolist() == ["Present", "Absent"]
    # P(Present) = the maximum over recordings; the rest split by the recording means of Unknown, Absent
    # a: mean Unknown 0.4/3, Absent 1.6/3 -> (1 - 0.7) * (0.2, 0.8)
    assert p_murmur(frame, "a", "Present") == pytest.approx(0.7)
    assert p_murmur(frame, "a", "Unknown") == pytest.approx(0.3 * 0.2)
    assert p_murmur(frame, "a", "Absent") == pytest.approx(0.3 * 0.8)
    assert p_murmur(frame, "b", "Present") == pytest.approx(0.05)
    # murmur-weighted characters: weights 0.1, 0.7, 0.2 -> P(timing "nan") = 0.1 + 0.7 * 0.1 + 0.2 = 0.37 < 0.5
    assert float(frame.loc["a", prob_column("Systolic murmur timing", "nan")]) == pytest.approx(0.37)
    assert frame.loc["a", "Systolic murmur timing"] != "nan" and frame.loc["b", "Systolic murmur timing"] == "nan"
    # each row is aggregate_patient of that patient's recordings, stacked in order
    for pid, recs in (("a", a), ("b", b)):
        direct = aggregate_patient({k: np.stack([r[k] for r in recs]) for k in recs[0]})
        assert frame.loc[pid, L.FEATURE_NAMES].to_dict() == direct.labels


def test_a_patient_without_recordings_gets_no_row_and_nobody_gives_an_empty_frame():
    frame = predict_patients([("x", []), ("y", [recording([0.1, 0.1, 0.8])]), ("z", ())])
    assert list(frame.index) == ["y"]
    empty = predict_patients({"x": []})
    assert empty.empty and empty.index.name == PATIENT_ID
    assert predict_patients([]).empty


def test_rows_follow_the_input_order_and_ids_are_unique():
    rec = [recording([0.1, 0.1, 0.8])]
    assert list(predict_patients([("3", rec), ("1", rec), ("2", rec)]).index) == ["3", "1", "2"]
    assert list(predict_patients([(7, rec)]).index) == ["7"]  # ids as text
    with pytest.raises(ValueError, match="patient 1 given twice"):
        predict_patients([("1", rec), ("1", [])])


def test_heads_choose_the_aggregated_features_and_rules_pass_through():
    recs = [recording([0.2, 0.5, 0.3], outcome=[0.6, 0.4]), recording([0.1, 0.1, 0.8], outcome=[0.2, 0.8])]
    with_outcome = predict_patients({"p": recs})
    assert with_outcome.loc["p", "Outcome"] == "Normal"  # mean (0.4, 0.6)
    without = predict_patients({"p": recs}, heads=L.FEATURE_NAMES)
    assert "Outcome" not in without.columns
    # "any": an Unknown vote makes the patient Unknown; "mean": mean (0.15, 0.3, 0.55) -> Absent
    assert with_outcome.loc["p", "Murmur"] == "Unknown"
    assert predict_patients({"p": recs}, murmur_rule="mean").loc["p", "Murmur"] == "Absent"
    with pytest.raises(ValueError, match="unknown murmur_rule"):
        predict_patients({"p": recs}, murmur_rule="vote")
    with pytest.raises(ValueError, match="at least one recording"):
        aggregate_recordings([])


def test_the_predictor_scales_in_predict_features_as_predict_patients_scales_raw_probabilities():
    """The two places a scale meets probabilities agree: Predictor.predict_features (per recording,
    the checkpoint's scale) and predict_patients(murmur_scale=...) on raw probabilities."""
    from murmurlm.inference.predict import Predictor
    from murmurlm.models.compact import CompactConfig, CompactModel
    from murmurlm.signal.features import FrontEnd

    torch.manual_seed(0)
    model = CompactModel(CompactConfig(n_mels=16, channels=(4, 8))).eval()
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(16, int(n))).astype(np.float32) for n in (150, 220, 300, 180, 260)]
    plain = Predictor(model, FrontEnd(n_mels=16), 2.0, 1.0, murmur_scale=[1.0, 1.0, 1.0])
    scaled = Predictor(model, FrontEnd(n_mels=16), 2.0, 1.0, murmur_scale=[2.0, 0.35, 1.0])
    raw, ready = plain.predict_features(feats), scaled.predict_features(feats)
    for r, s in zip(raw, ready):
        for h in s:
            np.testing.assert_allclose(s[h], scale_murmur(r, scaled.murmur_scale)[h], rtol=0, atol=1e-12)
    groups = lambda probs: {"a": probs[:3], "b": probs[3:4], "c": probs[4:]}  # noqa: E731
    from_raw = scaled.predict_patients(groups(raw), murmur_scale=scaled.murmur_scale)
    from_ready = scaled.predict_patients(groups(ready))
    pd.testing.assert_frame_equal(from_raw, from_ready, rtol=0, atol=1e-12)
    columns = [c for c in (*L.FEATURE_NAMES, L.OUTCOME.name) if c in from_ready.columns]
    assert scaled.aggregate(ready[:3]).labels == from_ready.loc["a", columns].to_dict()
