"""From recordings to patients: the one path every model's predictions take.

A model gives class probabilities per *recording* (one auscultation location); CirCor's labels
are per *patient*. :func:`predict_patients` takes each patient's recording probabilities and
returns the predictions frame (:func:`murmurlm.evaluate.predictions.predictions_frame`, one row
per patient) through :func:`murmurlm.evaluate.aggregate.aggregate_patient`;
:func:`aggregate_recordings` does it for one patient. The compact model's inference
(:func:`murmurlm.inference.predict.predict_dataset`), its recipe's validation, the audio-LM
recipe's validation and the Whisper benchmark all go this way.

**Murmur scale.** Per-class factors (Present, Unknown, Absent) on each recording's P(Murmur),
renormalised, applied before the patient rule (:func:`scale_murmur`). The compact
:class:`~murmurlm.inference.predict.Predictor` applies its checkpoint's scale to the recording
probabilities it returns, so those are aggregated with ``murmur_scale=None``; raw (unscaled)
probabilities, as the recipe's validation and scale tuning keep them, are aggregated with the
scale to try. Either way the scale is applied once, by :func:`scale_murmur`.

Examples
--------
>>> import numpy as np
>>> from murmurlm.data.labels import FEATURES
>>> def recording(murmur):
...     probs = {f.name: np.eye(f.num_classes)[0] for f in FEATURES}  # character features: "nan"
...     probs["Murmur"] = np.array(murmur)
...     return probs
>>> frame = predict_patients({"1": [recording([0.1, 0.2, 0.7]), recording([0.6, 0.1, 0.3])],
...                           "2": [recording([0.3, 0.4, 0.3])],
...                           "3": []})                   # no recording: no row
>>> frame["Murmur"].to_dict()
{'1': 'Present', '2': 'Unknown'}
>>> predict_patients({"2": [recording([0.3, 0.4, 0.3])]}, murmur_scale=[1.0, 0.5, 1.0])["Murmur"].tolist()
['Present']
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import PatientPrediction, aggregate_patient
from murmurlm.evaluate.predictions import PATIENT_ID, predictions_frame

RecordingProbs = Mapping[str, np.ndarray]
"""One recording's class probabilities: feature (head) name -> vector in the feature's class order."""


def scale_murmur(recording: RecordingProbs, scale: Sequence[float]) -> dict[str, np.ndarray]:
    """A copy of one recording's probabilities with P(Murmur) multiplied by ``scale`` (Present,
    Unknown, Absent) and renormalised; the other features unchanged.

    >>> p = scale_murmur({"Murmur": np.array([0.32, 0.40, 0.28])}, [1.0, 0.35, 1.0])["Murmur"]
    >>> (p * 37).round(6).tolist()                        # (0.32, 0.14, 0.28) / 0.74
    [16.0, 7.0, 14.0]
    """
    factors = np.asarray(scale, dtype=np.float64)
    if factors.shape != (L.MURMUR.num_classes,) or not np.all(factors > 0):
        raise ValueError(f"murmur_scale needs {L.MURMUR.num_classes} positive factors "
                         f"({', '.join(L.MURMUR.classes)}), got {list(scale)}")
    out = dict(recording)
    m = out[L.MURMUR.name] * factors
    out[L.MURMUR.name] = m / m.sum()
    return out


HEARD_THRESHOLD = 0.5
"""A murmur is heard at a site when P(Murmur=Present) of its recording there reaches this."""


def locate_murmur(recordings: Sequence[RecordingProbs], locations: Sequence[str], murmur_label: str,
                  threshold: float = HEARD_THRESHOLD) -> tuple[dict[str, str], dict[str, np.ndarray], dict[str, float]]:
    """Where a patient's murmur is heard, from its recordings' P(Murmur=Present) (the compact model
    learns that probability per site: a Present patient's recording is Present only where the
    murmur is heard, :mod:`murmurlm.train.data`).

    Returns ``(labels, probabilities, site probabilities)``: ``Murmur locations`` (the sites whose
    P(Present) reaches ``threshold``, at least the most probable one; ``+``-joined) and ``Most
    audible location`` (the most probable site; its probabilities are the sites' P(Present)
    normalised over the recorded sites), both ``nan`` unless ``murmur_label`` is Present; and each
    recorded site's P(Present) (its highest over its recordings).

    >>> rec = lambda p: {"Murmur": np.array([p, 0.0, 1.0 - p])}
    >>> labels, probs, sites = locate_murmur([rec(0.9), rec(0.2), rec(0.6)], ["MV", "AV", "TV"], "Present")
    >>> labels, sites
    ({'Murmur locations': 'TV+MV', 'Most audible location': 'MV'}, {'MV': 0.9, 'AV': 0.2, 'TV': 0.6})
    >>> locate_murmur([rec(0.9)], ["MV"], "Absent")[0]
    {'Murmur locations': 'nan', 'Most audible location': 'nan'}
    """
    present = L.MURMUR.classes.index("Present")
    sites: dict[str, float] = {}
    for rec, loc in zip(recordings, locations):
        if loc in L.LOCATIONS:
            sites[loc] = max(sites.get(loc, 0.0), float(np.asarray(rec[L.MURMUR.name])[present]))
    loud = L.MOST_AUDIBLE_LOCATION
    probs = np.zeros(loud.num_classes)
    if murmur_label != "Present" or not sites:
        probs[loud.classes.index(L.NO_MURMUR)] = 1.0
        return ({L.MURMUR_LOCATIONS_NAME: L.NO_MURMUR, loud.name: L.NO_MURMUR}, {loud.name: probs}, sites)
    most = max(sites, key=sites.get)
    heard = {loc for loc, p in sites.items() if p >= threshold} | {most}
    total = sum(sites.values())
    for loc, p in sites.items():
        probs[loud.classes.index(loc)] = p / total if total > 0 else 1.0 / len(sites)
    labels = {L.MURMUR_LOCATIONS_NAME: "+".join(loc for loc in L.LOCATIONS if loc in heard), loud.name: most}
    return labels, {loud.name: probs}, sites


UNUSABLE = "poor"
"""The quality flag (:func:`murmurlm.signal.quality.pcg_quality`) of a recording nothing can be judged from."""


def apply_quality_rule(prediction: PatientPrediction, flags: Sequence[str | Mapping | None]) -> tuple[PatientPrediction, str | None]:
    """The project's one quality rule: when **every** recording of a patient (or the one recording
    of a report) is flagged ``poor``, the answer is ``Murmur: Unknown`` — CirCor's own label for a
    patient whose recordings cannot be judged — with no murmur described and no location; the
    probabilities stay the model's. Returns the (possibly changed) prediction and the reason, or
    None when the rule does not apply.

    ``flags``: one per recording, the flag or the whole :func:`murmurlm.signal.quality.pcg_quality`
    result; with the latter the reason says why in plain words (e.g. the noise check's "too noisy").

    Measured on circor-dev (5-fold CV, ``benchmarks/characterization_cv.py``, the *quality rule*
    column): it never lowers the murmur weighted accuracy there, because Unknown patients have
    unusable recordings far more often (12 of 37 have only poor ones, against 10 of 383 Absent and
    2 of 98 Present patients).

    >>> from murmurlm.data.labels import FEATURE_NAMES
    >>> labels = {n: "nan" for n in FEATURE_NAMES} | {"Murmur": "Absent"}
    >>> said, why = apply_quality_rule(PatientPrediction(labels), ["poor", "poor"])
    >>> said.labels["Murmur"], why
    ('Unknown', 'every recording (2) is of poor quality: no murmur can be judged')
    >>> apply_quality_rule(PatientPrediction(labels), ["poor", "good"])[1] is None
    True
    >>> apply_quality_rule(PatientPrediction(labels), [{"flag": "poor", "reason": "too noisy"}])[1]
    'the recording is of poor quality (too noisy): no murmur can be judged'
    """
    qualities = [f if isinstance(f, Mapping) else {"flag": f} for f in flags]
    if not qualities or any(q.get("flag") != UNUSABLE for q in qualities):
        return prediction, None
    labels = L.make_consistent({**prediction.labels, L.MURMUR.name: "Unknown"})
    for name in (L.MURMUR_LOCATIONS_NAME, L.MOST_AUDIBLE_LOCATION.name):
        if name in labels:
            labels[name] = L.NO_MURMUR
    reasons = [q.get("reason") for q in qualities if q.get("reason")]
    if len(qualities) == 1:
        why = f"the recording is of poor quality ({reasons[0]})" if reasons else "the recording is of poor quality"
    else:
        noisy = sum(r.startswith("too noisy") for r in reasons)
        why = f"every recording ({len(qualities)}) is of poor quality" + (
            f" ({noisy} of them too noisy: the heart sounds hardly stand above the background noise)" if noisy else "")
    return PatientPrediction(labels, dict(prediction.probabilities)), f"{why}: no murmur can be judged"


def aggregate_recordings(recordings: Sequence[RecordingProbs], murmur_rule: str = "any",
                         character_rule: str = "murmur-weighted", murmur_scale: Sequence[float] | None = None,
                         heads: Sequence[str] | None = None, character: Mapping[str, np.ndarray] | None = None,
                         character_weight: float = 0.5, locations: Sequence[str] | None = None,
                         calibration: Mapping[str, float] | None = None) -> PatientPrediction:
    """One patient's prediction from its recordings' probabilities (at least one recording).

    ``heads``: the features to aggregate (default: every key of the first recording; all 11
    features are needed, Outcome is optional). ``murmur_scale``: applied to each recording first
    (:func:`scale_murmur`); None for probabilities that are already scaled, or never will be.

    >>> from murmurlm.data.labels import FEATURES
    >>> rec = {f.name: np.full(f.num_classes, 1.0 / f.num_classes) for f in FEATURES}
    >>> aggregate_recordings([rec, {**rec, "Murmur": np.array([0.0, 0.1, 0.9])}]).labels["Murmur"]
    'Present'
    """
    if not recordings:
        raise ValueError("aggregate_recordings: a patient needs at least one recording")
    if murmur_scale is not None:
        recordings = [scale_murmur(r, murmur_scale) for r in recordings]
    names = tuple(recordings[0]) if heads is None else tuple(heads)
    stacked = {h: np.stack([np.asarray(r[h], dtype=np.float64) for r in recordings]) for h in names}
    prediction = aggregate_patient(stacked, murmur_rule, character_rule, character, character_weight)
    if calibration:  # temperatures of the patient-level probabilities: the labels stay (argmax kept)
        from murmurlm.evaluate.calibration import apply_temperature

        for name, temperature in calibration.items():
            if name in prediction.probabilities:
                prediction.probabilities[name] = apply_temperature(prediction.probabilities[name], temperature)
    if locations is not None:  # each recording's site: where the murmur is heard
        if len(locations) != len(recordings):
            raise ValueError(f"aggregate_recordings: {len(locations)} locations for {len(recordings)} recordings")
        labels, probs, _ = locate_murmur(recordings, locations, prediction.labels[L.MURMUR.name])
        prediction.labels.update(labels)
        prediction.probabilities.update(probs)
    return prediction


def predict_patients(recordings_by_patient: Mapping[str, Sequence[RecordingProbs]]
                     | Iterable[tuple[str, Sequence[RecordingProbs]]],
                     murmur_rule: str = "any", character_rule: str = "murmur-weighted",
                     murmur_scale: Sequence[float] | None = None,
                     heads: Sequence[str] | None = None,
                     character: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                     character_weight: float = 0.5,
                     locations: Mapping[str, Sequence[str]] | None = None,
                     quality: Mapping[str, Sequence[str]] | None = None,
                     calibration: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The predictions frame of patients from their recordings' probabilities.

    ``recordings_by_patient`` maps (or yields pairs of) patient id -> that patient's recordings'
    probabilities, each a dict as :meth:`~murmurlm.inference.predict.Predictor.predict_features`
    returns. Rows follow the input order; ids must be unique. A patient with no recording gets no
    row; when none has one, the frame is empty (no columns). The rules, ``murmur_scale`` and
    ``heads`` are those of :func:`aggregate_recordings`. ``character``: patient id -> a second
    opinion on the systolic character (:class:`murmurlm.models.descriptor_head.DescriptorHead`
    probabilities), blended in with ``character_weight``. ``locations``: patient id -> its
    recordings' sites, in order (adds ``Murmur locations`` and ``Most audible location``,
    :func:`locate_murmur`). ``quality``: patient id -> its recordings' quality flags (the quality
    rule, :func:`apply_quality_rule`: all poor -> Unknown).
    """
    items = recordings_by_patient.items() if isinstance(recordings_by_patient, Mapping) else recordings_by_patient
    patients: dict[str, PatientPrediction] = {}
    seen: set[str] = set()
    for pid, recordings in items:
        pid = str(pid)
        if pid in seen:
            raise ValueError(f"predict_patients: patient {pid} given twice")
        seen.add(pid)
        if len(recordings):
            patients[pid] = aggregate_recordings(recordings, murmur_rule, character_rule, murmur_scale, heads,
                                                 (character or {}).get(pid), character_weight,
                                                 None if locations is None else locations[pid], calibration)
            if quality is not None and pid in quality:
                patients[pid], _ = apply_quality_rule(patients[pid], quality[pid])
    if not patients:
        return pd.DataFrame(index=pd.Index([], name=PATIENT_ID, dtype=object))
    return predictions_frame(patients)
