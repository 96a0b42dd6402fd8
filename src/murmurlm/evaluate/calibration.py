"""Do the probabilities mean what they say? Calibration measures and temperature scaling.

- :func:`expected_calibration_error`: the top-label ECE: patients binned by the probability of
  the predicted class (10 equal-width bins); the mean gap between that confidence and the share of
  the bin predicted right, weighted by the bin's size. Its bins are the reliability diagram.
- :func:`negative_log_likelihood`: the mean of ``-log p(true class)`` (probabilities clipped at 1e-6).
- :func:`fit_temperature`: the temperature ``T`` of one feature minimising the NLL of
  ``softmax(log p / T)`` on held-out patients (bounded search, ``T`` in [0.05, 20]). ``T < 1``
  sharpens under-confident probabilities, ``T > 1`` softens over-confident ones; the most
  probable class never changes, so no label and no accuracy does.
- :func:`apply_temperature`: that transform, for one vector or a matrix of rows.

Examples
--------
>>> import numpy as np
>>> p = np.array([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6], [0.4, 0.6]])   # right every time, 60 % sure
>>> truth = np.array([0, 0, 1, 1])
>>> round(expected_calibration_error(p, truth)["ece"], 3)
0.4
>>> t = fit_temperature(p, truth)
>>> t < 0.2, round(expected_calibration_error(apply_temperature(p, t), truth)["ece"], 3) < 0.05
(True, True)
"""

from __future__ import annotations

import numpy as np

BINS = 10
T_RANGE = (0.05, 20.0)


def _check(probs: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    t = np.asarray(truth, dtype=int).reshape(-1)
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"{p.shape[0]} probability rows but {t.shape[0]} true classes")
    if t.size and (t.min() < 0 or t.max() >= p.shape[1]):
        raise ValueError(f"true class indices must be in [0, {p.shape[1]})")
    return p, t


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = BINS) -> dict:
    """``{"ece", "bins": [{"low", "high", "count", "confidence", "accuracy"}]}`` (top label;
    ``ece`` None without rows). ``truth``: class indices, in the columns' order."""
    p, t = _check(probs, truth)
    if not len(t):
        return {"ece": None, "bins": []}
    confidence = p.max(axis=1)
    right = (p.argmax(axis=1) == t).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        row = {"low": float(edges[b]), "high": float(edges[b + 1]), "count": n, "confidence": None, "accuracy": None}
        if n:
            row["confidence"], row["accuracy"] = float(confidence[inside].mean()), float(right[inside].mean())
            ece += n / len(t) * abs(row["confidence"] - row["accuracy"])
        table.append(row)
    return {"ece": float(ece), "bins": table}


def negative_log_likelihood(probs: np.ndarray, truth: np.ndarray) -> float | None:
    p, t = _check(probs, truth)
    if not len(t):
        return None
    return float(-np.mean(np.log(np.clip(p[np.arange(len(t)), t], 1e-6, 1.0))))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row (a zero probability stays zero)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = np.log(p) / float(temperature)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(probs: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the NLL of the calibrated probabilities on (held-out) rows; 1.0
    when there are no rows."""
    from scipy.optimize import minimize_scalar

    p, t = _check(probs, truth)
    if not len(t):
        return 1.0
    result = minimize_scalar(lambda log_t: negative_log_likelihood(apply_temperature(p, np.exp(log_t)), t),
                             bounds=tuple(np.log(T_RANGE)), method="bounded")
    return float(np.exp(result.x))
