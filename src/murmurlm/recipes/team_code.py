"""murmurlm behind the PhysioNet Challenge 2022 model interface (a ``team_code.py``).

Every entry of the Challenge is trained and run by the Challenge's harness through three functions,
which this module provides (written from the interface's published description):

- ``train_challenge_model(data_folder, model_folder, verbose)``: train on a CirCor-layout folder and
  write the model into ``model_folder``;
- ``load_challenge_model(model_folder, verbose)``: load what training wrote;
- ``run_challenge_model(model, data, recordings, verbose)``: one patient — ``data`` the text of its
  ``<id>.txt`` header, ``recordings`` its recordings as arrays (in the header's order, at its
  sampling rate; integer PCM as the harness reads it, or float) — to ``(classes, labels,
  probabilities)`` over ``Present, Unknown, Absent, Abnormal, Normal``
  (:data:`murmurlm.evaluate.challenge.CHALLENGE_CLASSES`).

Training is the main job's (``murmurlm pipeline``) on every patient of the folder: the compact model
(``compact/default``, ``MEMBERS`` seeds combined into an ensemble, each with a stratified 15 % of the
patients for its validation log) and the descriptor head (when the folder has 10 or more
systolic-murmur patients). Use it from the Challenge's own ``team_code.py``::

    from murmurlm.recipes.team_code import train_challenge_model, load_challenge_model, run_challenge_model
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from murmurlm.data.circor import parse_patient_text
from murmurlm.errors import MurmurlmError
from murmurlm.evaluate.challenge import CHALLENGE_CLASSES, MURMUR_CLASSES, OUTCOME_CLASSES

log = logging.getLogger(__name__)

MEMBERS = 3
MODEL_FILE = "murmurlm-compact.pt"
HEAD_FILE = "descriptor-head.json"


def train_challenge_model(data_folder, model_folder, verbose: int = 1, overrides: Sequence[str] = (),
                          members: int = MEMBERS, descriptor_head: bool = True) -> None:
    """Train on every patient of ``data_folder``; write the model into ``model_folder``.
    ``overrides`` (``key=value`` of ``compact/default``), ``members`` and ``descriptor_head`` are
    murmurlm's own knobs (the harness passes only the first three arguments)."""
    from murmurlm.data.manifest import open_circor
    from murmurlm.data.splits import train_val_split
    from murmurlm.inference.predict import combine_models
    from murmurlm.recipes import load_recipe

    model_folder = Path(model_folder)
    model_folder.mkdir(parents=True, exist_ok=True)
    dataset = open_circor(data_folder)
    if not dataset.patients:
        raise MurmurlmError(f"{data_folder}: no readable patients to train on")
    recipe = load_recipe("train_compact")
    cfg = recipe.load_recipe_config("compact/default", list(overrides))
    train_ids, val_ids = train_val_split(dataset, 0.15, seed=cfg.seed)
    paths = []
    for i in range(members):
        member_cfg = dataclasses.replace(cfg, seed=cfg.seed + i)
        if verbose:
            log.info("training member %d of %d (seed %d)", i + 1, members, member_cfg.seed)
        recipe.train(member_cfg, dataset, model_folder / f"member{i}", train_ids=train_ids, val_ids=val_ids,
                     resume=True, progress=verbose >= 2)
        paths.append(model_folder / f"member{i}" / "best.pt")
    if len(paths) == 1:
        import shutil

        shutil.copyfile(paths[0], model_folder / MODEL_FILE)
    else:
        combine_models(paths, model_folder / MODEL_FILE)
    if descriptor_head:
        head_recipe = load_recipe("train_descriptor_head")
        try:
            head_recipe.train(head_recipe.load_recipe_config(None), dataset, model_folder / "descriptor-head",
                              progress=verbose >= 2)
            (model_folder / "descriptor-head" / HEAD_FILE).replace(model_folder / HEAD_FILE)
        except MurmurlmError as err:
            log.warning("no descriptor head: %s", err)


def load_challenge_model(model_folder, verbose: int = 1):
    """The trained model (a :class:`murmurlm.inference.predict.Predictor`, with its head when one was
    trained)."""
    from murmurlm.inference.predict import load_model

    model_folder = Path(model_folder)
    head = model_folder / HEAD_FILE
    predictor = load_model(model_folder / MODEL_FILE, descriptor_head=head if head.is_file() else None)
    if "Outcome" not in predictor.heads:
        raise MurmurlmError(f"{model_folder / MODEL_FILE}: the model has no Outcome head; the Challenge needs one")
    return predictor


def _as_float(recording: np.ndarray) -> np.ndarray:
    x = np.asarray(recording)
    if np.issubdtype(x.dtype, np.integer):  # PCM as scipy's wavfile reads it
        return (x.astype(np.float64) / float(np.iinfo(x.dtype).max + 1)).astype(np.float32)
    return x.astype(np.float32)


def run_challenge_model(model, data: str, recordings: Sequence[np.ndarray], verbose: int = 1):
    """One patient: ``(classes, labels, probabilities)`` in the Challenge's class order."""
    from murmurlm.inference.predict import recording_descriptor_vector

    header = parse_patient_text(data)
    if not recordings:
        raise MurmurlmError(f"patient {header.patient_id}: no recordings")
    rate = header.sampling_rate
    waves = [_as_float(r) for r in recordings]
    probs = [model.predict_waveform(w, rate) for w in waves]
    descriptors = None
    if model.descriptor_head is not None:
        descriptors = np.mean([recording_descriptor_vector(w, rate) for w in waves], axis=0)[None]
    prediction = model.aggregate(probs, descriptors)
    murmur = prediction.probabilities["Murmur"]
    outcome = prediction.probabilities["Outcome"]
    from murmurlm.data import labels as L

    probabilities = np.array([murmur[L.MURMUR.classes.index(c)] for c in MURMUR_CLASSES]
                             + [outcome[L.OUTCOME.classes.index(c)] for c in OUTCOME_CLASSES])
    labels = np.array([int(c == prediction.labels["Murmur"]) for c in MURMUR_CLASSES]
                      + [int(c == prediction.labels["Outcome"]) for c in OUTCOME_CLASSES])
    return list(CHALLENGE_CLASSES), labels, probabilities
