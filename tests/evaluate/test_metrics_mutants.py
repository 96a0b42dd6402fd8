"""Metric behaviour that the mutation benchmark (benchmarks/mutation.py) showed untested: batched
confusion matrices, empty input, input dtypes, error messages, the bootstrap helpers.

Expected values are worked out by hand from the definitions in the module docstring."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from murmurlm.data import labels as L
from murmurlm.evaluate import metrics as M

# rows truth, columns prediction, classes Present, Unknown, Absent (asymmetric on purpose:
# row sums 4, 2, 4, column sums 6, 2, 2)
CM1 = np.array([[3, 1, 0], [1, 1, 0], [2, 0, 2]])
# no Present patient at all: row sums 0, 3, 4, column sums 0, 3, 4
CM2 = np.array([[0, 0, 0], [0, 2, 1], [0, 1, 3]])
EMPTY = np.zeros((3, 3), dtype=np.int64)

# accuracy: trace / n
ACC1, ACC2 = 6 / 10, 5 / 7
# macro-F1 = mean over used classes of 2 tp / (row + col)
F11, F12 = (6 / 10 + 2 / 4 + 4 / 6) / 3, (4 / 6 + 6 / 8) / 2
# UAR = mean over truth classes of tp / row
UAR1, UAR2 = (3 / 4 + 1 / 2 + 2 / 4) / 3, (2 / 3 + 3 / 4) / 2
# weighted accuracy with 5, 3, 1 per truth row: sum w tp / sum w row
WA1, WA2 = (5 * 3 + 3 * 1 + 1 * 2) / (5 * 4 + 3 * 2 + 1 * 4), (3 * 2 + 1 * 3) / (3 * 3 + 1 * 4)


def expert(m, n):
    """The challenge's cost_expert, written out."""
    r = m / n
    return (25 + 397 * r - 1718 * r ** 2 + 11296 * r ** 4) * n


def mean_cost(tp, fp, fn, tn):
    n = tp + fp + fn + tn
    return (10 * n + expert(tp + fp, n) + 10000 * tp + 50000 * fn) / n


# rows true Outcome (Abnormal, Normal); columns Outcome outputs, or Murmur outputs (Present, Unknown, Absent)
CMO = np.array([[3, 1], [2, 4]])             # tp 3, fn 1, fp 2, tn 4
CMM = np.array([[1, 1, 1], [1, 0, 3]])       # tp 2, fn 1, fp 1, tn 3
COST_O, COST_M = mean_cost(3, 2, 1, 4), mean_cost(2, 1, 1, 3)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_hand_values_of_single_matrices():
    assert COST_O == pytest.approx(8510.0)  # 10 + 500 (expert screening at r = 0.5) + 3000 + 5000
    assert M.accuracy_from_confusion(CM1) == pytest.approx(ACC1)
    assert M.macro_f1_from_confusion(CM1) == pytest.approx(F11)
    assert M.uar_from_confusion(CM1) == pytest.approx(UAR1)
    assert M.weighted_accuracy_from_confusion(CM1) == pytest.approx(WA1)
    assert M.cost_from_confusion(CMO, L.OUTCOME.classes) == pytest.approx(COST_O)
    assert M.cost_from_confusion(CMM, L.MURMUR.classes) == pytest.approx(COST_M)


def test_confusion_metrics_work_on_any_leading_batch_shape():
    batch = np.stack([np.stack([CM1, CM2]), np.stack([CM2, CM1])])  # (2, 2, 3, 3)
    expected = {
        M.accuracy_from_confusion: (ACC1, ACC2),
        M.macro_f1_from_confusion: (F11, F12),
        M.uar_from_confusion: (UAR1, UAR2),
        M.weighted_accuracy_from_confusion: (WA1, WA2),
    }
    for fn, (a, b) in expected.items():
        out = fn(batch)
        assert out.shape == (2, 2), fn.__name__
        np.testing.assert_allclose(out, [[a, b], [b, a]], err_msg=fn.__name__)
    costs = M.cost_from_confusion(np.stack([CMO, CMO[::-1]]), L.OUTCOME.classes)
    np.testing.assert_allclose(costs, [COST_O, mean_cost(2, 3, 4, 1)])
    costs = M.cost_from_confusion(np.stack([[CMM, CMM[::-1]]]), L.MURMUR.classes)
    assert costs.shape == (1, 2)
    np.testing.assert_allclose(costs, [[COST_M, mean_cost(1, 2, 3, 1)]])


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int32])
def test_confusion_metrics_do_not_depend_on_the_count_dtype(dtype):
    # the counts are cast to float64 first: same numbers, float64 results, no narrow-int overflow
    big = CM1 * 40  # a diagonal of 120, 40, 80: 2 tp = 240 overflows uint8
    for cm in (CM1, CM2, big):  # CM2: recalls 2/3, 3/4 (2/3 is not exact in float32)
        for fn in (M.accuracy_from_confusion, M.macro_f1_from_confusion, M.uar_from_confusion,
                   M.weighted_accuracy_from_confusion):
            ref, out = fn(cm.astype(np.int64)), fn(cm.astype(dtype))
            assert np.asarray(out).dtype == np.float64, fn.__name__
            assert out == ref, fn.__name__
    out = M.cost_from_confusion(CMO.astype(dtype), L.OUTCOME.classes)
    assert np.asarray(out).dtype == np.float64
    assert out == M.cost_from_confusion(CMO, L.OUTCOME.classes)


def test_no_patients_give_nan_quietly(no_warnings):
    # an empty resample is common in a bootstrap of a small view: nan, and no RuntimeWarning
    for fn in (M.accuracy_from_confusion, M.macro_f1_from_confusion, M.uar_from_confusion,
               M.weighted_accuracy_from_confusion):
        out = fn(EMPTY)
        assert np.asarray(out).dtype == np.float64 and np.isnan(out), fn.__name__
        out = fn(np.stack([EMPTY, CM1]))
        assert np.isnan(out[0]) and out[1] > 0, fn.__name__
    for cm, classes in ((np.zeros((2, 2)), L.OUTCOME.classes), (np.zeros((2, 3)), L.MURMUR.classes)):
        out = M.cost_from_confusion(cm, classes)
        assert np.asarray(out).dtype == np.float64 and np.isnan(out)
        out = M.cost_from_confusion(np.stack([cm, np.ones_like(cm)]), classes)
        assert np.isnan(out[0]) and np.isfinite(out[1])
    assert np.isnan(M.challenge_weighted_accuracy([], []))
    assert np.isnan(M.challenge_weighted_accuracy([], [], L.OUTCOME.classes))
    assert np.isnan(M.challenge_cost([], [], L.OUTCOME.classes))
    assert np.isnan(M.challenge_outcome_cost([], []))


def test_challenge_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^2 labels but 1 outputs$"):
        M.challenge_murmur_score(["Present", "Absent"], ["Present"])
    with pytest.raises(ValueError, match=r"^label 'Maybe' not in \['Present', 'Unknown', 'Absent'\]$"):
        M.challenge_murmur_score(["Maybe"], ["Present"])
    with pytest.raises(ValueError, match=r"^output 'Maybe' not in \['Present', 'Unknown', 'Absent'\]$"):
        M.challenge_murmur_score(["Present"], ["Maybe"])
    with pytest.raises(ValueError, match=r"^output 'Present' not in \['Abnormal', 'Normal'\]$"):
        M.challenge_outcome_cost(["Abnormal"], ["Present"])
    with pytest.raises(ValueError, match=r"defined for \('Present', 'Unknown', 'Absent'\) and "
                                         r"\('Abnormal', 'Normal'\)$"):
        M.challenge_weighted_accuracy(["Low"], ["Low"], ("Low", "High"))


def test_feature_metrics_of_no_patients():
    classes = ["nan", "Decrescendo", "Plateau"]
    assert M.feature_metrics([], [], "Diastolic murmur shape") == {
        "num_patients": 0, "classes": classes, "accuracy": None, "macro_f1": None, "uar": None,
        "f1_labels": [],
        "per_class": {c: {"precision": None, "recall": None, "f1": None, "support": 0} for c in classes},
        "confusion_matrix": [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
    }


def test_feature_metrics_names_the_class_order():
    m = M.feature_metrics(["Low", "High"], ["Low", "Low"], "Diastolic murmur pitch")
    assert m["classes"] == ["nan", "Low", "Medium", "High"]
    assert m["num_patients"] == 2


def test_characterisation_mask_is_boolean_even_when_empty():
    mask = M.characterisation_mask([], "Systolic murmur timing")
    assert mask.dtype == bool and mask.shape == (0,)
    x = np.arange(3)
    assert x[mask].size == 0  # usable as an index


def test_bootstrap_confusions_count_resampled_patients():
    # Outcome truth (2 classes) against Murmur predictions (3 classes), as for murmur_cost
    truth, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 2])
    index = np.array([[0, 1, 2, 3], [3, 3, 3, 3], [0, 0, 1, 0]])
    cms = M.bootstrap_confusions(truth, pred, index, 2, 3)
    assert cms.shape == (3, 2, 3)
    np.testing.assert_array_equal(cms[0], [[1, 0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(cms[1], [[0, 0, 0], [0, 0, 4]])
    np.testing.assert_array_equal(cms[2], [[3, 0, 1], [0, 0, 0]])
    # a mask drops the patients outside the view
    masked = M.bootstrap_confusions(truth, pred, index, 2, 3, mask=np.array([True, False, True, True]))
    np.testing.assert_array_equal(masked[2], [[3, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(masked[0], [[1, 0, 0], [0, 1, 1]])


def test_bootstrap_confusions_keep_their_shape_when_classes_never_occur():
    # every patient truth 0 and prediction 0: the other cells are zero, not missing
    cms = M.bootstrap_confusions(np.zeros(3, int), np.zeros(3, int), np.array([[0, 1, 2]]), 3)
    assert cms.shape == (1, 3, 3)
    np.testing.assert_array_equal(cms[0], [[3, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_resample_indices_bounds_and_seed():
    np.testing.assert_array_equal(M.resample_indices(1, 1), [[0]])  # one patient, one resample: fine
    idx = M.resample_indices(3, 200)
    assert idx.shape == (200, 3) and set(idx.ravel().tolist()) == {0, 1, 2}
    # seeded, default seed 0: the same draw as numpy's generator seeded with 0
    np.testing.assert_array_equal(M.resample_indices(5, 4), np.random.default_rng(0).integers(0, 5, size=(4, 5)))
    np.testing.assert_array_equal(M.resample_indices(5, 4), M.resample_indices(5, 4, seed=0))
    for resamples, patients in ((0, 5), (5, 0), (0, 0)):
        with pytest.raises(ValueError, match=rf"^need at least one resample and one patient, got {resamples}, {patients}$"):
            M.resample_indices(patients, resamples)


def test_confidence_interval_is_computed_in_float64():
    # float32 bootstrap samples: the percentile interpolation happens in float64, as for float64 input
    samples = np.random.default_rng(0).random((200, 57)).astype(np.float32)
    for row in samples:
        assert M.confidence_interval(row, 0.9) == M.confidence_interval(row.astype(np.float64), 0.9)
    assert M.confidence_interval(np.array([np.nan, 1.0, 3.0]), 0.0) == [2.0, 2.0]  # nan ignored
    assert M.confidence_interval(np.array([np.nan, np.inf])) == [None, None]
