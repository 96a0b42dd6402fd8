"""Scoring predictions against a dataset's labels: :func:`evaluate_predictions` (one model, the
content of its ``metrics.json`` entry), :func:`evaluate_with_baselines` (several models and the
majority / class-prior baselines, checked before anything is written) and :func:`dataset_labels`.
Rendering the results (Markdown, HTML, ``metrics.json``) is :mod:`murmurlm.evaluate.report`.

``metrics.json`` layout (one entry per model under ``"models"``)::

    {"models": {"<name>": {
        "name", "source", "num_patients", "bootstrap": {"resamples", "seed", "confidence"},
        "headline": {"<metric>": {"value", "ci": [lo, hi], "higher_is_better", "label"}, ...},
        "challenge": {"murmur_weighted_accuracy", "murmur_cost", "outcome_weighted_accuracy",
                      "outcome_cost", "notes": [...]},
        "features": {"<feature>": {"all": {...}, "characterisation": {...} | null}}}}}

where each view holds ``num_patients, accuracy, macro_f1, uar`` (each with ``<metric>_ci``),
``f1_labels, classes, per_class, confusion_matrix`` (see :mod:`murmurlm.evaluate.metrics`).
Undefined numbers are ``null``.

Examples
--------
>>> from murmurlm.data.labels import FEATURE_NAMES
>>> from murmurlm.evaluate.baselines import baseline_predictions
>>> truth = {str(i): {**{n: "nan" for n in FEATURE_NAMES}, "Murmur": m, "Outcome": o}
...          for i, (m, o) in enumerate([("Absent", "Normal"), ("Present", "Abnormal"), ("Absent", "Abnormal")])}
>>> truth["1"]["Systolic murmur timing"] = "Holosystolic"
>>> pred = baseline_predictions("majority", list(truth.values()), list(truth))
>>> result = evaluate_predictions(pred, truth, bootstrap=50, name="majority")
>>> round(result["challenge"]["murmur_weighted_accuracy"]["value"], 3)
0.286
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from murmurlm.data import labels as L
from murmurlm.evaluate import metrics as M
from murmurlm.evaluate.baselines import baseline_frames
from murmurlm.evaluate.predictions import probability_matrix, select_patients, write_predictions

log = logging.getLogger(__name__)

VIEW_METRICS = {"accuracy": M.accuracy_from_confusion, "macro_f1": M.macro_f1_from_confusion,
                "uar": M.uar_from_confusion}
HEADLINE = {
    "murmur_weighted_accuracy": ("Murmur weighted acc. (challenge)", True, "Murmur WA"),
    "murmur_cost": ("Murmur cost (challenge)", False, "Murmur cost"),
    "outcome_cost": ("Outcome cost (challenge)", False, "Outcome cost"),
    "outcome_weighted_accuracy": ("Outcome weighted acc. (challenge)", True, "Outcome WA"),
    "murmur_macro_f1": ("Murmur macro-F1", True, "Murmur F1"),
    "mean_macro_f1": ("Mean macro-F1, 11 features", True, "Mean F1"),
    "systolic_char_uar": ("Mean UAR, systolic features, murmur patients", True, "Sys. UAR"),
}
"""Headline metrics: key -> (label, higher is better, short label)."""


# --------------------------------------------------------------------------------------------
# truth


def patient_truth(patient) -> dict[str, str]:
    """A patient's true labels as the evaluator reads them: the features, the auxiliaries and
    ``Murmur locations`` (``+``-joined, ``nan`` without a murmur)."""
    return {**patient.labels, L.MURMUR_LOCATIONS_NAME: "+".join(patient.murmur_locations) or L.NO_MURMUR}


def dataset_labels(root: str | Path) -> dict[str, dict[str, str]]:
    """The true labels of a CirCor folder: {patient id: {feature: class string}} in file order.

    Reads ``training_data.csv`` when present (fast, no audio headers), else the ``#Key: value``
    lines of the patient ``.txt`` headers via :func:`murmurlm.data.circor.load_circor`.
    """
    from murmurlm.data import circor

    root = Path(root)
    table_path = root / "training_data.csv"
    if table_path.exists():
        table = circor.read_label_table(table_path)
        out = {}
        for lineno, (pid, row) in enumerate(table.items(), start=2):
            labels, sites = circor.patient_labels(row, table_path, lineno)
            out[pid] = {**labels, L.MURMUR_LOCATIONS_NAME: "+".join(sites) or L.NO_MURMUR}
        return out
    return {p.patient_id: patient_truth(p) for p in circor.load_circor(root)}


# --------------------------------------------------------------------------------------------
# scoring


def _with_ci(view: dict, cms: np.ndarray | None, confidence: float) -> dict[str, np.ndarray]:
    """Add ``<metric>_ci`` to a view; returns the per-resample samples of each metric."""
    samples = {}
    for key, fn in VIEW_METRICS.items():
        if cms is None:
            view[f"{key}_ci"] = None
            continue
        samples[key] = fn(cms)
        view[f"{key}_ci"] = M.confidence_interval(samples[key], confidence) if view["num_patients"] else [None, None]
    return samples


def _add_auroc(view: dict, truth: Sequence[str], frame: pd.DataFrame, feature: str) -> None:
    """Add ``auroc`` (macro, one-vs-rest) and per-class ``auroc`` when the frame has probabilities."""
    probs = probability_matrix(frame, feature)
    if probs is None or len(truth) == 0:
        return
    per_class = M.class_aurocs(truth, probs, feature)
    defined = [v for v in per_class if v is not None]
    view["auroc"] = float(np.mean(defined)) if defined else None
    for cls, value in zip(L.feature(feature).classes, per_class):
        view["per_class"][cls]["auroc"] = value


def _calibration(truth: Sequence[str], frame: pd.DataFrame, feature: str) -> dict | None:
    """Top-label ECE (with its reliability bins) and NLL of a feature's probabilities, when the frame
    has them (:mod:`murmurlm.evaluate.calibration`)."""
    from murmurlm.evaluate.calibration import expected_calibration_error, negative_log_likelihood

    probs = probability_matrix(frame, feature)
    if probs is None or len(truth) == 0:
        return None
    idx = np.array([L.feature(feature).classes.index(L.feature(feature).normalise(t)) for t in truth])
    ece = expected_calibration_error(probs, idx)
    return {"ece": ece["ece"], "nll": negative_log_likelihood(probs, idx), "reliability": ece["bins"]}


def _headline(value: float | None, samples: np.ndarray | None, confidence: float, key: str) -> dict:
    label, higher, _ = HEADLINE[key]
    value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    ci = M.confidence_interval(samples, confidence) if samples is not None and value is not None else None
    return {"value": value, "ci": ci, "higher_is_better": higher, "label": label}


def location_scores(frame: pd.DataFrame, truth_rows: Sequence[Mapping[str, str]]) -> dict | None:
    """Where the murmur is heard, among the patients whose murmur is Present (truth): per site F1
    of "heard here" (``Murmur locations``), the exact-set accuracy, and the accuracy of the ``Most
    audible location``. None when the predictions or the labels lack the columns.

    >>> import pandas as pd
    >>> truth = [{"Murmur": "Present", "Murmur locations": "AV+MV", "Most audible location": "MV"},
    ...          {"Murmur": "Absent", "Murmur locations": "nan", "Most audible location": "nan"}]
    >>> pred = pd.DataFrame({"Murmur locations": ["AV+MV", "nan"], "Most audible location": ["AV", "nan"]})
    >>> s = location_scores(pred, truth)
    >>> s["patients"], s["exact_set_accuracy"], s["most_audible_accuracy"], s["per_site_f1"]["MV"]
    (1, 1.0, 0.0, 1.0)
    """
    from murmurlm.evaluate.predictions import normalise_label

    sites_col, loud_col = L.MURMUR_LOCATIONS_NAME, L.MOST_AUDIBLE_LOCATION.name
    if sites_col not in frame.columns or not all(sites_col in t for t in truth_rows):
        return None
    rows = [i for i, t in enumerate(truth_rows) if L.MURMUR.normalise(t.get(L.MURMUR.name)) == "Present"]
    if not rows:
        return None

    def sites(value) -> set[str]:
        return set(L.parse_locations(normalise_label(sites_col, value)))

    true_sets = [sites(truth_rows[i][sites_col]) for i in rows]
    pred_sets = [sites(frame[sites_col].iloc[i]) for i in rows]
    per_site = {}
    for loc in L.LOCATIONS:
        tp = sum(loc in t and loc in p for t, p in zip(true_sets, pred_sets))
        fp = sum(loc not in t and loc in p for t, p in zip(true_sets, pred_sets))
        fn = sum(loc in t and loc not in p for t, p in zip(true_sets, pred_sets))
        per_site[loc] = None if tp + fn == 0 else float(2 * tp / (2 * tp + fp + fn))
    out = {"patients": len(rows), "per_site_f1": per_site,
           "mean_site_f1": M.mean_of_defined(per_site.values()),
           "exact_set_accuracy": float(np.mean([t == p for t, p in zip(true_sets, pred_sets)])),
           "most_audible_accuracy": None}
    if loud_col in frame.columns and all(loud_col in truth_rows[i] for i in rows):
        hits = [L.MOST_AUDIBLE_LOCATION.normalise(truth_rows[i][loud_col])
                == L.MOST_AUDIBLE_LOCATION.normalise(frame[loud_col].iloc[i]) for i in rows]
        out["most_audible_accuracy"] = float(np.mean(hits))
    return out


def evaluate_predictions(predictions: pd.DataFrame, truth: Mapping[str, Mapping[str, str]], *,
                         known_ids: Sequence[str] | None = None, bootstrap: int = 1000, seed: int = 0,
                         confidence: float = 0.95, name: str | None = None) -> dict:
    """Score a predictions frame against the true labels of the evaluated patients.

    Parameters
    ----------
    predictions
        A frame from :func:`~murmurlm.evaluate.predictions.read_predictions` (or built with
        :func:`~murmurlm.evaluate.predictions.predictions_frame`).
    truth
        {patient id: labels} of the patients to evaluate (e.g. :func:`dataset_labels`, restricted
        to a split). Every one needs a prediction row, else DataFormatError.
    known_ids
        All patient ids of the dataset: a prediction row for anyone else is a DataFormatError;
        rows of known patients outside ``truth`` are ignored.
    bootstrap
        Number of bootstrap resamples of patients (0: no confidence intervals).
    seed, confidence
        Bootstrap seed and interval level (percentile method).
    name
        Model name recorded in the result.

    Returns
    -------
    dict
        The model's entry of ``metrics.json`` (see the module docstring).
    """
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ids = [str(p) for p in truth]
    if not ids:
        raise ValueError("evaluate_predictions: no patients to evaluate")
    frame = select_patients(predictions, ids, known_ids)
    source = predictions.attrs.get("source")
    truth_rows = [dict(truth[pid]) for pid in truth]
    n = len(ids)
    index = M.resample_indices(n, bootstrap, seed) if bootstrap else None

    features: dict[str, dict] = {}
    samples_all: dict[str, dict[str, np.ndarray]] = {}
    samples_char: dict[str, dict[str, np.ndarray]] = {}
    for feat in L.FEATURES:
        t = np.array([feat.normalise(row.get(feat.name)) for row in truth_rows], dtype=object)
        p = frame[feat.name].to_numpy(dtype=object)
        tc, pc = M.encode(t, feat.name), M.encode(p, feat.name)
        view = M.feature_metrics(t, p, feat.name)
        _add_auroc(view, t, frame, feat.name)
        cms = None if index is None else M.bootstrap_confusions(tc, pc, index, feat.num_classes)
        samples_all[feat.name] = _with_ci(view, cms, confidence)
        char = None
        mask = M.characterisation_mask(truth_rows, feat.name)
        if mask is not None:
            char = M.feature_metrics(t[mask], p[mask], feat.name)
            _add_auroc(char, t[mask], frame[mask], feat.name)
            cms_c = None if index is None else M.bootstrap_confusions(tc, pc, index, feat.num_classes, mask=mask)
            samples_char[feat.name] = _with_ci(char, cms_c, confidence)
        features[feat.name] = {"all": view, "characterisation": char}

    notes: list[str] = []
    challenge: dict = {}
    murmur_t = [L.MURMUR.normalise(row.get(L.MURMUR.name)) for row in truth_rows]
    murmur_p = [L.MURMUR.normalise(v) for v in frame[L.MURMUR.name]]
    cm_murmur = None if index is None else M.bootstrap_confusions(
        M.encode(murmur_t, "Murmur"), M.encode(murmur_p, "Murmur"), index, 3)
    wa = M.challenge_murmur_score(murmur_t, murmur_p)
    challenge["murmur_weighted_accuracy"] = {
        "value": wa, "ci": None if index is None else M.confidence_interval(M.weighted_accuracy_from_confusion(cm_murmur), confidence)}
    has_true_outcome = all(row.get(L.OUTCOME.name) in L.OUTCOME.classes for row in truth_rows)
    murmur_cost_samples = outcome_cost_samples = outcome_wa_samples = None
    if has_true_outcome:
        outcome_t = [row[L.OUTCOME.name] for row in truth_rows]
        oc = M.encode(outcome_t, "Outcome")
        cost = M.challenge_cost(outcome_t, murmur_p, L.MURMUR.classes)
        if index is not None:
            murmur_cost_samples = M.cost_from_confusion(
                M.bootstrap_confusions(oc, M.encode(murmur_p, "Murmur"), index, 2, 3), L.MURMUR.classes)
        challenge["murmur_cost"] = {"value": cost, "ci": None if index is None else M.confidence_interval(murmur_cost_samples, confidence)}
        if L.OUTCOME.name in frame.columns:
            outcome_p = [L.OUTCOME.normalise(v) for v in frame[L.OUTCOME.name]]
            cm_out = None if index is None else M.bootstrap_confusions(oc, M.encode(outcome_p, "Outcome"), index, 2)
            if cm_out is not None:
                outcome_cost_samples = M.cost_from_confusion(cm_out, L.OUTCOME.classes)
                outcome_wa_samples = M.weighted_accuracy_from_confusion(cm_out, L.OUTCOME.classes)
            challenge["outcome_cost"] = {
                "value": M.challenge_outcome_cost(outcome_t, outcome_p),
                "ci": None if cm_out is None else M.confidence_interval(outcome_cost_samples, confidence)}
            challenge["outcome_weighted_accuracy"] = {
                "value": M.challenge_weighted_accuracy(outcome_t, outcome_p, L.OUTCOME.classes),
                "ci": None if cm_out is None else M.confidence_interval(outcome_wa_samples, confidence)}
            features[L.OUTCOME.name] = {"all": M.feature_metrics(outcome_t, outcome_p, "Outcome"), "characterisation": None}
            _add_auroc(features[L.OUTCOME.name]["all"], outcome_t, frame, L.OUTCOME.name)
            _with_ci(features[L.OUTCOME.name]["all"], cm_out, confidence)
        else:
            challenge["outcome_cost"] = challenge["outcome_weighted_accuracy"] = None
            notes.append("outcome cost skipped: the predictions file has no Outcome column")
    else:
        challenge["murmur_cost"] = challenge["outcome_cost"] = challenge["outcome_weighted_accuracy"] = None
        notes.append("challenge costs skipped: the dataset has no Outcome labels")
    challenge["notes"] = notes

    # headline numbers (the means are bootstrapped per resample too)
    def mean_of(views: list[dict], key: str, samples: list[np.ndarray] | None):
        value = M.mean_of_defined(v[key] for v in views if v is not None)
        stacked = None
        if samples:
            with warnings.catch_warnings():  # a resample where every feature is undefined -> nan
                warnings.simplefilter("ignore", RuntimeWarning)
                stacked = np.nanmean(np.stack(samples), axis=0)
        return value, stacked

    f1_value, f1_samples = mean_of([features[f.name]["all"] for f in L.FEATURES], "macro_f1",
                                   None if index is None else [samples_all[f.name]["macro_f1"] for f in L.FEATURES])
    char_views = [features[f.name]["characterisation"] for f in L.SYSTOLIC]
    uar_value, uar_samples = mean_of(char_views, "uar",
                                     None if index is None else [samples_char[f.name]["uar"] for f in L.SYSTOLIC])
    murmur_view = features[L.MURMUR.name]["all"]
    headline = {
        "murmur_weighted_accuracy": _headline(wa, None if index is None else M.weighted_accuracy_from_confusion(cm_murmur),
                                              confidence, "murmur_weighted_accuracy"),
        "murmur_cost": _headline(challenge["murmur_cost"]["value"] if challenge["murmur_cost"] else None,
                                 murmur_cost_samples, confidence, "murmur_cost"),
        "outcome_cost": _headline(challenge["outcome_cost"]["value"] if challenge["outcome_cost"] else None,
                                  outcome_cost_samples, confidence, "outcome_cost"),
        "outcome_weighted_accuracy": _headline(
            challenge["outcome_weighted_accuracy"]["value"] if challenge["outcome_weighted_accuracy"] else None,
            outcome_wa_samples, confidence, "outcome_weighted_accuracy"),
        "murmur_macro_f1": _headline(murmur_view["macro_f1"], None if index is None else samples_all["Murmur"]["macro_f1"],
                                     confidence, "murmur_macro_f1"),
        "mean_macro_f1": _headline(f1_value, f1_samples, confidence, "mean_macro_f1"),
        "systolic_char_uar": _headline(uar_value, uar_samples, confidence, "systolic_char_uar"),
    }
    calibration = {}
    for feat in (*L.FEATURES, *([L.OUTCOME] if L.OUTCOME.name in features else [])):
        truth_f = [row.get(feat.name) for row in truth_rows]
        if all(v is not None for v in truth_f):
            found = _calibration(truth_f, frame, feat.name)
            if found is not None:
                calibration[feat.name] = found
    return {
        "name": name or (Path(source).stem if source and not str(source).startswith("<") else "model"),
        "source": source,
        "num_patients": n,
        "calibration": calibration or None,
        "locations": location_scores(frame, truth_rows),
        "bootstrap": {"resamples": bootstrap, "seed": seed, "confidence": confidence, "method": "percentile"},
        "headline": headline,
        "challenge": challenge,
        "features": features,
    }


def evaluate_with_baselines(frames: Mapping[str, pd.DataFrame], truth: Mapping[str, Mapping[str, str]],
                            train_labels: Sequence[Mapping[str, str]] | None = None, *,
                            known_ids: Sequence[str] | None = None, bootstrap: int = 1000, seed: int = 0,
                            predictions_dir: str | Path | None = None) -> dict[str, dict]:
    """Score several models' predictions frames beside the baselines: the one evaluation entry
    point of ``murmurlm evaluate``, ``murmurlm pipeline`` and the benchmarks.

    ``frames`` maps model names to predictions frames, each checked against ``truth`` and
    ``known_ids`` first (a missing or unknown patient is a DataFormatError before anything is
    written). With ``train_labels``, the majority and class-prior baselines
    (:func:`murmurlm.evaluate.baselines.baseline_frames`, seeded by ``seed``) are fitted on them for
    the patients of ``truth`` and scored after the models; with ``predictions_dir`` their frames are
    written there as ``baseline-<method>.csv``. ``bootstrap`` and ``seed`` are those of
    :func:`evaluate_predictions`. Returns ``{name: evaluate_predictions result}``, the models in
    their order, then ``baseline-majority`` and ``baseline-prior``: the ``results`` of
    :func:`write_reports`.

    >>> from murmurlm.data.labels import FEATURE_NAMES
    >>> from murmurlm.evaluate.baselines import baseline_predictions
    >>> truth = {str(i): {**{n: "nan" for n in FEATURE_NAMES}, "Murmur": m}
    ...          for i, m in enumerate(["Absent", "Absent", "Unknown"])}
    >>> model = baseline_predictions("majority", [truth["2"]], list(truth))  # says Unknown for everyone
    >>> results = evaluate_with_baselines({"unknown": model}, truth, list(truth.values()), bootstrap=0)
    >>> list(results)
    ['unknown', 'baseline-majority', 'baseline-prior']
    >>> round(results["unknown"]["headline"]["murmur_weighted_accuracy"]["value"], 2)  # 3 / (1 + 1 + 3)
    0.6
    >>> round(results["baseline-majority"]["headline"]["murmur_weighted_accuracy"]["value"], 2)  # (1 + 1) / 5
    0.4
    """
    ids = [str(p) for p in truth]
    for frame in frames.values():  # fail on a missing or unknown patient before writing anything
        select_patients(frame, ids, known_ids)
    frames = dict(frames)
    if train_labels is not None:
        baselines = baseline_frames(train_labels, ids, seed=seed)
        if predictions_dir is not None:
            for name, frame in baselines.items():
                write_predictions(frame, Path(predictions_dir) / f"{name}.csv")
            log.info("baseline predictions written to %s", predictions_dir)
        frames.update(baselines)
    return {name: evaluate_predictions(frame, truth, known_ids=known_ids, bootstrap=bootstrap, seed=seed, name=name)
            for name, frame in frames.items()}
