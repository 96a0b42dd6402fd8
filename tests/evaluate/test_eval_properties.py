"""Properties over random inputs (hypothesis): the bootstrap's confusion-matrix metrics equal
scikit-learn's, and aggregation always yields a consistent, well-formed patient prediction."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from murmurlm.data import labels as L
from murmurlm.evaluate import metrics as M
from murmurlm.evaluate.aggregate import CHARACTER_RULES, MURMUR_RULES, aggregate_patient
from murmurlm.evaluate.predictions import predictions_frame

PITCH = L.feature("Systolic murmur pitch")
pairs = st.lists(st.tuples(st.sampled_from(PITCH.classes), st.sampled_from(PITCH.classes)), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_confusion_metrics_equal_sklearn(rows):
    t, p = [r[0] for r in rows], [r[1] for r in rows]
    cm = confusion_matrix(t, p, labels=list(PITCH.classes))
    m = M.feature_metrics(t, p, PITCH.name)
    assert np.isclose(M.accuracy_from_confusion(cm), m["accuracy"])
    assert np.isclose(M.macro_f1_from_confusion(cm), m["macro_f1"])
    assert np.isclose(M.macro_f1_from_confusion(cm), f1_score(t, p, labels=m["f1_labels"], average="macro"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert np.isclose(M.uar_from_confusion(cm), balanced_accuracy_score(t, p))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**32 - 1), st.sampled_from(MURMUR_RULES), st.sampled_from(CHARACTER_RULES),
       st.floats(0.05, 5.0))
def test_aggregation_is_consistent(num_recordings, seed, murmur_rule, character_rule, concentration):
    rng = np.random.default_rng(seed)
    probs = {f.name: rng.dirichlet(np.full(f.num_classes, concentration), size=num_recordings)
             for f in (*L.FEATURES, L.OUTCOME)}
    pred = aggregate_patient(probs, murmur_rule, character_rule)
    assert pred.labels == L.make_consistent(pred.labels)
    assert set(pred.labels) == {*L.FEATURE_NAMES, "Outcome"}
    for name, p in pred.probabilities.items():
        assert np.isclose(p.sum(), 1.0) and np.all(p >= 0), name
    assert np.isclose(pred.probabilities["Murmur"][0], probs["Murmur"][:, 0].max())
    if pred.labels["Murmur"] == "Present":
        assert pred.labels["Systolic murmur timing"] != L.NO_MURMUR or pred.labels["Diastolic murmur timing"] != L.NO_MURMUR
    frame = predictions_frame({"1": pred})  # always a valid predictions row
    assert frame.loc["1", "Murmur"] == pred.labels["Murmur"]
