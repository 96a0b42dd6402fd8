"""Training data for the descriptor head (:mod:`murmurlm.models.descriptor_head`): descriptors of
real recordings, patient rows, murmur transplants for the long tail, and the choice of
regularisation. Used by the recipe :mod:`murmurlm.recipes.train_descriptor_head`, by
:func:`murmurlm.inference.predict.predict_dataset` (descriptors of the recordings it predicts) and by
``benchmarks/characterization_cv.py``.

Examples
--------
>>> import tempfile, pathlib
>>> from murmurlm.data.circor import load_circor
>>> from murmurlm.signal.synth import write_synthetic_circor
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_synthetic_circor(root, num_patients=2, seed=0, locations=("MV",), duration=(4.0, 4.0))
>>> recs = load_circor(root).recordings
>>> vectors = recording_descriptors(recs, method="springer", progress=False)
>>> len(vectors) == len(recs), patient_matrix(load_circor(root).patients, vectors).shape[0]
(True, 2)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from murmurlm.data import labels as L
from murmurlm.data.circor import read_tsv
from murmurlm.signal.descriptors import descriptor_vector
from murmurlm.signal.heartbeat import pcg_heartbeat

log = logging.getLogger(__name__)

C_GRID = (0.03, 0.1, 0.3, 1.0)
TRANSPLANT_FEATURES = ("Systolic murmur timing", "Systolic murmur shape", "Systolic murmur quality")
"""The features with rare classes (Mid-/Late-systolic, Crescendo, Musical) that transplants feed."""


def recording_segments(rec, method: str = "mamba", cache: Path | None = None):
    """The segmenter's states for a recording (``method``: the packaged mamba or springer),
    kept as ``cache/<name>.tsv`` when a cache folder is given."""
    path = None if cache is None else Path(cache) / f"{rec.name}.tsv"
    if path is not None and path.exists():
        return read_tsv(path)[0]
    from murmurlm.signal.segment import pcg_segment
    from murmurlm.signal.segment.io import write_tsv

    seg = pcg_segment(rec.load_audio(), rec.sampling_rate, method=method)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tsv(path, seg.segments)
    return seg.segments


def recording_descriptors(recordings: Sequence, method: str = "mamba", cache: Path | None = None,
                          progress: bool = True, on_error: Callable | None = None,
                          quality: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Recording name -> descriptor vector of its average heartbeat (cycles from the packaged
    segmenter). A recording that cannot be read or segmented is passed to ``on_error(rec, err)``
    (default: logged) and left out. ``quality``: a dict filled with each recording's quality flag
    (:func:`murmurlm.signal.quality.pcg_quality` on the same segmentation)."""
    from tqdm.auto import tqdm

    from murmurlm.signal.quality import pcg_quality

    out = {}
    for rec in tqdm(recordings, desc="heartbeats", unit="rec", disable=not progress):
        try:
            wave = rec.load_audio()
            segments = recording_segments(rec, method, cache)
            beat = pcg_heartbeat(wave, rec.sampling_rate, segments)
            if quality is not None:
                quality[rec.name] = pcg_quality(wave, rec.sampling_rate, segments, heartbeat=beat)["flag"]
        except Exception as err:  # one bad file must not stop the others
            if on_error is None:
                log.warning("%s: no descriptors: %s", rec.audio_path, err)
            else:
                on_error(rec, err)
            continue
        out[rec.name] = descriptor_vector(beat).astype(np.float64)
    return out


def patient_matrix(patients, descriptors: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """One row per patient: the mean descriptor vector of its recordings that have one, weighted by
    ``weights`` (recording name -> weight; a patient whose weights are all 0 gets the plain mean)."""
    rows = []
    for p in patients:
        recs = [r for r in p.recordings if r.name in descriptors]
        x = np.stack([descriptors[r.name] for r in recs])
        w = np.array([1.0 if weights is None else weights.get(r.name, 0.0) for r in recs])
        rows.append((w @ x) / w.sum() if w.sum() > 0 else x.mean(axis=0))
    return np.stack(rows)


def choose_regularisation(x: np.ndarray, y: np.ndarray, seed: int = 0, grid: Sequence[float] = C_GRID) -> float:
    """The ``C`` of a standardised class-balanced logistic regression with the best macro-F1 in an
    inner stratified CV on ``(x, y)`` only (at most 5 folds; 0.1 when a class is too small)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = pd.Series(y).value_counts()
    folds = int(min(5, counts.min())) if len(counts) > 1 else 0
    if folds < 2:
        return 0.1
    scores = {}
    for c in grid:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))
        pred = cross_val_predict(model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
        scores[c] = f1_score(y, pred, average="macro")
    return max(scores, key=scores.get)


def transplant_rows(donors: Sequence, murmur_patients: Sequence, per_class: int, seed: int = 0,
                    method: str = "mamba", cache: Path | None = None,
                    variation: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Synthetic training rows: for each of :data:`TRANSPLANT_FEATURES` and each of its classes,
    ``per_class`` murmurs of that class (the other four attributes copied from a random real murmur
    patient) laid by :func:`murmurlm.signal.synth.transplant_murmur` into a random murmur-free
    recording of ``donors``, described like a real one. Returns feature -> (rows, labels).
    ``variation``: each murmur drawn from its class's range, not its prototype
    (:func:`~murmurlm.signal.synth.transplant_murmur`)."""
    from murmurlm.signal.synth import MurmurSpec, transplant_murmur

    rng = np.random.default_rng(seed)
    attrs = ("timing", "shape", "grade", "pitch", "quality")
    out = {}
    for feature in TRANSPLANT_FEATURES:
        which = attrs[[g.name for g in L.SYSTOLIC].index(feature)]
        rows, labels = [], []
        for cls in L.feature(feature).present_classes:
            for _ in range(per_class):
                real = murmur_patients[rng.integers(len(murmur_patients))].labels
                spec = MurmurSpec("systolic", **({a: real[g.name] for a, g in zip(attrs, L.SYSTOLIC)} | {which: cls}))
                rec = donors[rng.integers(len(donors))]
                segments = recording_segments(rec, method, cache)
                wave = transplant_murmur(rec.load_audio(), rec.sampling_rate, segments, spec,
                                         seed=int(rng.integers(1 << 30)), variation=variation)
                rows.append(descriptor_vector(pcg_heartbeat(wave, rec.sampling_rate, segments)))
                labels.append(cls)
        out[feature] = (np.stack(rows), np.array(labels))
    return out


def diastolic_rows(murmur_patients: Sequence, descriptors: dict[str, np.ndarray], transplants: int, seed: int = 0,
                   method: str = "mamba", cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training rows of the diastolic detector: every systolic-murmur patient (its mean descriptor
    row, labelled whether it also has a diastolic murmur), plus ``transplants`` diastolic murmurs of
    random classes laid into recordings of those without one. Real diastolic murmurs come with a
    systolic one (all 4 of circor-dev's), so the backgrounds are systolic-murmur recordings.
    Returns (rows, has a diastolic murmur)."""
    from murmurlm.signal.synth import MurmurSpec, transplant_murmur

    rng = np.random.default_rng(seed)
    patients = [p for p in murmur_patients if any(r.name in descriptors for r in p.recordings)]
    x = patient_matrix(patients, descriptors)
    y = np.array([p.has_murmur("diastolic") for p in patients])
    donors = [r for p in patients if not p.has_murmur("diastolic") for r in p.recordings]
    rows = []
    for _ in range(transplants if donors else 0):
        spec = MurmurSpec("diastolic", **{a: str(rng.choice(g.present_classes)) for a, g in
                                          zip(("timing", "shape", "grade", "pitch", "quality"), L.DIASTOLIC)})
        rec = donors[rng.integers(len(donors))]
        segments = recording_segments(rec, method, cache)
        wave = transplant_murmur(rec.load_audio(), rec.sampling_rate, segments, spec, seed=int(rng.integers(1 << 30)))
        rows.append(descriptor_vector(pcg_heartbeat(wave, rec.sampling_rate, segments)))
    if rows:
        x, y = np.concatenate([x, np.stack(rows)]), np.concatenate([y, np.ones(len(rows), dtype=bool)])
    return x, y
