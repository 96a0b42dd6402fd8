"""Shared by the evaluate tests: random true labels and a predictions frame of given labels."""

from __future__ import annotations

import numpy as np

from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import PatientPrediction
from murmurlm.evaluate.predictions import predictions_frame


def make_truth(n: int = 40, seed: int = 0) -> dict[str, dict[str, str]]:
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        labels = {name: L.NO_MURMUR for name in L.FEATURE_NAMES}
        labels["Murmur"] = rng.choice(L.MURMUR.classes, p=[0.3, 0.1, 0.6])
        labels["Outcome"] = rng.choice(L.OUTCOME.classes)
        if labels["Murmur"] == "Present":
            for f in L.SYSTOLIC:
                labels[f.name] = rng.choice(f.present_classes)
            if rng.random() < 0.3:
                for f in L.DIASTOLIC:
                    labels[f.name] = rng.choice(f.present_classes)
        truth[str(1000 + i)] = labels
    return truth


def as_frame(labels: dict[str, dict[str, str]]):
    return predictions_frame({pid: PatientPrediction(dict(l)) for pid, l in labels.items()})
