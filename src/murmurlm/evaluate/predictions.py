"""The predictions file: one model-agnostic CSV that every murmurlm model writes and
``murmurlm evaluate`` reads.

Format
------
- UTF-8 CSV with a header row and one row per patient.
- ``Patient ID``: CirCor's patient id (read as text).
- One column per feature, named exactly as in CirCor's ``training_data.csv`` (``Murmur``,
  ``Systolic murmur timing``, ... ``Diastolic murmur quality``; all 11 are required), holding
  CirCor's own class strings; ``nan`` (or an empty cell) means "no such murmur".
- Optional ``Outcome`` column (``Abnormal`` / ``Normal``), needed for the challenge outcome cost.
- Optional ``Murmur locations`` (CirCor's ``+``-joined sites, e.g. ``AV+MV``, or ``nan``) and
  ``Most audible location`` (a site or ``nan``) columns: where the murmur is heard.
- Optional probability columns named ``P(<feature>=<class>)``, e.g. ``P(Murmur=Present)``, values
  in [0, 1]. When a feature has any probability column it must have one for each of its classes.
- Any other column is ignored (with a log message); an unknown ``P(...)`` column is an error.

Example::

    Patient ID,Murmur,Systolic murmur timing,...,Diastolic murmur quality,Outcome,P(Murmur=Present),P(Murmur=Unknown),P(Murmur=Absent)
    2530,Absent,nan,...,nan,Normal,0.1,0.05,0.85
    9979,Present,Holosystolic,...,nan,Abnormal,0.7,0.1,0.2

Every problem (a missing column, a duplicated patient row, an unknown label string, a
probability outside [0, 1], a missing patient) raises :class:`~murmurlm.errors.DataFormatError`
naming the file and, where one applies, the line.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from murmurlm.data.labels import FEATURE_NAMES
>>> from murmurlm.evaluate.aggregate import PatientPrediction
>>> labels = {name: "nan" for name in FEATURE_NAMES}
>>> labels["Murmur"] = "Absent"
>>> frame = predictions_frame({"2530": PatientPrediction(labels, {"Murmur": np.array([0.1, 0.2, 0.7])})})
>>> path = pathlib.Path(tempfile.mkdtemp()) / "pred.csv"
>>> write_predictions(frame, path)
>>> back = read_predictions(path)
>>> back.loc["2530", "Murmur"], float(back.loc["2530", "P(Murmur=Absent)"])
('Absent', 0.7)
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from murmurlm.data import labels as L
from murmurlm.errors import DataFormatError
from murmurlm.evaluate.aggregate import PatientPrediction

log = logging.getLogger(__name__)

PATIENT_ID = "Patient ID"
PROB_COLUMN = "P({feature}={cls})"
"""Name of an optional probability column: ``PROB_COLUMN.format(feature=..., cls=...)``."""
LOCATION_COLUMNS: tuple[str, ...] = (L.MURMUR_LOCATIONS_NAME, L.MOST_AUDIBLE_LOCATION.name)
"""Where the murmur is heard: the sites (multi-label, no probability columns) and the loudest one."""
LABEL_COLUMNS: tuple[str, ...] = (*L.FEATURE_NAMES, L.OUTCOME.name, *LOCATION_COLUMNS)
"""Label columns in file order: the 11 features (required), then Outcome and the locations (optional)."""
OPTIONAL_COLUMNS: tuple[str, ...] = (L.OUTCOME.name, *LOCATION_COLUMNS)


def _has_classes(name: str) -> bool:
    """Whether a label column has a class list (and so may have probability columns)."""
    return name != L.MURMUR_LOCATIONS_NAME


def normalise_label(name: str, value: object) -> str:
    """A label cell in its canonical form (CirCor's strings; locations in schema order, ``+``-joined).

    >>> normalise_label("Murmur locations", "TV+AV"), normalise_label("Murmur locations", "")
    ('AV+TV', 'nan')
    """
    if name == L.MURMUR_LOCATIONS_NAME:
        sites = set(L.parse_locations(value))
        return "+".join(loc for loc in L.LOCATIONS if loc in sites) or L.NO_MURMUR
    return L.feature(name).normalise(value)
_PROB_RE = re.compile(r"^P\((?P<feature>[^=]+)=(?P<cls>.+)\)$")


def prob_column(feature: str, cls: str) -> str:
    """``prob_column("Murmur", "Present") == "P(Murmur=Present)"``."""
    return PROB_COLUMN.format(feature=feature, cls=cls)


def prob_columns(feature: str) -> list[str]:
    """The probability columns of one feature, in its class order."""
    return [prob_column(feature, c) for c in L.feature(feature).classes]


def probability_matrix(frame: pd.DataFrame, feature: str) -> np.ndarray | None:
    """The (patients, classes) probabilities of ``feature`` in a predictions frame, or None."""
    cols = prob_columns(feature)
    if not all(c in frame.columns for c in cols):
        return None
    return frame[cols].to_numpy(dtype=np.float64)


def _ordered_columns(columns: Iterable[str]) -> list[str]:
    present = set(columns)
    order = [c for c in LABEL_COLUMNS if c in present]
    for name in LABEL_COLUMNS:
        if _has_classes(name):
            order += [c for c in prob_columns(name) if c in present]
    return order


def _prob_feature(path: Path, column: str) -> str:
    """Check a ``P(feature=class)`` column name; returns the feature."""
    m = _PROB_RE.match(column)
    if not m:
        raise DataFormatError(path, f"column {column!r} looks like a probability column but is not "
                              f"'P(<feature>=<class>)'", 1)
    feat, cls = m.group("feature"), m.group("cls")
    if feat not in LABEL_COLUMNS or not _has_classes(feat):
        raise DataFormatError(path, f"probability column {column!r}: unknown feature {feat!r}; "
                              f"valid: {', '.join(LABEL_COLUMNS)}", 1)
    if cls not in L.feature(feat).classes:
        raise DataFormatError(path, f"probability column {column!r}: unknown class {cls!r} of {feat!r}; "
                              f"valid: {', '.join(L.feature(feat).classes)}", 1)
    return feat


def _parse(path: Path, text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataFormatError(path, "empty predictions file (no header row)") from None
    if PATIENT_ID not in header:
        raise DataFormatError(path, f"no {PATIENT_ID!r} column in the header", 1)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataFormatError(path, f"duplicated column(s): {', '.join(dupes)}", 1)
    missing = [name for name in L.FEATURE_NAMES if name not in header]
    if missing:
        raise DataFormatError(path, f"missing column(s): {', '.join(missing)}", 1)
    prob_cols = [h for h in header if h.startswith("P(")]
    by_feature: dict[str, list[str]] = {}
    for col in prob_cols:
        by_feature.setdefault(_prob_feature(path, col), []).append(col)
    for feat, cols in by_feature.items():
        lacking = [c for c in prob_columns(feat) if c not in cols]
        if lacking:
            raise DataFormatError(path, f"probability columns of {feat!r} incomplete: missing {', '.join(lacking)}", 1)
    label_cols = [c for c in LABEL_COLUMNS if c in header]
    ignored = [h for h in header if h not in (PATIENT_ID, *label_cols, *prob_cols)]
    if ignored:
        log.info("%s: ignoring column(s) %s", path, ", ".join(ignored))
    index = {h: i for i, h in enumerate(header)}

    ids: list[str] = []
    seen: dict[str, int] = {}
    labels: dict[str, list[str]] = {c: [] for c in label_cols}
    probs: dict[str, list[float]] = {c: [] for c in prob_cols}
    for row in reader:
        lineno = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(path, f"{len(row)} fields, the header has {len(header)}", lineno)
        pid = row[index[PATIENT_ID]].strip()
        if not pid:
            raise DataFormatError(path, "empty Patient ID", lineno)
        if pid in seen:
            raise DataFormatError(path, f"patient {pid} appears twice (first on line {seen[pid]})", lineno)
        seen[pid] = lineno
        ids.append(pid)
        for col in label_cols:
            try:
                labels[col].append(normalise_label(col, row[index[col]]))
            except L.LabelError as err:
                raise DataFormatError(path, f"patient {pid}: {err}", lineno) from None
        for col in prob_cols:
            cell = row[index[col]].strip()
            try:
                value = float(cell)
            except ValueError:
                raise DataFormatError(path, f"patient {pid}: {col} = {cell!r} is not a number", lineno) from None
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise DataFormatError(path, f"patient {pid}: {col} = {cell} is not a probability in [0, 1]", lineno)
            probs[col].append(value)
    if not ids:
        raise DataFormatError(path, "no patient rows")
    frame = pd.DataFrame({**labels, **probs}, index=pd.Index(ids, name=PATIENT_ID, dtype=object))
    frame = frame[_ordered_columns(frame.columns)]
    frame.attrs["source"] = str(path)
    frame.attrs["lines"] = seen
    return frame


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read and validate a predictions CSV.

    Returns a DataFrame indexed by ``Patient ID`` (str) with the 11 feature columns (class strings),
    ``Outcome`` when present, and the probability columns (float) when present, in schema order.
    ``frame.attrs["source"]`` holds the path, ``frame.attrs["lines"]`` each patient's line number.

    Raises
    ------
    DataFormatError
        File missing or unreadable, missing column, duplicated patient row, unknown label string,
        malformed or incomplete probability columns, probability outside [0, 1].
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataFormatError(path, "predictions file not found") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise DataFormatError(path, f"cannot read: {err.strerror or err}") from None
    return _parse(path, text)


def write_predictions(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a predictions frame (as :func:`read_predictions` returns or :func:`predictions_frame`
    builds) to CSV. The frame is validated first (the same checks as reading); probabilities are
    written with 6 significant digits."""
    path = Path(path)
    frame = frame.copy()
    if frame.index.name != PATIENT_ID:
        if PATIENT_ID in frame.columns:
            frame = frame.set_index(PATIENT_ID)
        else:
            raise ValueError(f"write_predictions: frame needs a {PATIENT_ID!r} index or column")
    unknown = [c for c in frame.columns if c not in LABEL_COLUMNS and not str(c).startswith("P(")]
    if unknown:
        raise ValueError(f"write_predictions: unknown column(s) {unknown}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = _ordered_columns(frame.columns)
    extra = [c for c in frame.columns if c not in columns]
    if extra:  # malformed P(...) names: let the parser name them
        columns += extra
    writer.writerow([PATIENT_ID, *columns])
    for pid, row in frame[columns].iterrows():
        cells = [str(pid)]
        for col in columns:
            value = row[col]
            if col in LABEL_COLUMNS:
                cells.append(str(value))
            else:
                cells.append(format(float(value), ".6g"))
        writer.writerow(cells)
    text = out.getvalue()
    _parse(path, text)  # validate before writing: raises DataFormatError naming the row
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def predictions_frame(patients: Mapping[str, PatientPrediction]) -> pd.DataFrame:
    """Build a predictions frame from patient predictions (e.g. from
    :func:`~murmurlm.evaluate.aggregate.aggregate_patient`).

    Label columns: the 11 features (required in every prediction), plus ``Outcome`` when every
    patient has one. Probability columns for each feature whose probabilities every patient has.
    A feature (or Outcome) given for some patients but not others is a ValueError.
    """
    if not patients:
        raise ValueError("predictions_frame: no patients")
    ids = [str(pid) for pid in patients]
    preds = list(patients.values())
    data: dict[str, list] = {}
    for name in LABEL_COLUMNS:
        have = [name in p.labels for p in preds]
        if not any(have):
            if name not in OPTIONAL_COLUMNS:
                raise ValueError(f"predictions_frame: no patient has a {name!r} label")
            continue
        if not all(have):
            lacking = [pid for pid, h in zip(ids, have) if not h][:5]
            raise ValueError(f"predictions_frame: {name!r} missing for patient(s) {', '.join(lacking)}")
        data[name] = [normalise_label(name, p.labels[name]) for p in preds]
    for name in (n for n in LABEL_COLUMNS if _has_classes(n)):
        have = [name in p.probabilities for p in preds]
        if not any(have):
            continue
        if not all(have):
            lacking = [pid for pid, h in zip(ids, have) if not h][:5]
            raise ValueError(f"predictions_frame: probabilities of {name!r} missing for patient(s) {', '.join(lacking)}")
        feat = L.feature(name)
        mat = np.stack([np.asarray(p.probabilities[name], dtype=np.float64).reshape(-1) for p in preds])
        if mat.shape[1] != feat.num_classes:
            raise ValueError(f"predictions_frame: {name!r} probabilities have {mat.shape[1]} classes, "
                             f"expected {feat.num_classes} ({', '.join(feat.classes)})")
        for j, cls in enumerate(feat.classes):
            data[prob_column(name, cls)] = mat[:, j]
    frame = pd.DataFrame(data, index=pd.Index(ids, name=PATIENT_ID, dtype=object))
    if frame.index.duplicated().any():
        raise ValueError(f"predictions_frame: duplicated patient id(s) {sorted(set(frame.index[frame.index.duplicated()]))}")
    return frame[_ordered_columns(frame.columns)]


def select_patients(frame: pd.DataFrame, patient_ids: Iterable[str], known_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """The rows of ``patient_ids`` (in that order). A listed patient without a row is a
    DataFormatError naming the predictions file. Rows of patients not in ``known_ids`` (the
    dataset's patients, when given) are an error too; rows of known patients that are not listed
    are dropped (logged)."""
    source = Path(frame.attrs.get("source", "<predictions>"))
    wanted = [str(p) for p in patient_ids]
    missing = [pid for pid in wanted if pid not in frame.index]
    if missing:
        raise DataFormatError(source, f"no prediction for {len(missing)} patient(s): "
                              f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    wanted_set = set(wanted)
    extra = [pid for pid in frame.index if pid not in wanted_set]
    if known_ids is not None:
        known = set(map(str, known_ids))
        strangers = [pid for pid in extra if pid not in known]
        if strangers:
            lines = frame.attrs.get("lines", {})
            first = strangers[0]
            raise DataFormatError(source, f"{len(strangers)} patient(s) not in the dataset: "
                                  f"{', '.join(strangers[:10])}{' ...' if len(strangers) > 10 else ''}",
                                  lines.get(first))
    if extra:
        log.info("%s: %d row(s) of patients outside the evaluated set ignored", source, len(extra))
    out = frame.loc[wanted]
    out.attrs = dict(frame.attrs)
    return out
