"""Recording-to-patient aggregation rules."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import (CHARACTER_RULES, MURMUR_RULES, aggregate_murmur,
                                         aggregate_patient)

P, U, A = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])


def onehot(feature: str, cls: str, rows: int = 1) -> np.ndarray:
    f = L.feature(feature)
    v = np.zeros((rows, f.num_classes))
    v[:, f.classes.index(cls)] = 1.0
    return v


def base_probs(murmur: list[list[float]]) -> dict[str, np.ndarray]:
    """Every character feature confidently 'no murmur' except where a test overrides it."""
    n = len(murmur)
    probs = {f.name: onehot(f.name, L.NO_MURMUR, n) for f in (*L.SYSTOLIC, *L.DIASTOLIC)}
    probs["Murmur"] = np.array(murmur, dtype=float)
    return probs


@pytest.mark.parametrize("votes, expected", [
    ([A, U, A], "Unknown"),   # no Present vote, one Unknown
    ([A, P, U], "Present"),   # any Present wins
    ([A, A], "Absent"),
    ([U], "Unknown"),
])
def test_murmur_any_rule(votes, expected):
    assert aggregate_murmur(np.array(votes), "any")[0] == expected


def test_murmur_probabilities_max_present_rest_split_by_mean():
    # P(Present) = max(0.6, 0.2) = 0.6; mean Unknown = 0.15, mean Absent = 0.45 -> shares 1/4, 3/4
    # of the remaining 0.4: Unknown 0.1, Absent 0.3.
    label, probs = aggregate_murmur(np.array([[0.6, 0.1, 0.3], [0.2, 0.2, 0.6]]))
    assert label == "Present"
    np.testing.assert_allclose(probs, [0.6, 0.1, 0.3])


def test_murmur_mean_rule_differs_from_any():
    # recording 1 votes Unknown, recording 2 Absent; the mean is (0.15, 0.3, 0.55) -> Absent
    rec = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    assert aggregate_murmur(rec, "any")[0] == "Unknown"
    assert aggregate_murmur(rec, "mean")[0] == "Absent"


def _character_case():
    # recording 1: murmur likely (P(Present) 0.8), timing Early-systolic
    # recording 2: murmur unlikely (0.2), timing says no murmur
    probs = base_probs([[0.8, 0.1, 0.1], [0.2, 0.1, 0.7]])
    for f in L.SYSTOLIC:
        probs[f.name] = np.vstack([onehot(f.name, f.classes[1]), onehot(f.name, L.NO_MURMUR)])
    probs["Systolic murmur timing"] = np.array([[0.1, 0.9, 0.0, 0.0, 0.0], [0.9, 0.0, 0.1, 0.0, 0.0]])
    return probs


def test_character_murmur_weighted_mean_and_heard():
    probs = _character_case()
    # weights 0.8 / 0.2: timing = 0.8*(0.1, 0.9, 0, 0, 0) + 0.2*(0.9, 0, 0.1, 0, 0) = (0.26, 0.72, 0.02, 0, 0)
    weighted = aggregate_patient(probs, character_rule="murmur-weighted")
    np.testing.assert_allclose(weighted.probabilities["Systolic murmur timing"], [0.26, 0.72, 0.02, 0, 0])
    assert weighted.labels["Murmur"] == "Present"
    assert weighted.labels["Systolic murmur timing"] == "Early-systolic"
    # plain mean: (0.5, 0.45, 0.05, 0, 0)
    mean = aggregate_patient(probs, character_rule="mean")
    np.testing.assert_allclose(mean.probabilities["Systolic murmur timing"], [0.5, 0.45, 0.05, 0, 0])
    # heard: only recording 1 (argmax Present)
    heard = aggregate_patient(probs, character_rule="heard")
    np.testing.assert_allclose(heard.probabilities["Systolic murmur timing"], [0.1, 0.9, 0, 0, 0])


def test_mean_rule_can_lose_the_murmur_that_weighting_keeps():
    # With the plain mean, P(nan) over the systolic group = mean(0.5, 0.5, 0.5, 0.5, 0.5) = 0.5: not
    # below 0.5, so the systolic murmur does not "exist"; Murmur is Present and no diastolic
    # murmur exists either, so the systolic one is kept anyway (documented fallback).
    pred = aggregate_patient(_character_case(), character_rule="mean")
    assert pred.labels["Murmur"] == "Present"
    assert pred.labels["Systolic murmur timing"] == "Early-systolic"  # best non-nan class
    assert pred.labels["Diastolic murmur timing"] == L.NO_MURMUR


def test_consistency_no_characters_without_present_murmur():
    probs = _character_case()
    probs["Murmur"] = np.array([A, U])
    pred = aggregate_patient(probs)
    assert pred.labels["Murmur"] == "Unknown"
    assert all(pred.labels[f.name] == L.NO_MURMUR for f in (*L.SYSTOLIC, *L.DIASTOLIC))
    # the probabilities are kept as aggregated (only labels are made consistent)
    assert pred.probabilities["Systolic murmur timing"][1] > 0


def test_diastolic_murmur_set_when_nan_does_not_dominate():
    probs = base_probs([P, P])
    for f in L.SYSTOLIC:
        probs[f.name] = onehot(f.name, f.classes[-1], 2)
    for f in L.DIASTOLIC:
        row = np.full(f.num_classes, 0.6 / (f.num_classes - 1))
        row[0] = 0.4  # P(nan) 0.4 < 0.5, but nan is still the single most likely class
        probs[f.name] = np.vstack([row, row])
    pred = aggregate_patient(probs)
    assert pred.labels["Diastolic murmur timing"] == "Early-diastolic"  # first of equal non-nan classes
    assert pred.labels["Systolic murmur quality"] == "Musical"
    assert pred.labels == L.make_consistent(pred.labels)


def test_outcome_is_mean_argmax_and_optional():
    probs = base_probs([A, A])
    assert "Outcome" not in aggregate_patient(probs).labels
    probs["Outcome"] = np.array([[0.9, 0.1], [0.2, 0.8]])  # mean (0.55, 0.45)
    pred = aggregate_patient(probs)
    assert pred.labels["Outcome"] == "Abnormal"
    np.testing.assert_allclose(pred.probabilities["Outcome"], [0.55, 0.45])


def test_single_recording_given_as_vector():
    probs = {k: v[0] for k, v in base_probs([P]).items()}
    assert aggregate_patient(probs).labels["Murmur"] == "Present"


def test_errors_are_clear():
    probs = base_probs([A])
    with pytest.raises(ValueError, match="valid: " + ", ".join(MURMUR_RULES)):
        aggregate_patient(probs, murmur_rule="majority")
    with pytest.raises(ValueError, match="valid: " + ", ".join(CHARACTER_RULES)):
        aggregate_patient(probs, character_rule="max")
    missing = dict(probs)
    del missing["Systolic murmur pitch"]
    with pytest.raises(ValueError, match="missing .*Systolic murmur pitch"):
        aggregate_patient(missing)
    with pytest.raises(ValueError, match="unknown feature"):
        aggregate_patient({**probs, "Murmur locations": np.ones((1, 5)) / 5})
    with pytest.raises(ValueError, match="same number of recordings"):
        aggregate_patient({**probs, "Murmur": np.array([A, A])})
    with pytest.raises(ValueError, match=r"shape \(recordings, 3\)"):
        aggregate_patient({**probs, "Murmur": np.ones((1, 4)) / 4})
    with pytest.raises(ValueError, match="sum to 1"):
        aggregate_patient({**probs, "Murmur": np.array([[0.5, 0.2, 0.2]])})
    with pytest.raises(ValueError, match="no recordings"):
        aggregate_murmur(np.zeros((0, 3)))
