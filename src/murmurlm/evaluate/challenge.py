"""The George B. Moody PhysioNet Challenge 2022 output format: one file per patient.

Every entry of the Challenge is scored by its official evaluation code from a folder of per-patient
output files, ``<patient id>.csv``, each four lines (written here from the format's published
description):

1. ``#<patient id>``
2. the classes, comma-separated: the murmur classes, then the outcome classes
   (:data:`CHALLENGE_CLASSES`: ``Present,Unknown,Absent,Abnormal,Normal``);
3. the binary labels in that order: exactly one 1 among the murmur classes and one among the outcome
   classes;
4. the probabilities in that order.

:func:`write_challenge_outputs` writes a predictions frame (:mod:`murmurlm.evaluate.predictions`:
labels and ``P(feature=class)`` columns of Murmur and Outcome) as such a folder;
:func:`read_challenge_output` reads one file back, with errors naming the file and the line.

Examples
--------
>>> text = challenge_text("50782", {"Present": 0.7, "Unknown": 0.2, "Absent": 0.1}, "Present",
...                       {"Abnormal": 0.6, "Normal": 0.4}, "Abnormal")
>>> print(text, end="")
#50782
Present,Unknown,Absent,Abnormal,Normal
1,0,0,1,0
0.7,0.2,0.1,0.6,0.4
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from murmurlm.data import labels as L
from murmurlm.errors import DataFormatError

MURMUR_CLASSES = ("Present", "Unknown", "Absent")
OUTCOME_CLASSES = ("Abnormal", "Normal")
CHALLENGE_CLASSES = (*MURMUR_CLASSES, *OUTCOME_CLASSES)
"""The classes of an output file, in the Challenge's order."""


@dataclass(frozen=True)
class ChallengeOutput:
    """One patient's output file, read back."""

    patient_id: str
    classes: tuple[str, ...]
    labels: tuple[int, ...]
    probabilities: tuple[float, ...]

    def label(self, group: tuple[str, ...]) -> str:
        """The class labelled 1 among ``group`` (:data:`MURMUR_CLASSES` or :data:`OUTCOME_CLASSES`)."""
        return next(c for c, v in zip(self.classes, self.labels) if c in group and v == 1)

    def probability(self, cls: str) -> float:
        return self.probabilities[self.classes.index(cls)]


def _number(p: float) -> str:
    return repr(round(float(p), 6)).removesuffix(".0") if float(p) not in (0.0, 1.0) else str(int(p))


def challenge_text(patient_id: str, murmur: Mapping[str, float], murmur_label: str,
                   outcome: Mapping[str, float], outcome_label: str) -> str:
    """The four lines of one patient's output file."""
    if murmur_label not in MURMUR_CLASSES or outcome_label not in OUTCOME_CLASSES:
        raise ValueError(f"labels must be one of {MURMUR_CLASSES} and one of {OUTCOME_CLASSES}, "
                         f"got {murmur_label!r}, {outcome_label!r}")
    probs = [murmur[c] for c in MURMUR_CLASSES] + [outcome[c] for c in OUTCOME_CLASSES]
    labels = [int(c == murmur_label) for c in MURMUR_CLASSES] + [int(c == outcome_label) for c in OUTCOME_CLASSES]
    return "\n".join([f"#{patient_id}", ",".join(CHALLENGE_CLASSES), ",".join(map(str, labels)),
                      ",".join(_number(p) for p in probs)]) + "\n"


def write_challenge_outputs(frame: pd.DataFrame, folder: str | Path) -> list[Path]:
    """One ``<patient id>.csv`` per row of a predictions frame (index: patient ids) in ``folder``
    (created). Needs the Murmur and Outcome labels and their probability columns; a model without
    an Outcome head cannot fill the format (a ``ValueError`` says so)."""
    from murmurlm.evaluate.predictions import prob_column

    needed = [prob_column(L.MURMUR.name, c) for c in MURMUR_CLASSES] + [prob_column(L.OUTCOME.name, c)
                                                                        for c in OUTCOME_CLASSES]
    missing = [c for c in [L.MURMUR.name, L.OUTCOME.name, *needed] if c not in frame.columns]
    if missing:
        raise ValueError(f"the Challenge format needs Murmur and Outcome with probabilities; missing: {', '.join(missing)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for pid, row in frame.iterrows():
        murmur = {c: float(row[prob_column(L.MURMUR.name, c)]) for c in MURMUR_CLASSES}
        outcome = {c: float(row[prob_column(L.OUTCOME.name, c)]) for c in OUTCOME_CLASSES}
        path = folder / f"{pid}.csv"
        path.write_text(challenge_text(str(pid), murmur, str(row[L.MURMUR.name]), outcome, str(row[L.OUTCOME.name])))
        written.append(path)
    return written


def read_challenge_output(path: str | Path) -> ChallengeOutput:
    """Read one output file back (errors name the file and line)."""
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"cannot read: {err}") from None
    if len(lines) < 4:
        raise DataFormatError(path, f"needs 4 lines (#id, classes, labels, probabilities), has {len(lines)}")
    if not lines[0].startswith("#") or not lines[0][1:].strip():
        raise DataFormatError(path, f"first line must be '#<patient id>', got {lines[0]!r}", 1)
    classes = tuple(c.strip() for c in lines[1].split(","))
    if set(classes) != set(CHALLENGE_CLASSES) or len(classes) != len(CHALLENGE_CLASSES):
        raise DataFormatError(path, f"classes must be {','.join(CHALLENGE_CLASSES)} in some order, got {lines[1]!r}", 2)
    try:
        labels = tuple(int(v) for v in lines[2].split(","))
    except ValueError:
        raise DataFormatError(path, f"labels must be 0 or 1, got {lines[2]!r}", 3) from None
    try:
        probs = tuple(float(v) for v in lines[3].split(","))
    except ValueError:
        raise DataFormatError(path, f"probabilities must be numbers, got {lines[3]!r}", 4) from None
    if len(labels) != len(classes) or set(labels) - {0, 1}:
        raise DataFormatError(path, f"one 0/1 label per class expected, got {lines[2]!r}", 3)
    if len(probs) != len(classes) or not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs):
        raise DataFormatError(path, f"one probability in [0, 1] per class expected, got {lines[3]!r}", 4)
    out = ChallengeOutput(lines[0][1:].strip(), classes, labels, probs)
    for group in (MURMUR_CLASSES, OUTCOME_CLASSES):
        if sum(v for c, v in zip(classes, labels) if c in group) != 1:
            raise DataFormatError(path, f"exactly one label of {', '.join(group)} must be 1, got {lines[2]!r}", 3)
    return out


def challenge_probabilities(output: ChallengeOutput) -> dict[str, np.ndarray]:
    """Murmur and Outcome probabilities of a read file, in murmurlm's class order."""
    return {L.MURMUR.name: np.array([output.probability(c) for c in L.MURMUR.classes]),
            L.OUTCOME.name: np.array([output.probability(c) for c in L.OUTCOME.classes])}
