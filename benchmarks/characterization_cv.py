"""Benchmark: describing the murmur from heart-cycle-aligned descriptors, against today's default,
in 5-fold patient-wise CV on a CirCor folder (the characterization issue).

    nice -n 10 .venv/bin/python benchmarks/characterization_cv.py --data $MURMURLM_CIRCOR \
        --members runs/cv/default-s0,runs/cv/default-s1,runs/cv/default-s2

``--members``: runs of ``benchmarks/compact_cv.py`` with the default config and seeds 0, 1, 2
(``--runs runs/cv/default-s<seed> seed=<seed>``), i.e. today's default trained on each fold of
``splits/circor-dev-5fold`` (each fold model never saw its held-out patients). Their fold models are
combined into the fold's 3-seed ensemble, today's packaged default in small (murmur scale of
``compact/default``). Every model below is scored on the same pooled out-of-fold patients.

Models:

- **default**: the 3-seed CNN ensemble, alone.
- **descriptors**: the CNN decides whether there is a systolic murmur (Murmur Present and its
  systolic timing not ``nan``); its character is then classified from the descriptors
  (:mod:`murmurlm.signal.descriptors`) of the recording's average heartbeat
  (:mod:`murmurlm.signal.heartbeat`), with cycles from the packaged Mamba segmenter: per patient the
  mean descriptor vector over its recordings (no location label), standardised, and one
  class-balanced logistic regression per systolic feature, fitted on the fold's training patients
  that have a systolic murmur, its regularisation chosen by an inner 5-fold CV on those patients only.
- **blend**: as *descriptors*, but the class probabilities are the mean of the descriptor model's and
  the CNN's (renormalised over the murmur's classes): the CNN hears loudness and pitch, the
  descriptors place the murmur in the cycle. Fixed at 0.5 in advance, not tuned.
- **descriptors, heard** and **blend, heard**: the same, with each patient's recordings pooled where the
  murmur is heard: at training by the labelled murmur locations, at test weighted by the CNN's
  P(Murmur=Present) of each recording (the fold model's, so nothing of the test patient's labels).
- **blend, transplants**: the blend, its timing, shape and quality regressions also fitted on
  murmur transplants (:func:`murmurlm.signal.synth.transplant_murmur`): ``--transplants`` synthetic
  murmurs of every class of the feature, laid into murmur-free recordings of the fold's training
  patients, so that the rare classes (Mid-/Late-systolic, Crescendo, Musical) have examples.
- **blend, varied transplants**: as *blend, transplants*, each transplant drawn from its class's range
  (``transplant_murmur(..., variation=True)``: window, shape, level, a Musical murmur's noise).
- **blend, transplants, ordinal**: as *blend, transplants*, grading fitted as an ordinal
  (cumulative-logit) regression, I < II < III.
- **proposed**: *blend, transplants* plus the diastolic detector (not the ordinal grading, which lost
  in this benchmark: grading macro-F1 0.542 against 0.567, 2026-12-07): a binary
  regression on the fold's systolic-murmur patients (whether they also have a diastolic murmur) and
  ``--diastolic-transplants`` diastolic murmurs of random classes laid into their recordings; its
  P(present) replaces the CNN's P(diastolic murmur), the CNN's diastolic class probabilities give the
  character (the recipe's default, :mod:`murmurlm.recipes.train_descriptor_head`).
- **..., quality rule**: the project's one quality rule applied (a patient whose recordings are all
  flagged ``poor`` by :func:`murmurlm.signal.quality.pcg_quality` on their Mamba segmentation is
  ``Unknown``: :func:`murmurlm.evaluate.patients.apply_quality_rule`), to the default and to the
  proposed model; **..., calibrated**: P(Murmur) with a temperature fitted per fold on the fold's
  inner validation patients (:mod:`murmurlm.evaluate.calibration`; labels unchanged).
- each of the three single-seed CNNs and its blend, for the spread over seeds.

Reported: per feature macro-F1 and UAR among the patients with that murmur, murmur weighted
accuracy, the pooled out-of-fold recall and precision of every long-tail class, inference speed with
segmentation (one core, multiple of real time) and the descriptor model's training time and memory.

Writes ``benchmarks/results/characterization_cv.{json,md}``; descriptors and segmentations are
cached under ``--runs`` (``runs/characterization``).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from summary import summarise_all  # noqa: E402

from murmurlm.data import labels as L  # noqa: E402
from murmurlm.data.circor import load_circor  # noqa: E402
from murmurlm.data.splits import repository_split  # noqa: E402
from murmurlm.evaluate.predictions import PROB_COLUMN, write_predictions  # noqa: E402
from murmurlm.evaluate.report import evaluate_with_baselines  # noqa: E402
from murmurlm.evaluate.scoring import patient_truth  # noqa: E402
from murmurlm.inference.predict import combine_models, load_model  # noqa: E402
from murmurlm.signal.descriptors import DESCRIPTOR_NAMES, descriptor_vector  # noqa: E402
from murmurlm.signal.features import recording_features  # noqa: E402
from murmurlm.signal.heartbeat import pcg_heartbeat  # noqa: E402
from murmurlm.models.descriptor_head import DIASTOLIC_PRESENCE, blend_character, fit_descriptor_head  # noqa: E402
from murmurlm.train.descriptors import (choose_regularisation, diastolic_rows, patient_matrix,  # noqa: E402
                                        recording_segments, transplant_rows)

log = logging.getLogger("benchmarks.characterization_cv")
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_SCALE = [1.0, 0.35, 1.0]  # compact/default's murmur scale (the packaged default's)
LONG_TAIL = {"Systolic murmur timing": ["Mid-systolic", "Late-systolic"], "Systolic murmur shape": ["Crescendo"],
             "Systolic murmur quality": ["Musical"],
             **{f.name: [c for c in f.classes if c != L.NO_MURMUR] for f in L.DIASTOLIC}}


# --------------------------------------------------------------------------------------------
# descriptors


def all_descriptors(dataset, seg_dir: Path, cache: Path) -> dict[str, np.ndarray]:
    """Descriptor vector of every recording (cached in one .npz keyed by recording name)."""
    from tqdm.auto import tqdm

    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as z:
            if list(z["names"]) == list(DESCRIPTOR_NAMES):
                known = {k: z[k] for k in z.files if k != "names"}
    todo = [r for r in dataset.recordings if r.name not in known]
    seg_dir.mkdir(parents=True, exist_ok=True)
    for rec in tqdm(todo, desc="descriptors", unit="rec", disable=not todo):
        beat = pcg_heartbeat(rec.load_audio(), rec.sampling_rate, recording_segments(rec, "mamba", seg_dir))
        known[rec.name] = descriptor_vector(beat).astype(np.float64)
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, names=np.array(DESCRIPTOR_NAMES), **known)
    return known


def heard_weights(patients) -> dict[str, float]:
    """Training patients: 1 for the recordings at the patient's labelled murmur locations, else 0."""
    return {r.name: float(r.location in p.murmur_locations) for p in patients for r in p.recordings}


# --------------------------------------------------------------------------------------------
# the long tail: murmur transplants


COMPARED = {"Systolic murmur timing": ("sys_centre_time", "sys_frac_early", "sys_frac_late"),
            "Systolic murmur shape": ("sys_slope_db", "sys_curvature_db"),
            "Systolic murmur quality": ("sys_flatness", "sys_tonal_prominence_db", "sys_to_s1_db")}


def compare_synthetic(extra: dict[str, tuple], murmur_patients, descriptors) -> list[dict]:
    """Before trusting transplants: per class, the median of the descriptors that define it, on
    real murmur patients (mean over their recordings) and on the transplants."""
    index = {n: i for i, n in enumerate(DESCRIPTOR_NAMES)}
    real_x = patient_matrix(murmur_patients, descriptors)
    rows = []
    for feature, names in COMPARED.items():
        x_syn, y_syn = extra[feature]
        y_real = np.array([p.labels[feature] for p in murmur_patients])
        for cls in L.feature(feature).present_classes:
            for name in names:
                real = real_x[y_real == cls, index[name]]
                syn = x_syn[y_syn == cls, index[name]]
                rows.append({"feature": feature, "class": cls, "descriptor": name, "real_patients": int(len(real)),
                             "real_median": float(np.median(real)) if len(real) else None,
                             "synthetic_median": float(np.median(syn)) if len(syn) else None})
    return rows


# --------------------------------------------------------------------------------------------
# the descriptor model


def descriptor_probabilities(train_patients, test_patients, descriptors, seed: int, chosen: list | None = None,
                             test_weights: dict[str, float] | None = None,
                             extra: dict[str, tuple] | None = None, ordinal: tuple[str, ...] = (),
                             diastolic: tuple | None = None) -> dict[str, np.ndarray]:
    """Per systolic feature, class probabilities (over the murmur's classes, schema order) of the
    test patients, from a head (:func:`murmurlm.models.descriptor_head.fit_descriptor_head`, as the
    recipe fits it) on the training patients with a systolic murmur, ``C`` per feature by inner CV
    on the real rows (:func:`murmurlm.train.descriptors.choose_regularisation`).
    ``test_weights`` (recording -> weight, e.g. the CNN's P(Murmur=Present)) pools a test patient's
    recordings where the murmur is heard, as the training side pools its labelled murmur locations;
    None: plain means on both sides. ``extra``: feature -> (rows, labels) added to its training
    rows (:func:`transplant_rows`). ``ordinal``: features fitted as ordinal regressions.
    ``diastolic``: the detector's (rows, labels) (:func:`diastolic_rows`); its P(absent, present)
    comes back under ``DIASTOLIC_PRESENCE``."""
    with_murmur = [p for p in train_patients if p.has_murmur("systolic")]
    x_train = patient_matrix(with_murmur, descriptors, None if test_weights is None else heard_weights(with_murmur))
    x_test = patient_matrix(test_patients, descriptors, test_weights)
    labels = {f.name: np.array([p.labels[f.name] for p in with_murmur]) for f in L.SYSTOLIC}
    c = {f.name: choose_regularisation(x_train, labels[f.name], seed) for f in L.SYSTOLIC}
    if chosen is not None:
        chosen.extend(c.values())
    head = fit_descriptor_head(x_train, labels, DESCRIPTOR_NAMES, c=c, extra=extra, ordinal=ordinal,
                               diastolic=diastolic)
    return head.predict_proba(x_test)


def with_character(frame: pd.DataFrame, desc: dict[str, np.ndarray], weight: float) -> pd.DataFrame:
    """The CNN's frame with the character blended as the product blends it
    (:func:`murmurlm.models.descriptor_head.blend_character`: ``weight`` x descriptors + (1 - weight)
    x the CNN's over the murmur's classes, P(nan) kept; the diastolic detector's P(present), when
    there is one, as P(diastolic murmur)). Labels: the systolic ones the argmax where the CNN says
    there is a systolic murmur, ``nan`` elsewhere (as before); the diastolic ones, with a detector,
    the argmax where the murmur is Present and P(nan) < 0.5 (the aggregation's rule)."""
    out = frame.copy()
    heard = (out[L.MURMUR.name] == "Present") & (out[L.SYSTOLIC[0].name] != L.NO_MURMUR)
    present = out[L.MURMUR.name] == "Present"
    groups = (*L.SYSTOLIC, *L.DIASTOLIC) if DIASTOLIC_PRESENCE in desc else L.SYSTOLIC
    cols = {f.name: [PROB_COLUMN.format(feature=f.name, cls=c) for c in f.classes] for f in groups}
    probs = {f.name: out[cols[f.name]].to_numpy(dtype=np.float64, copy=True) for f in groups}
    for i in range(len(out)):
        mixed = blend_character({f: v[i] for f, v in probs.items()}, {f: v[i] for f, v in desc.items()}, weight)
        for f in groups:
            probs[f.name][i] = mixed[f.name]
    for f in groups:
        out[cols[f.name]] = probs[f.name]
        best = np.array(f.present_classes)[probs[f.name][:, 1:].argmax(axis=1)]
        if f in L.SYSTOLIC:
            out[f.name] = np.where(heard, best, L.NO_MURMUR)
        else:
            exists = present & (probs[f.name][:, f.classes.index(L.NO_MURMUR)] < 0.5)
            out[f.name] = np.where(exists, best, L.NO_MURMUR)
    return out


def quality_flags(dataset, seg_dir: Path, cache: Path) -> dict[str, str]:
    """Each recording's quality flag (:func:`murmurlm.signal.quality.pcg_quality` on its Mamba
    segmentation, as the product computes it), cached as JSON."""
    from murmurlm.signal.quality import pcg_quality

    known = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [r for r in dataset.recordings if r.name not in known]
    for rec in todo:
        known[rec.name] = pcg_quality(rec.load_audio(), rec.sampling_rate, recording_segments(rec, "mamba", seg_dir))["flag"]
    if todo:
        cache.write_text(json.dumps(known))
    return known


def with_quality_rule(frame: pd.DataFrame, patients, flags: dict[str, str]) -> pd.DataFrame:
    """The frame with the project's quality rule applied (:func:`murmurlm.evaluate.patients.apply_quality_rule`:
    a patient whose recordings are all poor is Unknown, nothing described)."""
    from murmurlm.evaluate.aggregate import PatientPrediction
    from murmurlm.evaluate.patients import apply_quality_rule

    out = frame.copy()
    columns = [c for c in out.columns if not str(c).startswith("P(")]
    for p in patients:
        if p.patient_id not in out.index:
            continue
        said, why = apply_quality_rule(PatientPrediction({c: out.at[p.patient_id, c] for c in columns}),
                                       [flags[r.name] for r in p.recordings])
        if why is not None:
            for c in columns:
                out.at[p.patient_id, c] = said.labels[c]
    return out


def murmur_temperature(frame: pd.DataFrame, patients) -> float:
    """Murmur's temperature (:func:`murmurlm.evaluate.calibration.fit_temperature`) on patients
    the fold's models did not train on (its inner validation patients)."""
    from murmurlm.evaluate.calibration import fit_temperature
    from murmurlm.evaluate.predictions import probability_matrix

    truth = {p.patient_id: p.labels[L.MURMUR.name] for p in patients}
    idx = np.array([L.MURMUR.classes.index(truth[str(pid)]) for pid in frame.index])
    return fit_temperature(probability_matrix(frame, L.MURMUR.name), idx)


def with_temperature(frame: pd.DataFrame, temperature: float) -> pd.DataFrame:
    """The frame with Murmur's probabilities calibrated (labels untouched)."""
    from murmurlm.evaluate.calibration import apply_temperature
    from murmurlm.evaluate.predictions import prob_columns

    out = frame.copy()
    cols = prob_columns(L.MURMUR.name)
    out[cols] = apply_temperature(out[cols].to_numpy(dtype=np.float64), temperature)
    return out


# --------------------------------------------------------------------------------------------
# the CNN side


def fold_predictor(members: list[Path], i: int, runs: Path):
    """The fold's 3-seed ensemble (written once), with the default murmur scale."""
    if len(members) == 1:  # a single seed (smoke runs): the fold model itself
        return load_model(members[0] / f"fold{i}" / "best.pt")
    path = runs / f"fold{i}" / "default-ensemble.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        combine_models([m / f"fold{i}" / "best.pt" for m in members], path, murmur_scale=DEFAULT_SCALE)
    return load_model(path)


def patient_frame(predictor, patients, cache_dir) -> tuple[pd.DataFrame, dict[str, float]]:
    """The predictor's patient frame, and each recording's P(Murmur=Present)."""
    recordings = [r for p in patients for r in p.recordings]
    feats = recording_features(recordings, predictor.front_end, cache_dir=cache_dir, use_cache=True, progress=False)
    probs = predictor.predict_features(feats)
    present = {r.name: float(q[L.MURMUR.name][L.MURMUR.classes.index("Present")]) for r, q in zip(recordings, probs)}
    it = iter(probs)
    sites = {p.patient_id: [r.location for r in p.recordings] for p in patients}
    return predictor.predict_patients({p.patient_id: [next(it) for _ in p.recordings] for p in patients},
                                      locations=sites), present


def conditional_scores(frame: pd.DataFrame, truth: dict) -> dict:
    """The description alone, the murmur taken as present (as the issue's probe and the independent
    findings measure it): among the patients with a systolic murmur, each feature's argmax over the
    murmur's classes against the truth; macro-F1 and UAR over the classes these patients have."""
    from sklearn.metrics import f1_score, recall_score

    ids = [pid for pid in frame.index.astype(str) if L.has_murmur(truth[pid], "systolic")]
    out = {}
    for f in L.SYSTOLIC:
        classes = [c for c in f.classes if c != L.NO_MURMUR]
        cols = [PROB_COLUMN.format(feature=f.name, cls=c) for c in classes]
        pred = np.array(classes)[frame.loc[ids, cols].to_numpy(dtype=np.float64).argmax(axis=1)]
        true = np.array([truth[pid][f.name] for pid in ids])
        present = sorted(set(true))
        out[f.name] = {"macro_f1": float(f1_score(true, pred, labels=present, average="macro", zero_division=0)),
                       "uar": float(recall_score(true, pred, labels=present, average="macro", zero_division=0)),
                       "patients": len(ids)}
    return out


# --------------------------------------------------------------------------------------------
# speed


def inference_speed(predictor, dataset, num: int = 40) -> dict:
    """One core: read, CNN, Mamba segmentation, heartbeat and descriptors, per recording."""
    from murmurlm.signal.segment import pcg_segment

    torch.set_num_threads(1)
    recs = dataset.recordings[:num]
    wave = recs[0].load_audio()
    pcg_segment(wave, recs[0].sampling_rate, method="mamba")  # warm-up (loads the segmenter)
    predictor.predict_waveform(wave, recs[0].sampling_rate)
    parts = {"cnn": 0.0, "segment": 0.0, "descriptors": 0.0, "read": 0.0}
    audio_s = 0.0
    for rec in recs:
        t = time.perf_counter()
        wave = rec.load_audio()
        parts["read"] += time.perf_counter() - t
        audio_s += len(wave) / rec.sampling_rate
        t = time.perf_counter()
        predictor.predict_waveform(wave, rec.sampling_rate)
        parts["cnn"] += time.perf_counter() - t
        t = time.perf_counter()
        seg = pcg_segment(wave, rec.sampling_rate, method="mamba")
        parts["segment"] += time.perf_counter() - t
        t = time.perf_counter()
        descriptor_vector(pcg_heartbeat(wave, rec.sampling_rate, seg.segments))
        parts["descriptors"] += time.perf_counter() - t
    total = sum(parts.values())
    return {"recordings": len(recs), "audio_seconds": round(audio_s, 1),
            "realtime_factor_total": round(audio_s / total, 1),
            "realtime_factor_default_only": round(audio_s / (parts["read"] + parts["cnn"]), 1),
            **{f"seconds_{k}": round(v, 3) for k, v in parts.items()}}


# --------------------------------------------------------------------------------------------
# report


def fmt(v, d: int = 3) -> str:
    return "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))


def long_tail_rows(results: dict, names: list[str]) -> list[str]:
    rows = []
    for feature, classes in LONG_TAIL.items():
        for c in classes:
            support = results[names[0]]["features"][feature]["all"]["per_class"][c]["support"]
            if not support:
                continue
            cells = []
            for n in names:
                pc = results[n]["features"][feature]["all"]["per_class"][c]
                cells.append(f"{fmt(pc['recall'], 2)} / {fmt(pc['precision'], 2)}")
            rows.append(f"| {feature}: {c} | {support} | " + " | ".join(cells) + " |")
    return rows


def write_markdown(report: dict, path: Path) -> None:
    s = report["summary"]
    names = report["models"]
    lines = [f"# Murmur characterization: cycle-aligned descriptors vs today's default, 5-fold CV on {report['data']}",
             "", f"Command: `{report['command']}`", "",
             f"Folds: {report['folds']}; {report['num_patients']} patients, each predicted once by models that never "
             "saw it. *default*: the 3-seed CNN ensemble of `compact/default` per fold. *descriptors* and *blend*: "
             "the CNN decides whether there is a systolic murmur; its character comes from the descriptors "
             "(logistic regression) or from the mean of the descriptor and CNN probabilities. "
             "*heard*: recordings pooled where the murmur is heard (labelled locations at training, the CNN's "
             "P(Present) at test). *transplants*: the blend with synthetic murmurs of every timing, shape and quality "
             "class added to the training rows (*varied*: each drawn from its class's range). *ordinal*: grading as a "
             "cumulative-logit regression. *diastolic*: the diastolic detector (descriptors + diastolic transplants) "
             "decides whether there is a diastolic murmur; *proposed*: blend, transplants and the diastolic detector. "
             "*quality rule*: a patient whose recordings are all of poor quality is Unknown; *calibrated*: P(Murmur) "
             "with a temperature fitted on the fold's inner validation patients. `s<k>`: the single-seed CNN of seed k and its blend.", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label in (("murmur_weighted_accuracy", "Murmur weighted accuracy ↑"),
                       ("mean_macro_f1", "Mean macro-F1, 11 features ↑"),
                       ("systolic_char_uar", "Mean UAR, systolic features, murmur patients ↑")):
        lines.append(f"| {label} | " + " | ".join(fmt(s[n][key]) for n in names) + " |")
    lines += ["", "End to end, as the evaluator scores it: among the patients with a systolic murmur, macro-F1 / UAR "
              "per feature, a murmur the model missed counting as a wrong answer (`nan` is one of the classes):", "",
              "| feature | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for f in L.SYSTOLIC:
        lines.append(f"| {f.name} | " + " | ".join(
            f"{fmt(s[n]['features'][f.name]['macro_f1_murmur_patients'])} / "
            f"{fmt(s[n]['features'][f.name]['uar_murmur_patients'])}" for n in names) + " |")
    c = report["conditional"]
    lines += ["", "The description alone, the murmur taken as present (patients with a systolic murmur; each "
              "feature's most probable murmur class; macro-F1 / UAR over the classes these patients have; "
              "the issue's targets are stated for this view):", "",
              "| feature | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for f in L.SYSTOLIC:
        lines.append(f"| {f.name} | " + " | ".join(
            f"{fmt(c[n][f.name]['macro_f1'])} / {fmt(c[n][f.name]['uar'])}" for n in names) + " |")
    lines += ["", "Long-tail classes: pooled out-of-fold recall / precision (all patients):", "",
              "| class | patients | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names),
              *long_tail_rows(report["results"], names)]
    calibrated = [n for n in ("default", "proposed, quality rule", "proposed, quality rule, calibrated")
                  if n in names and (report["results"][n].get("calibration") or {}).get(L.MURMUR.name)]
    if calibrated:
        lines += ["", "Calibration of P(Murmur) (top-label ECE, 10 bins, and NLL, all patients pooled out of fold; "
                  f"*calibrated*: a temperature fitted per fold on its inner validation patients, "
                  f"{', '.join(f'{t:.2f}' for t in report['temperatures'])}):", "",
                  "| | " + " | ".join(calibrated) + " |", "|---|" + "---:|" * len(calibrated)]
        for key in ("ece", "nll"):
            lines.append(f"| Murmur {key.upper()} | " + " | ".join(
                fmt(report["results"][n]["calibration"][L.MURMUR.name][key]) for n in calibrated) + " |")
    located = [n for n in ("default", *(f"s{k}" for k in range(3))) if n in names
               and report["results"][n].get("locations")]
    if located:  # the character heads do not change where the murmur is heard: the CNNs only
        lines += ["", "Where the murmur is heard (each site's P(Murmur=Present), `murmurlm.evaluate.patients.locate_murmur`; "
                  "the patients whose murmur is Present, pooled out of fold; the character models do not change it):",
                  "", "| | " + " | ".join(located) + " |", "|---|" + "---:|" * len(located)]
        for key, label in (("mean_site_f1", "mean per-site F1"), ("exact_set_accuracy", "exact set of sites"),
                           ("most_audible_accuracy", "most audible site")):
            lines.append(f"| {label} | " + " | ".join(fmt(report["results"][n]["locations"][key]) for n in located) + " |")
        lines.append(f"| patients | " + " | ".join(str(report["results"][n]["locations"]["patients"]) for n in located) + " |")
    lines += ["", "Transplants against real murmurs (fold 0's training patients): the median of the descriptors "
              "that define each class (docs/descriptors.md).", "",
              "| feature: class | descriptor | real patients | real median | transplant median |", "|---|---|---:|---:|---:|"]
    for r in report["synthetic_vs_real"]:
        lines.append(f"| {r['feature']}: {r['class']} | {r['descriptor']} | {r['real_patients']} | "
                     f"{fmt(r['real_median'], 2)} | {fmt(r['synthetic_median'], 2)} |")
    sp, tr = report["speed"], report["descriptor_training"]
    lines += ["", f"Inference, one core, {sp['recordings']} recordings ({sp['audio_seconds']} s of audio): "
              f"read + CNN + Mamba segmentation + heartbeat + descriptors {sp['realtime_factor_total']}x real time "
              f"(the CNN alone, with reading: {sp['realtime_factor_default_only']}x); seconds: read {sp['seconds_read']}, "
              f"CNN {sp['seconds_cnn']}, segmentation {sp['seconds_segment']}, descriptors {sp['seconds_descriptors']}.",
              f"Descriptor model training: {tr['seconds']:.1f} s CPU for all folds (transplants: "
              f"{tr['transplant_seconds']:.1f} s to make and describe) "
              f"(regularisation chosen per fold and feature: {tr['chosen_c']}); the CNN's training is that of "
              "`compact_cv.py` (its results files). Peak resident memory of this process: "
              f"{report['peak_rss_mb']:.0f} MB.", ""]
    path.write_text("\n".join(lines) + "\n")


def committed_folds(data: Path):
    """The dataset (unreadable patients skipped), its committed 5-fold split
    (``splits/<name>-5fold``, the folds of ``compact_cv.py``) and where that split lives."""
    dataset = load_circor(data, on_error="skip")
    found = repository_split(data, (p.patient_id for p in dataset.patients), k=5)
    if found is None:
        raise SystemExit("needs the committed 5-fold split of this folder (splits/<name>-5fold), as compact_cv.py")
    return dataset, found[0], found[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--members", required=True, help="comma-separated compact_cv.py run folders (one per seed)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "characterization")
    parser.add_argument("--segmentations", type=Path, default=None,
                        help="folder of <recording>.tsv from `murmurlm segment predict --method mamba` (default: RUNS/segments)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--transplants", type=int, default=15,
                        help="synthetic murmurs per class and fold for the transplant variant")
    parser.add_argument("--diastolic-transplants", type=int, default=60,
                        help="diastolic murmur transplants per fold for the diastolic detector")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    members = [Path(m) for m in args.members.split(",")]
    dataset, folds, where = committed_folds(args.data)
    by_id = dataset.by_id()
    seg_dir = args.segmentations or args.runs / "segments"
    descriptors = all_descriptors(dataset, seg_dir, args.runs / "descriptors.npz")
    flags = quality_flags(dataset, seg_dir, args.runs / "quality.json")
    cache_dir = args.runs / "features"

    frames: dict[str, list[pd.DataFrame]] = {}
    fit_seconds, transplant_seconds, chosen, temperatures = 0.0, 0.0, [], []
    for i, fold in enumerate(folds):
        test = [by_id[p] for p in fold.val]
        train = [by_id[p] for p in fold.train]
        cnn, present = patient_frame(fold_predictor(members, i, args.runs), test, cache_dir)
        t = time.process_time()
        desc = descriptor_probabilities(train, test, descriptors, seed=i, chosen=chosen)
        heard = descriptor_probabilities(train, test, descriptors, seed=i, test_weights=present)
        fit_seconds += time.process_time() - t
        donors = [r for p in train if p.labels[L.MURMUR.name] == "Absent" for r in p.recordings]
        t = time.process_time()
        extra = transplant_rows(donors, [p for p in train if p.has_murmur("systolic")], args.transplants, seed=i,
                                cache=seg_dir)
        transplant_seconds += time.process_time() - t
        grafted = descriptor_probabilities(train, test, descriptors, seed=i, extra=extra)
        varied = transplant_rows(donors, [p for p in train if p.has_murmur("systolic")], args.transplants, seed=i,
                                 cache=seg_dir, variation=True)
        grafted_varied = descriptor_probabilities(train, test, descriptors, seed=i, extra=varied)
        grading = ("Systolic murmur grading",)
        ordinal = descriptor_probabilities(train, test, descriptors, seed=i, extra=extra, ordinal=grading)
        t = time.process_time()
        dia_rows = diastolic_rows([p for p in train if p.has_murmur("systolic")], descriptors,
                                  args.diastolic_transplants, seed=i, cache=seg_dir)
        transplant_seconds += time.process_time() - t
        with_dia = descriptor_probabilities(train, test, descriptors, seed=i, extra=extra, diastolic=dia_rows)
        if i == 0:
            comparison = compare_synthetic(extra, [p for p in train if p.has_murmur("systolic")], descriptors)
        frames.setdefault("default", []).append(cnn)
        frames.setdefault("descriptors", []).append(with_character(cnn, desc, 1.0))
        frames.setdefault("blend", []).append(with_character(cnn, desc, 0.5))
        frames.setdefault("descriptors, heard", []).append(with_character(cnn, heard, 1.0))
        frames.setdefault("blend, heard", []).append(with_character(cnn, heard, 0.5))
        frames.setdefault("blend, transplants", []).append(with_character(cnn, grafted, 0.5))
        frames.setdefault("blend, varied transplants", []).append(with_character(cnn, grafted_varied, 0.5))
        frames.setdefault("blend, transplants, ordinal", []).append(with_character(cnn, ordinal, 0.5))
        frames.setdefault("proposed", []).append(with_character(cnn, with_dia, 0.5))
        frames.setdefault("default, quality rule", []).append(with_quality_rule(cnn, test, flags))
        frames.setdefault("proposed, quality rule", []).append(with_quality_rule(frames["proposed"][-1], test, flags))
        # calibration: Murmur's temperature fitted on the fold's inner validation patients (never the test fold)
        inner = [by_id[p] for p in json.loads((members[0] / f"fold{i}" / "split.json").read_text())["val"]]
        inner_frame, _ = patient_frame(fold_predictor(members, i, args.runs), inner, cache_dir)
        temperature = murmur_temperature(inner_frame, inner)
        temperatures.append(temperature)
        frames.setdefault("proposed, quality rule, calibrated", []).append(
            with_temperature(frames["proposed, quality rule"][-1], temperature))
        for k, m in enumerate(members):
            single = load_model(m / f"fold{i}" / "best.pt")
            single_frame, _ = patient_frame(single, test, cache_dir)
            frames.setdefault(f"s{k}", []).append(single_frame)
            frames.setdefault(f"s{k} blend", []).append(with_character(single_frame, desc, 0.5))
        log.info("fold %d: %d test patients", i, len(test))
    pooled = {name: pd.concat(parts) for name, parts in frames.items()}
    for name, frame in pooled.items():
        write_predictions(frame, args.runs / "predictions" / f"{name.replace(' ', '_')}.csv")
    truth = {pid: patient_truth(by_id[pid]) for pid in pooled["default"].index.astype(str)}
    train_labels = [p.labels for p in dataset.patients]  # baselines are not the point here
    results = evaluate_with_baselines(pooled, truth, train_labels, known_ids=list(by_id), bootstrap=args.bootstrap,
                                      seed=0)
    names = list(pooled)
    report = {"data": str(args.data), "folds": str(where), "num_patients": len(truth),
              "command": "nice -n 10 .venv/bin/python benchmarks/characterization_cv.py " + " ".join(argv or sys.argv[1:]),
              "models": names, "conditional": {n: conditional_scores(pooled[n], truth) for n in names},
              "summary": summarise_all({n: results[n] for n in names}),
              "results": {n: results[n] for n in names},
              "speed": inference_speed(fold_predictor(members, 0, args.runs), dataset),
              "descriptor_training": {"seconds": fit_seconds, "transplant_seconds": transplant_seconds, "chosen_c": {str(c): chosen.count(c) for c in sorted(set(chosen))}},
              "synthetic_vs_real": comparison, "temperatures": temperatures,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "characterization_cv.json").write_text(json.dumps(
        {k: v for k, v in report.items() if k != "results"}, indent=2, default=str) + "\n")
    write_markdown(report, args.out / "characterization_cv.md")
    log.info("wrote %s", args.out / "characterization_cv.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
