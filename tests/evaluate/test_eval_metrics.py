"""Metrics against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from murmurlm.data import labels as L
from murmurlm.evaluate import metrics as M

# A small Murmur example used by several tests.
#   patient:  1        2        3        4       5        6
TRUTH = ["Present", "Present", "Unknown", "Absent", "Absent", "Absent"]
PRED = ["Present", "Absent", "Unknown", "Absent", "Present", "Unknown"]


def test_challenge_weighted_accuracy_by_hand():
    # Correct: Present 1 of 2 (patient 1), Unknown 1 of 1 (3), Absent 1 of 3 (4).
    # Weights per TRUE class 5 / 3 / 1:
    #   (5*1 + 3*1 + 1*1) / (5*2 + 3*1 + 1*3) = 9 / 16 = 0.5625
    assert M.challenge_murmur_score(TRUTH, PRED) == pytest.approx(9 / 16)
    # Plain accuracy would be 3/6 = 0.5: the weights reward the Present/Unknown hits.
    assert M.feature_metrics(TRUTH, PRED, "Murmur")["accuracy"] == pytest.approx(0.5)


def test_challenge_weighted_accuracy_weights_follow_truth_not_prediction():
    # One Absent patient called Present: numerator 0, denominator weight of the TRUE class (1):
    #   0 / 1 = 0, not 0 / 5. One Present called Absent and one Absent correct:
    #   (5*0 + 1*1) / (5*1 + 1*1) = 1/6.
    assert M.challenge_murmur_score(["Absent"], ["Present"]) == 0.0
    assert M.challenge_murmur_score(["Present", "Absent"], ["Absent", "Absent"]) == pytest.approx(1 / 6)
    # Outcome weights 5 Abnormal, 1 Normal: 1 Abnormal hit, 1 Normal miss -> 5 / (5 + 1)
    assert M.challenge_weighted_accuracy(["Abnormal", "Normal"], ["Abnormal", "Abnormal"],
                                         L.OUTCOME.classes) == pytest.approx(5 / 6)
    assert math.isnan(M.challenge_murmur_score([], []))
    with pytest.raises(ValueError, match="undefined"):
        M.challenge_weighted_accuracy(["Low"], ["Low"], ("Low", "High"))


def test_challenge_outcome_cost_by_hand():
    # truth Abnormal, Abnormal, Normal, Normal; outputs Abnormal, Normal, Abnormal, Normal
    # -> tp = 1, fn = 1, fp = 1, tn = 1, n = 4; referred m = tp + fp = 2, m/n = 0.5
    # cost_expert = (25 + 397*0.5 - 1718*0.25 + 11296*0.0625) * 4 = (25 + 198.5 - 429.5 + 706) * 4 = 2000
    # total = 10*4 + 2000 + 10000*1 + 50000*1 = 62040; per patient 62040 / 4 = 15510
    truth = ["Abnormal", "Abnormal", "Normal", "Normal"]
    assert M.challenge_outcome_cost(truth, ["Abnormal", "Normal", "Abnormal", "Normal"]) == pytest.approx(15510)
    # The challenge scores murmur outputs as referrals too (Present and Unknown refer):
    # Present/Abnormal tp, Absent/Abnormal fn, Unknown/Normal fp, Absent/Normal tn -> the same 15510
    assert M.challenge_cost(truth, ["Present", "Absent", "Unknown", "Absent"], L.MURMUR.classes) == pytest.approx(15510)
    # Nobody referred: tp = fp = 0, fn = 2: (40 + 25*4 + 100000) / 4 = 25035
    assert M.challenge_outcome_cost(truth, ["Normal"] * 4) == pytest.approx(25035)
    assert M.cost_expert(0.0, 4.0) == pytest.approx(100.0)


def test_feature_metrics_by_hand():
    m = M.feature_metrics(TRUTH, PRED, "Murmur")
    # confusion, rows truth (Present, Unknown, Absent), columns prediction:
    assert m["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [1, 1, 1]]
    # Present: tp 1, fp 1, fn 1 -> P 1/2, R 1/2, F1 1/2
    # Unknown: tp 1, fp 1, fn 0 -> P 1/2, R 1,   F1 2/3
    # Absent:  tp 1, fp 1, fn 2 -> P 1/2, R 1/3, F1 2/(2+1+2) = 0.4
    pc = m["per_class"]
    assert (pc["Present"]["precision"], pc["Present"]["recall"], pc["Present"]["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (pc["Unknown"]["recall"], pc["Unknown"]["f1"]) == pytest.approx((1.0, 2 / 3))
    assert (pc["Absent"]["recall"], pc["Absent"]["f1"], pc["Absent"]["support"]) == pytest.approx((1 / 3, 0.4, 3))
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.4) / 3)  # 0.5222
    assert m["uar"] == pytest.approx((0.5 + 1.0 + 1 / 3) / 3)  # 0.6111
    assert m["num_patients"] == 6


def test_macro_f1_convention_union_of_truth_and_prediction():
    # truth Low, Low, High; prediction Low, Medium, High. 'nan' occurs in neither -> left out.
    # Low F1 = 2*1/(2+0+1) = 2/3; Medium (only predicted) F1 = 0; High F1 = 1 -> (2/3 + 0 + 1)/3
    m = M.feature_metrics(["Low", "Low", "High"], ["Low", "Medium", "High"], "Systolic murmur pitch")
    assert m["f1_labels"] == ["Low", "Medium", "High"]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 3)
    # UAR over truth classes only: Low 1/2, High 1 -> 0.75
    assert m["uar"] == pytest.approx(0.75)
    assert m["per_class"]["nan"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert m["per_class"]["Medium"]["precision"] == 0.0 and m["per_class"]["Medium"]["recall"] is None


def test_feature_metrics_rejects_unknown_label_and_handles_empty():
    with pytest.raises(L.LabelError, match="unknown label 'Maybe'"):
        M.feature_metrics(["Present"], ["Maybe"], "Murmur")
    with pytest.raises(ValueError, match="2 true labels but 1"):
        M.feature_metrics(["Present", "Absent"], ["Present"], "Murmur")
    empty = M.feature_metrics([], [], "Diastolic murmur pitch")
    assert empty["accuracy"] is None and empty["num_patients"] == 0


def test_characterisation_mask():
    nan = L.NO_MURMUR
    truth = [{"Systolic murmur timing": "Holosystolic", "Diastolic murmur timing": nan},
             {"Systolic murmur timing": nan, "Diastolic murmur timing": nan},
             {"Systolic murmur timing": "Early-systolic", "Diastolic murmur timing": "Early-diastolic"}]
    assert M.characterisation_mask(truth, "Systolic murmur pitch").tolist() == [True, False, True]
    assert M.characterisation_mask(truth, "Diastolic murmur shape").tolist() == [False, False, True]
    assert M.characterisation_mask(truth, "Murmur") is None


def _random_labels(rng, feature, n):
    classes = L.feature(feature).classes
    weights = rng.dirichlet(np.ones(len(classes)))
    return list(rng.choice(classes, size=n, p=weights))


@pytest.mark.parametrize("feature", ["Murmur", "Systolic murmur timing", "Diastolic murmur shape"])
def test_confusion_forms_agree_with_sklearn_and_challenge(feature):
    rng = np.random.default_rng(1)
    classes = list(L.feature(feature).classes)
    for n in (1, 5, 40):
        t, p = _random_labels(rng, feature, n), _random_labels(rng, feature, n)
        cm = confusion_matrix(t, p, labels=classes)
        present = [c for c in classes if c in set(t) | set(p)]
        assert M.accuracy_from_confusion(cm) == pytest.approx(np.mean(np.array(t) == np.array(p)))
        assert M.macro_f1_from_confusion(cm) == pytest.approx(f1_score(t, p, labels=present, average="macro"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true"
            assert M.uar_from_confusion(cm) == pytest.approx(balanced_accuracy_score(t, p))
        if feature == "Murmur":
            assert M.weighted_accuracy_from_confusion(cm) == pytest.approx(M.challenge_murmur_score(t, p))
            outcome = _random_labels(rng, "Outcome", n)
            cm_cost = confusion_matrix(outcome, p, labels=list(L.OUTCOME.classes) + classes)[:2, 2:]
            assert M.cost_from_confusion(cm_cost, classes) == pytest.approx(M.challenge_cost(outcome, p, classes))


def test_bootstrap_confusions_match_a_direct_count():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, size=20)
    p = rng.integers(0, 3, size=20)
    mask = rng.random(20) < 0.5
    index = M.resample_indices(20, 7, seed=3)
    cms = M.bootstrap_confusions(t, p, index, 3, mask=mask)
    for b in range(7):
        direct = np.zeros((3, 3))
        for i in index[b]:
            if mask[i]:
                direct[t[i], p[i]] += 1
        np.testing.assert_array_equal(cms[b], direct)
    assert np.array_equal(M.resample_indices(20, 7, seed=3), index)  # seeded
    # a metric that is constant under resampling has a zero-width interval
    assert M.confidence_interval(np.ones(100)) == [1.0, 1.0]
    assert M.confidence_interval(np.full(5, np.nan)) == [None, None]
    lo, hi = M.confidence_interval(np.arange(1001, dtype=float))
    assert (lo, hi) == pytest.approx((25.0, 975.0))


def test_auroc_by_hand():
    # Present vs rest: scores 0.9 (Present), 0.4 (Absent), 0.6 (Absent), 0.2 (Unknown).
    #   pairs (positive, negative): (0.9, 0.4) (0.9, 0.6) (0.9, 0.2) all ranked right -> AUROC 1
    # Absent vs rest: Absent scores 0.5, 0.3; others 0.05 (Present), 0.7 (Unknown)
    #   pairs: (0.5 > 0.05) (0.5 < 0.7) (0.3 > 0.05) (0.3 < 0.7) -> 2 of 4 = 0.5
    # Unknown vs rest: Unknown 0.1; others 0.05, 0.1, 0.1 -> (0.1 > 0.05) 1, two ties 0.5 each -> 2/3
    truth = ["Present", "Absent", "Absent", "Unknown"]
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.1, 0.5], [0.6, 0.1, 0.3], [0.2, 0.1, 0.7]])
    aucs = M.class_aurocs(truth, probs, "Murmur")
    assert aucs == pytest.approx([1.0, 2 / 3, 0.5])
    assert M.macro_auroc(truth, probs, "Murmur") == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    # a class that is all or none of the truth has no AUROC
    assert M.class_aurocs(["Low", "Low"], np.full((2, 4), 0.25), "Systolic murmur pitch") == [None, None, None, None]
    assert M.macro_auroc(["Low", "Low"], np.full((2, 4), 0.25), "Systolic murmur pitch") is None
    with pytest.raises(ValueError, match="expected \\(4, 3\\)"):
        M.class_aurocs(truth, probs[:, :2], "Murmur")


def test_mean_of_defined_leaves_out_undefined_values():
    assert M.mean_of_defined([0.2, None, 0.6]) == pytest.approx(0.4)
    assert M.mean_of_defined(iter([1.0])) == 1.0
    assert M.mean_of_defined([None]) is None and M.mean_of_defined([]) is None
