"""Recipe: fit the descriptor head (the systolic murmur's character from the average heartbeat).

Run::

    python -m murmurlm.recipes.train_descriptor_head --data $MURMURLM_CIRCOR --out runs/descriptor-head

Setup: the patients with a systolic murmur (of ``--split``'s train + test when given, else all),
the descriptors of every recording of theirs (cycles from the packaged segmenter, cached as
``.tsv`` in ``RUN_DIR/segments``), one row per patient (the mean over its recordings). Long tail:
``transplants_per_class`` murmur transplants per class of timing, shape and quality, laid into
murmur-free recordings of the same patients' pool. Fit: per feature, ``C`` by inner 5-fold CV on
the real rows, then one class-balanced logistic regression on real + transplanted rows
(:func:`murmurlm.models.descriptor_head.fit_descriptor_head`). Writes
``RUN_DIR/descriptor-head.json`` (what ``murmurlm predict --descriptor-head`` reads) and the resolved
config. The 5-fold CV of the same procedure: ``benchmarks/characterization_cv.py``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from murmurlm.config import config_to_dict, load_config, save_config
from murmurlm.data import labels as L
from murmurlm.data.manifest import open_circor
from murmurlm.errors import ConfigError, MurmurlmError
from murmurlm.models.descriptor_head import fit_descriptor_head
from murmurlm.recipes import recipe_main, resolve_config
from murmurlm.signal.descriptors import DESCRIPTOR_NAMES
from murmurlm.train.descriptors import (choose_regularisation, diastolic_rows, patient_matrix, recording_descriptors,
                                        transplant_rows)

log = logging.getLogger("murmurlm.recipes.train_descriptor_head")


@dataclass
class TrainConfig:
    seed: int = 0
    segmenter: str = "mamba"          # the packaged segmenter whose cycles are described: mamba | springer
    transplants_per_class: int = 15   # murmur transplants per class of timing, shape, quality; 0: none
    transplant_variation: bool = False  # draw each transplant from its class's range, not its prototype
    ordinal_grading: bool = False     # grade I < II < III as a cumulative-logit regression (lost in CV: docs/characterization.md)
    diastolic_transplants: int = 60   # >0: a diastolic detector, fitted with this many diastolic transplants; 0: none
    weight: float = 0.5               # the head's share when blended with the CNN at prediction

    def __post_init__(self) -> None:
        if self.segmenter not in ("mamba", "springer"):
            raise ValueError(f"segmenter must be mamba or springer, got {self.segmenter!r}")
        if self.transplants_per_class < 0:
            raise ValueError(f"transplants_per_class must be >= 0, got {self.transplants_per_class}")
        if self.diastolic_transplants < 0:
            raise ValueError(f"diastolic_transplants must be >= 0, got {self.diastolic_transplants}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be within [0, 1], got {self.weight}")


def load_recipe_config(path=None, overrides=()) -> TrainConfig:
    return load_config(TrainConfig, resolve_config(path), list(overrides))


def run(cfg: TrainConfig, *, data, out, split=None, resume: bool = False, progress: bool = True) -> dict:
    """The recipes' one entry. ``split``: train on its train + test patients (as the packaged
    default, whose held-out figures come from the CV benchmark). Fitting takes seconds; ``resume``
    reuses the cached segmentations, nothing else."""
    dataset = open_circor(data)
    patient_ids = None
    if split is not None:
        from murmurlm.data.splits import read_split

        chosen = read_split(split)
        patient_ids = [*chosen.train, *chosen.test]
    _, summary = train(cfg, dataset, out, patient_ids=patient_ids, progress=progress)
    return summary


def train(cfg: TrainConfig, dataset, out, patient_ids=None, progress: bool = True):
    """Fit the head on ``patient_ids`` of ``dataset`` (None: every patient) and write it to
    ``out/descriptor-head.json``; returns ``(head, summary)``. What :func:`run` and ``murmurlm
    pipeline`` (on its split's training patients) call. Raises :class:`MurmurlmError` when fewer
    than 10 of those patients have a systolic murmur."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.process_time()
    patients = dataset.patients
    if patient_ids is not None:
        keep = set(patient_ids)
        patients = [p for p in patients if p.patient_id in keep]
    murmur = [p for p in patients if p.has_murmur("systolic")]
    donors = [r for p in patients if p.labels[L.MURMUR.name] == "Absent" for r in p.recordings]
    if len(murmur) < 10:
        raise MurmurlmError(f"{dataset.root}: {len(murmur)} patient(s) with a systolic murmur; the head needs 10 or more")
    cache = out / "segments"
    vectors = recording_descriptors([r for p in murmur for r in p.recordings], cfg.segmenter, cache, progress)
    murmur = [p for p in murmur if any(r.name in vectors for r in p.recordings)]
    x = patient_matrix(murmur, vectors)
    labels = {f.name: np.array([p.labels[f.name] for p in murmur]) for f in L.SYSTOLIC}
    c = {f.name: choose_regularisation(x, labels[f.name], cfg.seed) for f in L.SYSTOLIC}
    extra = None
    if cfg.transplants_per_class:
        if not donors:
            raise ConfigError("transplants need murmur-free (Murmur Absent) recordings; set transplants_per_class=0")
        extra = transplant_rows(donors, murmur, cfg.transplants_per_class, cfg.seed, cfg.segmenter, cache,
                                variation=cfg.transplant_variation)
    diastolic = None
    if cfg.diastolic_transplants:
        diastolic = diastolic_rows(murmur, vectors, cfg.diastolic_transplants, cfg.seed, cfg.segmenter, cache)
    ordinal = ("Systolic murmur grading",) if cfg.ordinal_grading else ()
    head = fit_descriptor_head(x, labels, DESCRIPTOR_NAMES, c=c, extra=extra, ordinal=ordinal, diastolic=diastolic)
    head.meta = {"patients": len(murmur), "recordings": len(vectors), "c": c, "weight": cfg.weight,
                 "segmenter": cfg.segmenter, "transplants_per_class": cfg.transplants_per_class,
                 "diastolic_patients": int(sum(p.has_murmur("diastolic") for p in murmur)),
                 "config": config_to_dict(cfg)}
    save_head(head, out / "descriptor-head.json")
    save_config(cfg, out / "config.yaml")
    summary = {"head": str(out / "descriptor-head.json"), "patients": len(murmur), "recordings": len(vectors),
               "c": c, "cpu_seconds": round(time.process_time() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("descriptor head on %d murmur patients (%d recordings): %s", len(murmur), len(vectors), out)
    return head, summary


def save_head(head, path: Path) -> None:
    """The head as JSON (plain lists: no pickle, readable anywhere), written atomically."""
    state = head.state()
    for reg in state["regressions"].values():
        for key in ("mean", "scale", "coef", "intercept"):
            reg[key] = np.asarray(reg[key]).tolist()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state) + "\n")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    return recipe_main(sys.modules[__name__], argv, "", "runs/descriptor-head")


if __name__ == "__main__":
    raise SystemExit(main())
