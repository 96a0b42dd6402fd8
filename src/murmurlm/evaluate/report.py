"""Scoring predictions files against a dataset and writing the reports.

:func:`evaluate_predictions` scores one predictions frame against the true labels and returns
the content of ``metrics.json`` for that model; :func:`write_reports` writes, for one or more
models side by side, ``report.md`` (with PNG figures in ``figures/``), a self-contained
``report.html`` (the same figures embedded as base64 PNG) and ``metrics.json``.

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
>>> import tempfile, pathlib
>>> from murmurlm.data.labels import FEATURE_NAMES
>>> from murmurlm.evaluate.baselines import baseline_predictions
>>> truth = {str(i): {**{n: "nan" for n in FEATURE_NAMES}, "Murmur": m, "Outcome": o}
...          for i, (m, o) in enumerate([("Absent", "Normal"), ("Present", "Abnormal"), ("Absent", "Abnormal")])}
>>> truth["1"]["Systolic murmur timing"] = "Holosystolic"
>>> pred = baseline_predictions("majority", list(truth.values()), list(truth))
>>> result = evaluate_predictions(pred, truth, bootstrap=50, name="majority")
>>> round(result["challenge"]["murmur_weighted_accuracy"]["value"], 3)
0.286
>>> paths = write_reports({"majority": result}, pathlib.Path(tempfile.mkdtemp()), plots=False)
>>> sorted(p.name for p in paths.values())
['metrics.json', 'report.html', 'report.md']
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
import warnings
from datetime import datetime, timezone
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
            out[pid] = circor.patient_labels(row, table_path, lineno)[0]
        return out
    return {p.patient_id: dict(p.labels) for p in circor.load_circor(root)}


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


def _headline(value: float | None, samples: np.ndarray | None, confidence: float, key: str) -> dict:
    label, higher, _ = HEADLINE[key]
    value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    ci = M.confidence_interval(samples, confidence) if samples is not None and value is not None else None
    return {"value": value, "ci": ci, "higher_is_better": higher, "label": label}


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
    return {
        "name": name or (Path(source).stem if source and not str(source).startswith("<") else "model"),
        "source": source,
        "num_patients": n,
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


# --------------------------------------------------------------------------------------------
# writing


def _clean(obj):
    """JSON-safe copy: nan/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def _fmt_ci(value, ci, digits: int = 3) -> str:
    text = _fmt(value, digits)
    if value is not None and ci and ci[0] is not None:
        text += f" [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def plot_confusion(cm: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> bytes:
    """A confusion-matrix PNG (rows truth, columns prediction): colour = row-normalised share,
    text = count. Rendered with matplotlib's Agg canvas (no pyplot state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(cm, dtype=np.float64)
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = 1.2 + 0.55 * k
    fig = Figure(figsize=(size + 0.6, size), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), classes, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _feature_table(results: Mapping[str, dict], feature: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per model) of a feature's table: all patients, then the
    characterisation view; an AUROC column where any model has probabilities."""
    has_char = L.feature(feature).murmur is not None
    entries = [res["features"].get(feature) for res in results.values()]
    with_auc = any(e is not None and "auroc" in e["all"] for e in entries)
    head = ["model", "n", "accuracy", "macro-F1", "UAR"] + (["AUROC"] if with_auc else [])
    if has_char:
        head += ["n (murmur)", "accuracy (murmur)", "macro-F1 (murmur)", "UAR (murmur)"] + (
            ["AUROC (murmur)"] if with_auc else [])

    def cells(view: dict | None) -> list[str]:
        if view is None:
            return ["–"] * (4 + with_auc)
        row = [str(view["num_patients"])] + [_fmt_ci(view[k], view.get(f"{k}_ci")) for k in VIEW_METRICS]
        return row + ([_fmt(view.get("auroc"))] if with_auc else [])

    rows = []
    for name, entry in zip(results, entries):
        row = [name] + cells(entry["all"] if entry else None)
        if has_char:
            row += cells(entry["characterisation"] if entry else None)
        rows.append(row)
    return head, rows


def _per_class_rows(results: Mapping[str, dict], feature: str) -> tuple[list[str], list[list[str]]]:
    classes = list(L.feature(feature).classes)
    first = next((r["features"][feature]["all"] for r in results.values() if feature in r["features"]), None)
    head = ["model"] + [f"{c} (n={first['per_class'][c]['support']})" if first else c for c in classes]
    rows = []
    for name, res in results.items():
        if feature not in res["features"]:
            continue
        pc = res["features"][feature]["all"]["per_class"]
        rows.append([name] + [f"P {_fmt(pc[c]['precision'], 2)} / R {_fmt(pc[c]['recall'], 2)}" for c in classes])
    return head, rows


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}td{white-space:nowrap}th{background:#f0f3f8}
td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:10px}.figs figure{margin:0}
figcaption{font-size:0.75em;text-align:center;color:#555}
.note{color:#8a5a00;font-size:0.85em}
"""


def write_reports(results: Mapping[str, dict], out_dir: str | Path, title: str = "murmurlm evaluation",
                  context: Mapping[str, object] | None = None, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md`` (+ ``figures/*.png``), a self-contained ``report.html`` and
    ``metrics.json`` for one or more models side by side.

    ``results`` maps model names to :func:`evaluate_predictions` results; ``context`` (e.g. the
    data folder and patients file) is written at the top of the reports and into metrics.json.
    ``plots=False`` leaves the confusion-matrix figures out (faster). Returns {"markdown", "html", "json"} -> path.
    """
    if not results:
        raise ValueError("write_reports: no results")
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        fig_dir.mkdir(exist_ok=True)
    context = dict(context or {})
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = list(results)
    first = results[names[0]]

    json_path = out_dir / "metrics.json"
    json_path.write_text(json.dumps(_clean({"title": title, "created": created, "context": context,
                                            "models": dict(results)}), indent=1), encoding="utf-8")

    intro = [f"Created {created}. Patient-level scores; 95% bootstrap intervals in brackets "
             f"({first['bootstrap']['resamples']} resamples of patients, seed {first['bootstrap']['seed']})."]
    for key, value in context.items():
        intro.append(f"{key}: {value}")
    head_cols = list(HEADLINE)
    headline_head = ["model", "patients"] + [HEADLINE[k][0] + (" ↑" if HEADLINE[k][1] else " ↓") for k in head_cols]
    headline_rows = [[n, str(r["num_patients"])] + [_fmt_ci(r["headline"][k]["value"], r["headline"][k]["ci"])
                                                    for k in head_cols] for n, r in results.items()]
    notes = [f"{n}: {note}" for n, r in results.items() for note in r["challenge"].get("notes", [])]

    md = [f"# {title}", "", *[f"{line}  " for line in intro], "", "## Headline", "",
          _md_table(headline_head, headline_rows), ""]
    md += [f"- {note}" for note in notes] + ([""] if notes else [])
    md += ["Costs are the challenge's mean cost per patient (lower is better); 'murmur' columns are "
           "restricted to patients whose true labels have that murmur (characterisation view).", ""]
    hp = [f"<h1>{html.escape(title)}</h1>", *[f"<p>{html.escape(line)}</p>" for line in intro],
          "<h2>Headline</h2>", _html_table(headline_head, headline_rows)]
    hp += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    hp += ["<p>Costs are the challenge's mean cost per patient (lower is better); '(murmur)' columns are "
           "restricted to patients whose true labels have that murmur (characterisation view).</p>"]

    features = [f.name for f in L.FEATURES]
    if any(L.OUTCOME.name in r["features"] for r in results.values()):
        features.append(L.OUTCOME.name)
    used_slugs: set[str] = set()
    model_slugs = {}
    for n in names:
        slug = _slug(n)
        while slug in used_slugs:
            slug += "-x"
        used_slugs.add(slug)
        model_slugs[n] = slug
    for feature in features:
        f_head, f_rows = _feature_table(results, feature)
        table = _md_table(f_head, f_rows)
        pc_head, pc_rows = _per_class_rows(results, feature)
        md += [f"## {feature}", "", table, "", "Per class (all patients):", "", _md_table(pc_head, pc_rows), ""]
        hp += [f"<h2>{html.escape(feature)}</h2>", _html_table(f_head, f_rows),
               "<p>Per class (all patients):</p>", _html_table(pc_head, pc_rows), "<div class='figs'>"]
        for n, res in results.items():
            entry = res["features"].get(feature)
            if entry is None or not plots:
                continue
            png = plot_confusion(entry["all"]["confusion_matrix"], entry["all"]["classes"], f"{n}: {feature}")
            fig_path = fig_dir / f"{model_slugs[n]}__{_slug(feature)}.png"
            fig_path.write_bytes(png)
            md.append(f"![{n}: {feature} confusion matrix](figures/{fig_path.name})")
            b64 = base64.b64encode(png).decode("ascii")
            hp.append(f"<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{html.escape(n)}: "
                      f"{html.escape(feature)} confusion matrix\"><figcaption>{html.escape(n)}</figcaption></figure>")
        md.append("")
        hp.append("</div>")

    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(hp) + "</body></html>\n", encoding="utf-8")
    log.info("reports written to %s", out_dir)
    return {"markdown": md_path, "html": html_path, "json": json_path}
