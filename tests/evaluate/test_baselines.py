"""Majority and class-prior baselines."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data import labels as L
from murmurlm.evaluate.baselines import baseline_predictions, class_priors


def patient(murmur: str, outcome: str, timing: str = L.NO_MURMUR) -> dict[str, str]:
    labels = {n: L.NO_MURMUR for n in L.FEATURE_NAMES}
    labels.update({"Murmur": murmur, "Outcome": outcome})
    if murmur == "Present":
        for f in L.SYSTOLIC:
            labels[f.name] = f.classes[1]
        labels["Systolic murmur timing"] = timing
    return labels


TRAIN = ([patient("Absent", "Normal")] * 5 + [patient("Present", "Abnormal", "Holosystolic")] * 3
         + [patient("Unknown", "Abnormal")] * 2)


def test_class_priors_by_hand():
    priors = class_priors(TRAIN)
    np.testing.assert_allclose(priors["Murmur"], [0.3, 0.2, 0.5])       # Present, Unknown, Absent
    np.testing.assert_allclose(priors["Outcome"], [0.5, 0.5])          # Abnormal, Normal
    np.testing.assert_allclose(priors["Systolic murmur timing"], [0.7, 0, 0.3, 0, 0])
    with pytest.raises(ValueError, match="no training patients"):
        class_priors([])


def test_majority_predicts_modes_consistently():
    frame = baseline_predictions("majority", TRAIN, ["a", "b"])
    assert set(frame["Murmur"]) == {"Absent"}
    assert set(frame["Systolic murmur timing"]) == {L.NO_MURMUR}
    assert set(frame["Outcome"]) == {"Abnormal"}  # tie 5/5 -> first class in schema order
    assert frame.loc["a", "P(Murmur=Present)"] == pytest.approx(0.3)


def test_prior_sampling_follows_the_priors_and_stays_consistent():
    ids = [str(i) for i in range(3000)]
    frame = baseline_predictions("prior", TRAIN, ids, seed=1)
    shares = frame["Murmur"].value_counts(normalize=True)
    assert shares["Absent"] == pytest.approx(0.5, abs=0.03)
    assert shares["Present"] == pytest.approx(0.3, abs=0.03)
    # a sampled label vector is a real training patient's, so it is consistent
    train_vectors = {tuple(t[n] for n in L.FEATURE_NAMES) for t in TRAIN}
    assert set(frame[list(L.FEATURE_NAMES)].itertuples(index=False, name=None)) == train_vectors
    again = baseline_predictions("prior", TRAIN, ids, seed=1)
    assert again.equals(frame)


def test_unknown_baseline():
    with pytest.raises(ValueError, match="valid: majority, prior"):
        baseline_predictions("random", TRAIN, ["a"])


def test_baseline_frames_are_every_baseline_by_report_name():
    from murmurlm.evaluate.baselines import BASELINES, baseline_frames

    train = [patient("Absent", "Normal"), patient("Absent", "Abnormal"), patient("Present", "Abnormal", "Early-systolic")]
    frames = baseline_frames(train, ["a", "b"], seed=3)
    assert list(frames) == [f"baseline-{m}" for m in BASELINES]
    for method in BASELINES:
        expected = baseline_predictions(method, train, ["a", "b"], seed=3)
        assert frames[f"baseline-{method}"].equals(expected)
