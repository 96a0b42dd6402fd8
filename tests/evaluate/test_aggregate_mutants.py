"""Aggregation behaviour that the mutation benchmark (benchmarks/mutation.py) showed untested:
input validation and its messages, renormalisation, the murmur-exists threshold, Outcome, the
``murmur_rule`` reaching :func:`aggregate_patient`.

Expected values follow the rules of the module docstring of :mod:`murmurlm.evaluate.aggregate`."""

from __future__ import annotations

import re

import numpy as np
import pytest

from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import aggregate_murmur, aggregate_patient


def nan_rows(p_nan: float, rows: int = 1) -> dict[str, np.ndarray]:
    """Every character feature with P("nan") = p_nan and the rest on its first present class."""
    out = {}
    for f in (*L.SYSTOLIC, *L.DIASTOLIC):
        v = np.zeros((rows, f.num_classes))
        v[:, 0], v[:, 1] = p_nan, 1.0 - p_nan
        out[f.name] = v
    return out


def probs_with(murmur, systolic_nan: float, diastolic_nan: float) -> dict[str, np.ndarray]:
    rows = len(murmur)
    sys_, dia = nan_rows(systolic_nan, rows), nan_rows(diastolic_nan, rows)
    probs = {f.name: sys_[f.name] for f in L.SYSTOLIC} | {f.name: dia[f.name] for f in L.DIASTOLIC}
    probs["Murmur"] = np.array(murmur, dtype=float)
    return probs


def test_rule_errors_name_the_rule_and_the_choices():
    m = np.array([[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^unknown murmur_rule 'max'; valid: any, mean$"):
        aggregate_murmur(m, rule="max")
    probs = probs_with([[1.0, 0.0, 0.0]], 0.1, 0.9)
    with pytest.raises(ValueError, match=r"^unknown murmur_rule 'max'; valid: any, mean$"):
        aggregate_patient(probs, murmur_rule="max")
    with pytest.raises(ValueError, match=r"^unknown character_rule 'max'; valid: murmur-weighted, heard, mean$"):
        aggregate_patient(probs, character_rule="max")


def test_feature_errors_list_what_is_wrong():
    probs = probs_with([[1.0, 0.0, 0.0]], 0.1, 0.9)
    allowed = ", ".join((*L.FEATURE_NAMES, "Outcome"))
    with pytest.raises(ValueError, match=re.escape(f"unknown feature(s) ['Colour']; valid: {allowed}")):
        aggregate_patient(probs | {"Colour": np.array([[1.0]])})
    partial = {k: v for k, v in probs.items() if k not in ("Systolic murmur timing", "Diastolic murmur shape")}
    with pytest.raises(ValueError, match=r"^missing recording probabilities for: Systolic murmur timing, "
                                         r"Diastolic murmur shape$"):
        aggregate_patient(partial)


def test_probability_errors():
    with pytest.raises(ValueError, match=re.escape("'Murmur': expected probabilities of shape (recordings, 3) "
                                                   "in class order ('Present', 'Unknown', 'Absent'), got shape (2, 4)")):
        aggregate_murmur(np.full((2, 4), 0.25))
    for bad in ([[-0.5, 0.5, 1.0]], [[np.nan, 0.5, 0.5]], [[np.inf, 0.0, 0.0]]):
        with pytest.raises(ValueError, match=r"^'Murmur': probabilities must be finite and non-negative$"):
            aggregate_murmur(np.array(bad))
    with pytest.raises(ValueError, match=re.escape("'Murmur': each recording's probabilities must sum to 1, "
                                                   "got sums [0.9123, 1.0]")):
        aggregate_murmur(np.array([[0.5, 0.412345, 0.0], [0.2, 0.3, 0.5]]))


def test_rows_within_the_tolerance_are_renormalised():
    # rows summing to 1.0005 (inside the 1e-3 tolerance) are divided by their sums
    label, p = aggregate_murmur(np.array([[0.5005, 0.25, 0.25], [0.2, 0.4, 0.4005]]))
    assert p[0] == pytest.approx(0.5005 / 1.0005, abs=1e-12)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    probs = probs_with([[0.5005, 0.25, 0.25]], 0.1, 0.9)
    probs["Systolic murmur pitch"] = np.array([[0.1, 0.3, 0.6005, 0.0]])
    pred = aggregate_patient(probs, character_rule="mean")
    np.testing.assert_allclose(pred.probabilities["Systolic murmur pitch"], np.array([0.1, 0.3, 0.6005, 0.0]) / 1.0005,
                               atol=1e-12)


def test_float32_input_is_aggregated_in_float64():
    m32 = np.array([[0.2, 0.3, 0.5], [0.7, 0.1, 0.2]], dtype=np.float32)
    label32, p32 = aggregate_murmur(m32)
    label64, p64 = aggregate_murmur(m32.astype(np.float64))
    assert label32 == label64 and p32.dtype == np.float64
    np.testing.assert_array_equal(p32, p64)
    probs = probs_with([[0.2, 0.3, 0.5], [0.7, 0.1, 0.2]], 0.3, 0.8)
    p32 = aggregate_patient({k: v.astype(np.float32) for k, v in probs.items()}).probabilities
    p64 = aggregate_patient({k: v.astype(np.float32).astype(np.float64) for k, v in probs.items()}).probabilities
    for k in p64:
        assert p32[k].dtype == np.float64, k
        np.testing.assert_array_equal(p32[k], p64[k], err_msg=k)


def test_certain_present_leaves_nothing_for_unknown_and_absent():
    # every recording P(Present) = 1: P(Present) = 1 and the (empty) rest stays 0, not 0/0
    label, p = aggregate_murmur(np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    assert label == "Present"
    np.testing.assert_array_equal(p, [1.0, 0.0, 0.0])


def test_murmur_rule_reaches_the_patient_label():
    # the aggregate_murmur doctest case: votes say Unknown, the mean says Absent
    probs = probs_with([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], 0.9, 0.9)
    assert aggregate_patient(probs, murmur_rule="any").labels["Murmur"] == "Unknown"
    assert aggregate_patient(probs, murmur_rule="mean").labels["Murmur"] == "Absent"


def test_a_murmur_with_nan_mass_exactly_one_half_does_not_exist():
    # "exists when the mean of P('nan') over its five features is below 0.5"
    pred = aggregate_patient(probs_with([[1.0, 0.0, 0.0]], 0.1, 0.5), character_rule="mean")
    assert all(pred.labels[f.name] == f.classes[1] for f in L.SYSTOLIC)
    assert all(pred.labels[f.name] == "nan" for f in L.DIASTOLIC)
    pred = aggregate_patient(probs_with([[1.0, 0.0, 0.0]], 0.5, 0.1), character_rule="mean")
    assert all(pred.labels[f.name] == "nan" for f in L.SYSTOLIC)
    assert all(pred.labels[f.name] == f.classes[1] for f in L.DIASTOLIC)


def test_only_the_diastolic_murmur_exists():
    # Present with a diastolic murmur only: the systolic fallback is for "neither exists"
    pred = aggregate_patient(probs_with([[1.0, 0.0, 0.0]], 0.9, 0.2), character_rule="mean")
    assert pred.labels["Systolic murmur timing"] == "nan"
    assert pred.labels["Diastolic murmur timing"] == "Early-diastolic"
    # neither exists: the systolic one is kept
    pred = aggregate_patient(probs_with([[1.0, 0.0, 0.0]], 0.9, 0.9), character_rule="mean")
    assert pred.labels["Systolic murmur timing"] == "Early-systolic"
    assert pred.labels["Diastolic murmur timing"] == "nan"


def test_outcome_is_the_argmax_of_the_recording_mean():
    probs = probs_with([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], 0.9, 0.9)
    probs["Outcome"] = np.array([[0.7, 0.3], [0.2, 0.8]])  # mean (0.45, 0.55)
    pred = aggregate_patient(probs)
    assert pred.labels["Outcome"] == "Normal"
    np.testing.assert_allclose(pred.probabilities["Outcome"], [0.45, 0.55])
    probs["Outcome"] = np.array([[0.9, 0.1], [0.2, 0.8]])  # mean (0.55, 0.45)
    assert aggregate_patient(probs).labels["Outcome"] == "Abnormal"


def test_a_total_murmur_weight_of_the_tolerance_counts_as_zero():
    # "If every weight is (numerically) zero, the plain mean is used": P(Present) summing to 1e-8
    # (the tolerance, exactly: 1e-8 + 0.5 + (0.5 - 1e-8) is 1.0 in float64) is numerically zero
    murmur = [[1e-8, 0.5, 0.5 - 1e-8], [0.0, 0.5, 0.5]]
    probs = probs_with(murmur, 0.5, 0.5)
    probs["Systolic murmur pitch"] = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    p = aggregate_patient(probs).probabilities["Systolic murmur pitch"]
    np.testing.assert_array_equal(p, [0.0, 0.5, 0.0, 0.5])
    # a little more weight and the first recording dominates
    murmur[0] = [1e-6, 0.5, 0.5 - 1e-6]
    p = aggregate_patient(probs | {"Murmur": np.array(murmur)}).probabilities["Systolic murmur pitch"]
    np.testing.assert_allclose(p, [0.0, 1.0, 0.0, 0.0])
