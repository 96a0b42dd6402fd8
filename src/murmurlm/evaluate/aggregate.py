"""Recording-to-patient aggregation, shared by every model.

CirCor labels are patient level, while most models see one recording (one auscultation location)
at a time. :func:`aggregate_patient` turns the per-recording class probabilities of one patient
into one :class:`PatientPrediction` (labels + probabilities) with these rules:

**Murmur** (classes Present, Unknown, Absent)

- ``murmur_rule="any"`` (default, the clinical reading): each recording votes its argmax class;
  the patient is *Present* if any recording is Present, else *Unknown* if any is Unknown, else
  *Absent*.
- ``murmur_rule="mean"``: the argmax of the recording-mean probabilities.

The patient Murmur *probabilities* are the same for both rules: P(Present) is the **maximum**
over recordings of P(Present) (a murmur heard at one location is a murmur of the patient), and
the remaining mass ``1 - P(Present)`` is split between Unknown and Absent in proportion to their
recording-mean probabilities. With ``"any"`` the label follows the votes, so it can differ from the
argmax of these probabilities (e.g. two recordings voting Present with P=0.4 beside Unknown 0.3 and
Absent 0.3 give label Present, P(Present)=0.4).

**Character features** (the 5 systolic and 5 diastolic ones, ``"nan"`` = no such murmur)

- ``character_rule="murmur-weighted"`` (default): average the recording probabilities weighted
  by each recording's P(Murmur=Present), so the locations where the murmur is heard dominate.
  If every weight is (numerically) zero, the plain mean is used.
- ``character_rule="heard"``: average over the recordings whose Murmur argmax is Present (all of
  them when none is).
- ``character_rule="mean"``: average over all recordings.

**Consistency** (labels, never probabilities, are changed): CirCor's labels are consistent — a
murmur's five character features are set exactly when Murmur is Present and that murmur exists.
A murmur (systolic or diastolic) *exists* in the prediction when the mean of P("nan") over its
five features is below 0.5 (P("nan") does not dominate). If Murmur is Present and neither murmur
exists, the systolic one is kept (every Present patient of CirCor 1.0.3 has a systolic murmur,
98 of 98 in circor-dev). Each feature of an existing murmur takes its best non-``"nan"`` class;
everything else is ``"nan"``. Finally :func:`murmurlm.data.labels.make_consistent` is applied.

**Outcome** (optional, key ``"Outcome"``): the argmax of the recording-mean probabilities.

Examples
--------
>>> import numpy as np
>>> from murmurlm.data.labels import FEATURES
>>> rng = np.random.default_rng(0)
>>> probs = {f.name: rng.dirichlet(np.ones(f.num_classes), size=3) for f in FEATURES}
>>> probs["Murmur"] = np.array([[0.1, 0.1, 0.8], [0.6, 0.2, 0.2], [0.2, 0.1, 0.7]])
>>> pred = aggregate_patient(probs)
>>> pred.labels["Murmur"], round(float(pred.probabilities["Murmur"][0]), 2)
('Present', 0.6)
>>> pred.labels["Systolic murmur timing"] != "nan"
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from murmurlm.data import labels as L

MURMUR_RULES: tuple[str, ...] = ("any", "mean")
CHARACTER_RULES: tuple[str, ...] = ("murmur-weighted", "heard", "mean")
EXISTS_THRESHOLD = 0.5
"""A murmur exists in a prediction when the mean P("nan") over its features is below this."""

_PRESENT = L.MURMUR.classes.index("Present")
_UNKNOWN = L.MURMUR.classes.index("Unknown")
_ABSENT = L.MURMUR.classes.index("Absent")
_NAN = 0  # NO_MURMUR is class 0 of every character feature (labels._character)
_WEIGHT_EPS = 1e-8


@dataclass
class PatientPrediction:
    """One patient's prediction.

    ``labels`` maps each of the 11 feature names (plus ``"Outcome"`` when predicted) to a class
    string; ``probabilities`` maps feature names to probability vectors in
    ``labels.feature(name).classes`` order (may be empty for a model without probabilities).
    """

    labels: dict[str, str]
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)


def _check_rule(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def _as_matrix(name: str, value: object) -> np.ndarray:
    """Validate one feature's recording probabilities: shape (recordings, classes), rows on the simplex."""
    feat = L.feature(name)
    probs = np.asarray(value, dtype=np.float64)
    if probs.ndim == 1:
        probs = probs[None, :]
    if probs.ndim != 2 or probs.shape[1] != feat.num_classes:
        raise ValueError(f"{name!r}: expected probabilities of shape (recordings, {feat.num_classes}) "
                         f"in class order {feat.classes}, got shape {np.shape(value)}")
    if probs.shape[0] == 0:
        raise ValueError(f"{name!r}: no recordings to aggregate")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError(f"{name!r}: probabilities must be finite and non-negative")
    sums = probs.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-3):
        raise ValueError(f"{name!r}: each recording's probabilities must sum to 1, got sums {np.round(sums, 4).tolist()}")
    return probs / sums[:, None]


def aggregate_murmur(probs: np.ndarray, rule: str = "any") -> tuple[str, np.ndarray]:
    """Patient Murmur label and probabilities from per-recording probabilities (recordings, 3).

    >>> aggregate_murmur(np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]))[0]
    'Unknown'
    >>> aggregate_murmur(np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]), rule="mean")[0]
    'Absent'
    """
    _check_rule("murmur_rule", rule, MURMUR_RULES)
    probs = _as_matrix(L.MURMUR.name, probs)
    mean = probs.mean(axis=0)
    p_present = float(probs[:, _PRESENT].max())
    rest = mean[[_UNKNOWN, _ABSENT]]
    rest = rest / rest.sum() if rest.sum() > 0 else np.array([0.5, 0.5])
    patient = np.empty(3)
    patient[_PRESENT] = p_present
    patient[[_UNKNOWN, _ABSENT]] = (1.0 - p_present) * rest
    if rule == "any":
        votes = set(np.argmax(probs, axis=1).tolist())
        index = _PRESENT if _PRESENT in votes else _UNKNOWN if _UNKNOWN in votes else _ABSENT
    else:
        index = int(np.argmax(mean))
    return L.MURMUR.classes[index], patient


def _character_weights(murmur_probs: np.ndarray, rule: str) -> np.ndarray:
    n = murmur_probs.shape[0]
    if rule == "mean":
        return np.full(n, 1.0 / n)
    if rule == "murmur-weighted":
        w = murmur_probs[:, _PRESENT]
    else:  # "heard"
        w = (np.argmax(murmur_probs, axis=1) == _PRESENT).astype(np.float64)
    if w.sum() <= _WEIGHT_EPS:
        return np.full(n, 1.0 / n)
    return w / w.sum()


def aggregate_patient(recording_probs: Mapping[str, np.ndarray], murmur_rule: str = "any",
                      character_rule: str = "murmur-weighted", character: Mapping[str, np.ndarray] | None = None,
                      character_weight: float = 0.5) -> PatientPrediction:
    """Aggregate one patient's per-recording probabilities into a patient prediction.

    Parameters
    ----------
    recording_probs
        Feature name -> array of shape ``(num_recordings, num_classes)``, classes in
        ``labels.feature(name).classes`` order, each row summing to 1. All 11 features are
        required, ``"Outcome"`` is optional; every array must have the same number of rows
        (row ``i`` is the same recording for every feature).
    murmur_rule
        ``"any"`` or ``"mean"`` (see the module docstring).
    character_rule
        ``"murmur-weighted"``, ``"heard"`` or ``"mean"`` (see the module docstring).

    Returns
    -------
    PatientPrediction
        Consistent labels (``labels.make_consistent``) and the aggregated probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from murmurlm.data.labels import FEATURES
    >>> probs = {f.name: np.full((2, f.num_classes), 1.0 / f.num_classes) for f in FEATURES}
    >>> probs["Murmur"] = np.array([[0.0, 0.0, 1.0], [0.0, 0.1, 0.9]])
    >>> p = aggregate_patient(probs)
    >>> p.labels["Murmur"], p.labels["Systolic murmur shape"]
    ('Absent', 'nan')
    """
    _check_rule("murmur_rule", murmur_rule, MURMUR_RULES)
    _check_rule("character_rule", character_rule, CHARACTER_RULES)
    allowed = (*L.FEATURE_NAMES, L.OUTCOME.name)
    unknown = [k for k in recording_probs if k not in allowed]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; valid: {', '.join(allowed)}")
    missing = [k for k in L.FEATURE_NAMES if k not in recording_probs]
    if missing:
        raise ValueError(f"missing recording probabilities for: {', '.join(missing)}")
    mats = {k: _as_matrix(k, v) for k, v in recording_probs.items()}
    counts = {k: m.shape[0] for k, m in mats.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every feature needs the same number of recordings, got {counts}")

    labels: dict[str, str] = {}
    probabilities: dict[str, np.ndarray] = {}
    murmur_label, probabilities[L.MURMUR.name] = aggregate_murmur(mats[L.MURMUR.name], murmur_rule)
    labels[L.MURMUR.name] = murmur_label

    weights = _character_weights(mats[L.MURMUR.name], character_rule)
    for f in (*L.SYSTOLIC, *L.DIASTOLIC):
        probabilities[f.name] = weights @ mats[f.name]
    if character:
        # a second opinion on the systolic character (the descriptor head: feature -> probabilities over
        # the murmur's classes): blended over those classes, P(nan) kept, so whether there is a murmur
        # stays the recordings' decision
        from murmurlm.models.descriptor_head import blend_character

        probabilities.update(blend_character(probabilities, character, character_weight))

    def nan_mass(group: tuple[L.Feature, ...]) -> float:
        return float(np.mean([probabilities[f.name][_NAN] for f in group]))

    exists = {"systolic": nan_mass(L.SYSTOLIC) < EXISTS_THRESHOLD,
              "diastolic": nan_mass(L.DIASTOLIC) < EXISTS_THRESHOLD}
    if murmur_label == "Present" and not any(exists.values()):
        exists["systolic"] = True
    for group, murmur in ((L.SYSTOLIC, "systolic"), (L.DIASTOLIC, "diastolic")):
        for f in group:
            if murmur_label == "Present" and exists[murmur]:
                p = probabilities[f.name]
                labels[f.name] = f.classes[1 + int(np.argmax(p[1:]))]
            else:
                labels[f.name] = L.NO_MURMUR
    labels = L.make_consistent(labels)

    if L.OUTCOME.name in mats:
        mean = mats[L.OUTCOME.name].mean(axis=0)
        probabilities[L.OUTCOME.name] = mean
        labels[L.OUTCOME.name] = L.OUTCOME.classes[int(np.argmax(mean))]
    return PatientPrediction(labels, probabilities)
