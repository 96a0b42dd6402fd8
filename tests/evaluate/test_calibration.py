"""evaluate.calibration: ECE, NLL, temperature scaling; the evaluator reports them."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.evaluate.calibration import (apply_temperature, expected_calibration_error, fit_temperature,
                                           negative_log_likelihood)


def sample(n=4000, temperature=1.0, seed=0):
    """Labels drawn from softmax(z); the probabilities reported as softmax(z / temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, 3))
    true_p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(3, p=row) for row in true_p])
    shown = np.exp(z / temperature) / np.exp(z / temperature).sum(axis=1, keepdims=True)
    return shown, truth


def test_a_calibrated_model_has_a_small_ece_and_a_miscalibrated_one_a_large_one():
    good, truth = sample()
    assert expected_calibration_error(good, truth)["ece"] < 0.03
    shy, truth = sample(temperature=3.0)  # under-confident, as today's default on unseen patients
    assert expected_calibration_error(shy, truth)["ece"] > 0.1
    bins = expected_calibration_error(shy, truth)["bins"]
    assert len(bins) == 10 and sum(b["count"] for b in bins) == len(truth)


@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_fitting_the_temperature_recovers_it_and_keeps_every_label(temperature):
    shown, truth = sample(temperature=temperature, seed=1)
    t = fit_temperature(shown, truth)
    assert t == pytest.approx(1.0 / temperature, rel=0.15)
    fixed = apply_temperature(shown, t)
    assert (fixed.argmax(axis=1) == shown.argmax(axis=1)).all()
    assert np.allclose(fixed.sum(axis=1), 1.0)
    assert negative_log_likelihood(fixed, truth) < negative_log_likelihood(shown, truth)
    assert expected_calibration_error(fixed, truth)["ece"] < 0.03


def test_the_evaluator_reports_calibration(tmp_path):
    from murmurlm.data import labels as L
    from murmurlm.evaluate.aggregate import PatientPrediction
    from murmurlm.evaluate.predictions import predictions_frame
    from murmurlm.evaluate.report import write_reports
    from murmurlm.evaluate.scoring import evaluate_predictions

    rng = np.random.default_rng(0)
    truth, preds = {}, {}
    for i in range(40):
        murmur = ["Present", "Unknown", "Absent"][i % 3]
        labels = L.make_consistent({f: "nan" for f in L.FEATURE_NAMES} | {"Murmur": murmur})
        truth[str(i)] = labels
        p = rng.dirichlet([1, 1, 1])
        preds[str(i)] = PatientPrediction(dict(labels), {"Murmur": p})
    result = evaluate_predictions(predictions_frame(preds), truth, bootstrap=0)
    cal = result["calibration"]["Murmur"]
    assert 0 <= cal["ece"] <= 1 and cal["nll"] > 0 and len(cal["reliability"]) == 10
    written = write_reports({"model": result}, tmp_path)
    text = written["markdown"].read_text()
    assert "## Calibration" in text and "Reliability of Murmur, model" in text
    assert (tmp_path / "figures" / "model__murmur-reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "Murmur reliability diagram" in written["html"].read_text()
