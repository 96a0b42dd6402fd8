"""Reference baselines that any model must beat, fitted on training labels only.

- ``majority``: every patient gets each feature's most frequent training class (ties: the
  first in schema order), then :func:`murmurlm.data.labels.make_consistent`. On CirCor this is
  Murmur = Absent with every character feature ``nan``, Outcome = the more frequent outcome.
- ``prior``: class-prior sampling. Each patient gets the complete label vector of a training
  patient drawn at random (seeded), so every feature's predicted classes follow its training class
  prior *and* the labels stay consistent (a sampled Absent never comes with a murmur timing).

Both write the training class priors as probability columns (identical for every patient).

Which patients are "training": ``murmurlm evaluate --patients FILE`` fits the baselines on the
dataset's *other* patients (those not listed); without ``--patients`` it fits on all evaluated
patients (in-sample, which flatters the baselines slightly).

Examples
--------
>>> from murmurlm.data.labels import FEATURE_NAMES
>>> train = [{**{n: "nan" for n in FEATURE_NAMES}, "Murmur": m, "Outcome": "Normal"}
...          for m in ("Absent", "Absent", "Unknown")]
>>> frame = baseline_predictions("majority", train, ["1", "2"])
>>> frame.loc["1", "Murmur"], round(float(frame.loc["1", "P(Murmur=Absent)"]), 3)
('Absent', 0.667)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import PatientPrediction
from murmurlm.evaluate.predictions import LABEL_COLUMNS, OPTIONAL_COLUMNS, normalise_label, predictions_frame

BASELINES: tuple[str, ...] = ("majority", "prior")


def class_priors(train_labels: Sequence[Mapping[str, str]]) -> dict[str, np.ndarray]:
    """Training class frequencies per feature (schema class order); Outcome and Most audible
    location when every patient has one."""
    if not train_labels:
        raise ValueError("class_priors: no training patients to fit on")
    priors = {}
    for name in (n for n in LABEL_COLUMNS if n != L.MURMUR_LOCATIONS_NAME):
        if not all(name in t for t in train_labels):
            if name in OPTIONAL_COLUMNS:
                continue
            raise ValueError(f"class_priors: training labels lack {name!r}")
        feat = L.feature(name)
        counts = np.bincount([feat.encode(t[name]) for t in train_labels], minlength=feat.num_classes)
        priors[name] = counts / counts.sum()
    return priors


def _with_locations(labels: dict[str, str], sites: str | None) -> dict[str, str]:
    """Murmur locations (when the training labels have them) and Most audible location consistent
    with the Murmur label: none without a Present murmur."""
    if sites is not None:
        labels[L.MURMUR_LOCATIONS_NAME] = sites
    if labels.get(L.MURMUR.name) != "Present":
        for name in (L.MURMUR_LOCATIONS_NAME, L.MOST_AUDIBLE_LOCATION.name):
            if name in labels:
                labels[name] = L.NO_MURMUR
    return labels


def _majority(train_labels, patient_ids, priors, rng) -> dict[str, PatientPrediction]:
    labels = {name: L.feature(name).classes[int(np.argmax(p))] for name, p in priors.items()}
    labels = L.make_consistent(labels)
    sites = None
    if all(L.MURMUR_LOCATIONS_NAME in t for t in train_labels):  # the most frequent set of a murmur patient
        sets = [normalise_label(L.MURMUR_LOCATIONS_NAME, t[L.MURMUR_LOCATIONS_NAME]) for t in train_labels
                if t.get(L.MURMUR.name) == "Present"]
        sites = max(sorted(set(sets)), key=sets.count) if sets else L.NO_MURMUR
    labels = _with_locations(labels, sites)
    return {pid: PatientPrediction(dict(labels), dict(priors)) for pid in patient_ids}


def _prior(train_labels, patient_ids, priors, rng) -> dict[str, PatientPrediction]:
    draws = rng.integers(0, len(train_labels), size=len(patient_ids))
    with_sites = all(L.MURMUR_LOCATIONS_NAME in t for t in train_labels)
    out = {}
    for pid, k in zip(patient_ids, draws):
        labels = {name: L.feature(name).normalise(train_labels[k][name]) for name in priors}
        sites = normalise_label(L.MURMUR_LOCATIONS_NAME, train_labels[k][L.MURMUR_LOCATIONS_NAME]) if with_sites else None
        out[pid] = PatientPrediction(_with_locations(labels, sites), dict(priors))
    return out


_METHODS = {"majority": _majority, "prior": _prior}


def baseline_predictions(method: str, train_labels: Sequence[Mapping[str, str]],
                         patient_ids: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """A predictions frame (see :mod:`murmurlm.evaluate.predictions`) of baseline ``method``
    (``"majority"`` or ``"prior"``) for ``patient_ids``, fitted on ``train_labels``."""
    if method not in _METHODS:
        raise ValueError(f"unknown baseline {method!r}; valid: {', '.join(BASELINES)}")
    train = list(train_labels)
    priors = class_priors(train)
    ids = [str(p) for p in patient_ids]
    preds = _METHODS[method](train, ids, priors, np.random.default_rng(seed))
    frame = predictions_frame(preds)
    frame.attrs["source"] = f"<baseline {method}>"
    return frame


def baseline_frames(train_labels: Sequence[Mapping[str, str]], patient_ids: Sequence[str],
                    seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every baseline's predictions frame for ``patient_ids``, fitted on ``train_labels``, named as
    the reports name them: ``{"baseline-majority": ..., "baseline-prior": ...}``.

    >>> from murmurlm.data.labels import FEATURE_NAMES
    >>> train = [{**{n: "nan" for n in FEATURE_NAMES}, "Murmur": "Absent"}]
    >>> {name: frame.loc["7", "Murmur"] for name, frame in baseline_frames(train, ["7"]).items()}
    {'baseline-majority': 'Absent', 'baseline-prior': 'Absent'}
    """
    return {f"baseline-{method}": baseline_predictions(method, train_labels, patient_ids, seed=seed)
            for method in BASELINES}
