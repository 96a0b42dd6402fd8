"""Reader for the CirCor DigiScope 1.0.3 dataset in its official layout.

Layout (PhysioNet, ``circor-heart-sound/1.0.3``)::

    training_data.csv                 one row per patient, the labels
    training_data/<id>.txt            patient header: '<id> <n> <fs>', one line per recording, '#Key: value' lines
    training_data/<id>_<loc>[_n].wav  audio, 4 kHz 16-bit mono (.flac accepted in its place)
    training_data/<id>_<loc>[_n].hea  WFDB header (CRLF line endings)
    training_data/<id>_<loc>[_n].tsv  segmentation: start s, end s, state (0 unannotated, 1 S1, 2 systole, 3 S2, 4 diastole)

Records are small dataclasses; audio is read lazily by :meth:`Recording.load_audio`. Parsers raise
:class:`~murmurlm.errors.DataFormatError` (or :class:`~murmurlm.errors.AudioError`) naming the file
and line. Quirks of the real files that are not errors (a ``.tsv`` row with an undocumented state
such as ``50782_MV_1.tsv``'s 28) are kept as :class:`Problem` entries instead of being dropped.

Dataset: J. Oliveira et al., "The CirCor DigiScope Dataset: From Murmur Detection to Murmur
Classification", IEEE JBHI 26(6), 2022; PhysioNet. Licence ODC-By 1.0.

Examples
--------
>>> import tempfile, pathlib
>>> from murmurlm.signal.synth import write_synthetic_circor
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_synthetic_circor(root, num_patients=2, seed=0)
>>> data = load_circor(root)
>>> len(data.patients) == 2
True
>>> rec = data.patients[0].recordings[0]
>>> rec.load_audio().dtype.name, rec.sampling_rate
('float32', 4000)
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from murmurlm.data import labels as L
from murmurlm.data.audio import decode_audio
from murmurlm.errors import AudioError, DataFormatError

log = logging.getLogger(__name__)

STATES = {0: "unannotated", 1: "S1", 2: "systole", 3: "S2", 4: "diastole"}
"""Segmentation states of CirCor's ``.tsv`` files."""

AUDIO_SUFFIXES = (".wav", ".flac")
_RECORDING_NAME = re.compile(r"^(?P<pid>\d+)_(?P<loc>[A-Za-z]+)(?:_(?P<n>\d+))?$")
# Patient-level fields in the .txt header (and columns of training_data.csv) that are metadata.
METADATA_FIELDS = ("Age", "Sex", "Height", "Weight", "Pregnancy status", "Campaign", "Additional ID")


@dataclass(frozen=True)
class Problem:
    """Something found in a file that is not fatal but must not pass unnoticed."""

    path: Path
    message: str
    line: int | None = None
    severity: str = "warning"  # "warning" (kept, reported) or "error" (the item is unusable)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{self.severity}: {where}: {self.message}"


@dataclass(frozen=True)
class Segment:
    """One stretch of a segmentation: ``start`` and ``end`` in seconds, ``state`` in STATES."""

    start: float
    end: float
    state: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Header:
    """The parts of a WFDB ``.hea`` file murmurlm uses."""

    record_name: str
    num_signals: int
    sampling_rate: int
    num_samples: int | None
    file_name: str | None = None
    location: str | None = None


@dataclass
class Recording:
    """One auscultation recording of one patient. Audio and segmentation load lazily."""

    patient_id: str
    location: str  # AV, PV, TV, MV or Phc
    name: str  # e.g. '50782_MV_1'
    audio_path: Path
    sampling_rate: int
    header_path: Path | None = None
    segmentation_path: Path | None = None
    num_samples: int | None = None  # from the .hea, when present
    custom: dict = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Duration in seconds from the header (None when unknown without reading the audio)."""
        return None if self.num_samples is None else self.num_samples / self.sampling_rate

    def load_audio(self) -> np.ndarray:
        """The waveform as float32 in [-1, 1], checked against the header."""
        return read_audio(self.audio_path, expected_rate=self.sampling_rate,
                          expected_samples=self.num_samples)

    def load_segments(self) -> list[Segment]:
        """The ``.tsv`` segmentation (empty when the recording has none). Rows with an unknown
        state are kept as state 0 (unannotated) and logged; see :func:`read_tsv`."""
        if self.segmentation_path is None:
            return []
        segments, problems = read_tsv(self.segmentation_path)
        for p in problems:
            log.warning("%s", p)
        return segments


@dataclass
class Patient:
    """One patient: labels (all 11 features plus auxiliaries, as class strings) and recordings."""

    patient_id: str
    recordings: list[Recording]
    labels: dict[str, str]
    murmur_locations: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    sampling_rate: int = 4000

    def has_murmur(self, murmur: str) -> bool:
        return L.has_murmur(self.labels, murmur)


@dataclass
class CirCorDataset:
    """A loaded dataset folder: the patients, and the problems met while reading it."""

    root: Path
    patients: list[Patient]
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.patients)

    def __iter__(self) -> Iterator[Patient]:
        return iter(self.patients)

    def by_id(self) -> dict[str, Patient]:
        return {p.patient_id: p for p in self.patients}

    def subset(self, patient_ids: Iterable[str]) -> "CirCorDataset":
        """The patients in ``patient_ids`` (in that order); an unknown id is an error."""
        index = self.by_id()
        wanted = list(patient_ids)
        missing = [pid for pid in wanted if pid not in index]
        if missing:
            raise DataFormatError(self.root, f"{len(missing)} patient id(s) not in this dataset: "
                                  f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        return CirCorDataset(self.root, [index[pid] for pid in wanted], list(self.problems))

    @property
    def recordings(self) -> list[Recording]:
        return [r for p in self.patients for r in p.recordings]


# --------------------------------------------------------------------------------------------
# file parsers


def _read_text(path: Path) -> str:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as err:
        raise DataFormatError(path, f"cannot read: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"not UTF-8 text (byte {err.start})") from None


def read_hea(path: str | Path) -> Header:
    """Parse a WFDB header (``<name> <nsig> <fs> <nsamp>`` then one line per signal). CRLF is fine.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "1_AV.hea"
    >>> _ = p.write_bytes(b"1_AV 1 4000 80000\\r\\n1_AV.wav 16+44 1 16 0 0 0 0 AV\\r\\n")
    >>> read_hea(p).sampling_rate
    4000
    """
    path = Path(path)
    lines = [ln.strip() for ln in _read_text(path).splitlines()]
    content = [(i + 1, ln) for i, ln in enumerate(lines) if ln and not ln.startswith("#")]
    if not content:
        raise DataFormatError(path, "empty header")
    lineno, first = content[0]
    parts = first.split()
    if len(parts) < 3:
        raise DataFormatError(path, f"record line needs '<name> <signals> <fs> [<samples>]', got {first!r}", lineno)
    name = parts[0].split("/")[0]
    try:
        num_signals = int(parts[1])
        fs_text = parts[2].split("/")[0].split("(")[0]
        fs = float(fs_text)
        num_samples = int(parts[3]) if len(parts) > 3 else None
    except ValueError:
        raise DataFormatError(path, f"non-numeric field in record line {first!r}", lineno) from None
    if num_signals < 1 or fs <= 0 or not math.isfinite(fs) or (num_samples is not None and num_samples < 0):
        raise DataFormatError(path, f"impossible values in record line {first!r}", lineno)
    file_name = location = None
    if len(content) > 1:
        sig = content[1][1].split()
        file_name = sig[0] if sig else None
        location = sig[-1] if len(sig) >= 9 else None
    return Header(name, num_signals, int(round(fs)), num_samples, file_name, location)


def read_tsv(path: str | Path) -> tuple[list[Segment], list[Problem]]:
    """Parse a segmentation ``.tsv``: rows ``start<TAB>end<TAB>state``.

    A malformed row (wrong column count, non-numeric, negative or reversed times) raises
    DataFormatError with its line. A row whose state is not one of 0-4 (the real file
    ``50782_MV_1.tsv`` has a state 28) is kept as state 0 (unannotated) and reported as a Problem.
    """
    path = Path(path)
    segments: list[Segment] = []
    problems: list[Problem] = []
    for lineno, raw in enumerate(_read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if len(cols) != 3:
            raise DataFormatError(path, f"expected 3 tab-separated columns (start, end, state), got {len(cols)}", lineno)
        try:
            start, end = float(cols[0]), float(cols[1])
            state_f = float(cols[2])
        except ValueError:
            raise DataFormatError(path, f"non-numeric value in row {line!r}", lineno) from None
        if not (math.isfinite(start) and math.isfinite(end) and math.isfinite(state_f)):
            raise DataFormatError(path, f"non-finite value in row {line!r}", lineno)
        if start < 0 or end < start:
            raise DataFormatError(path, f"times must satisfy 0 <= start <= end, got {start} .. {end}", lineno)
        state = int(state_f)
        if state != state_f or state not in STATES:
            problems.append(Problem(path, f"unknown state {cols[2]!r} (valid: 0-4); kept as 0 (unannotated)", lineno))
            state = 0
        segments.append(Segment(start, end, state))
    return segments, problems


@dataclass(frozen=True)
class PatientHeader:
    """The contents of a patient ``<id>.txt``."""

    patient_id: str
    sampling_rate: int
    recordings: tuple[tuple[str, str, str, str], ...]  # (location, hea, wav, tsv) file names
    fields: dict[str, str]  # '#Key: value' lines
    field_lines: dict[str, int] = field(default_factory=dict)  # line number of each '#Key: value'
    recording_lines: tuple[int, ...] = ()  # line number of each recording line


def _parse_number(text: str, kind: type, path: Path, line: int, what: str) -> int | float:
    """``int`` or finite ``float`` from ``text``, or a DataFormatError naming ``what``."""
    try:
        value = float(text) if kind is float else int(text)
    except ValueError:
        raise DataFormatError(path, f"{what} must be a number, got {text!r}", line) from None
    if kind is float and not math.isfinite(value):
        raise DataFormatError(path, f"{what} must be finite, got {text!r}", line)
    return value


def _plain_file_name(name: str, path: Path, line: int) -> str:
    """A file name listed in a header must name a file beside it: no folders, no '..'."""
    if name in (".", "..") or any(c in name for c in "/\\\0") or len(name.encode("utf-8", "replace")) > 255:
        raise DataFormatError(path, f"file name {name[:80]!r} must be a plain name in the same folder", line)
    return name


def is_patient_id(text: str) -> bool:
    """CirCor patient ids are ASCII decimal numbers ('50782'); file stems that are not are no patients."""
    return text.isascii() and text.isdigit()


def read_patient_txt(path: str | Path) -> PatientHeader:
    """Parse a patient header ``<id>.txt``: ``<id> <num recordings> <fs>``, one line per recording
    (``<loc> <hea> <wav> <tsv>``), then ``#Key: value`` lines."""
    path = Path(path)
    return parse_patient_text(_read_text(path), path)


def parse_patient_text(text: str, path: str | Path = "<patient data>") -> PatientHeader:
    """:func:`read_patient_txt` on the text of a header (e.g. what the Challenge's
    ``load_patient_data`` returns); ``path`` names it in errors."""
    path = Path(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataFormatError(path, "empty patient header", 1)
    first = lines[0].split()
    if len(first) != 3:
        raise DataFormatError(path, f"first line must be '<id> <recordings> <fs>', got {lines[0]!r}", 1)
    pid = first[0]
    count = _parse_number(first[1], int, path, 1, "number of recordings")
    fs_value = _parse_number(first[2], float, path, 1, "sampling rate")
    if count < 0 or fs_value <= 0 or fs_value != int(fs_value):
        raise DataFormatError(path, f"impossible count or sampling rate in {lines[0]!r}", 1)
    fs = int(fs_value)
    recordings: list[tuple[str, str, str, str]] = []
    recording_lines: list[int] = []
    fields: dict[str, str] = {}
    field_lines: dict[str, int] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if not sep:
                raise DataFormatError(path, f"header field needs '#Key: value', got {line!r}", lineno)
            fields[key.strip()] = value.strip()
            field_lines[key.strip()] = lineno
            continue
        cols = line.split()
        if len(cols) != 4:
            raise DataFormatError(path, f"recording line needs '<loc> <hea> <wav> <tsv>', got {line!r}", lineno)
        if cols[0] not in L.LOCATIONS:
            raise DataFormatError(path, f"unknown location {cols[0]!r}; valid: {', '.join(L.LOCATIONS)}", lineno)
        recordings.append((cols[0], *(_plain_file_name(c, path, lineno) for c in cols[1:])))
        recording_lines.append(lineno)
    if len(recordings) != count:
        raise DataFormatError(path, f"first line announces {count} recordings, {len(recordings)} listed", 1)
    return PatientHeader(pid, fs, tuple(recordings), fields, field_lines, tuple(recording_lines))


def read_audio(path: str | Path, expected_rate: int | None = None, expected_samples: int | None = None,
               mono: bool = False) -> np.ndarray:
    """Read a WAV/FLAC file as float32 in [-1, 1].

    Raises AudioError for a missing, unreadable, empty or truncated file, a sampling rate other than
    ``expected_rate``, a length other than ``expected_samples``, non-finite samples, or more than one
    channel (unless ``mono=True``, which mixes channels down).
    """
    path = Path(path)
    data, rate = decode_audio(path)
    if data.shape[1] > 1 and mono:
        data = data.mean(axis=1, keepdims=True)
    issues = audio_issues(data, rate, expected_rate, expected_samples)
    if issues:
        raise AudioError(path, "; ".join(issues))
    return np.ascontiguousarray(data[:, 0])


def audio_issues(data: np.ndarray, rate: int, expected_rate: int | None = None,
                 expected_samples: int | None = None) -> list[str]:
    """Every way decoded audio ``(samples, channels)`` differs from a usable CirCor recording:
    no samples, more than one channel, a rate other than ``expected_rate``, a length other than
    ``expected_samples``, non-finite samples. Empty when the audio is fine."""
    issues = []
    if data.shape[0] == 0:
        issues.append("audio file has no samples")
    if data.shape[1] > 1:
        issues.append(f"expected mono audio, got {data.shape[1]} channels")
    if expected_rate is not None and rate != expected_rate:
        issues.append(f"sampling rate {rate} Hz, expected {expected_rate} Hz")
    if expected_samples is not None and data.shape[0] not in (0, expected_samples):
        issues.append(f"{data.shape[0]} samples, header announces {expected_samples} (truncated file?)")
    if not np.all(np.isfinite(data)):
        issues.append("audio contains NaN or infinite samples")
    return issues


# --------------------------------------------------------------------------------------------
# the dataset


def _find_audio(folder: Path, stem: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


def parse_recording_name(name: str) -> tuple[str, str, int | None]:
    """'50782_MV_1' -> ('50782', 'MV', 1); raises ValueError for anything else."""
    m = _RECORDING_NAME.match(name)
    if not m or m.group("loc") not in L.LOCATIONS:
        raise ValueError(f"not a CirCor recording name: {name!r}")
    return m.group("pid"), m.group("loc"), int(m.group("n")) if m.group("n") else None


def read_label_table(path: str | Path, problems: list[Problem] | None = None,
                     lines: dict[str, int] | None = None) -> dict[str, dict[str, str]]:
    """Read ``training_data.csv`` into {patient id: {column: cell}} with a clear error per bad row.

    By default the first bad row raises DataFormatError. With a ``problems`` list, a bad row is
    appended to it (severity "error") and skipped, so that every bad row is found in one pass
    (a bad header still raises). ``lines``, when given, receives each patient's line number.
    """
    path = Path(path)
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines())
    try:
        fieldnames = reader.fieldnames
    except csv.Error as err:
        raise DataFormatError(path, f"malformed CSV header: {err}", 1) from None
    if fieldnames is None or "Patient ID" not in fieldnames:
        raise DataFormatError(path, "no 'Patient ID' column in the header", 1)
    missing = [f.name for f in (*L.FEATURES, *L.AUXILIARY) if f.name not in fieldnames]
    if missing:
        raise DataFormatError(path, f"missing column(s): {', '.join(missing)}", 1)
    rows: dict[str, dict[str, str]] = {}
    lineno = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise DataFormatError(path, f"malformed CSV: {err}", reader.reader.line_num) from None
        lineno = reader.line_num
        pid = (row.get("Patient ID") or "").strip()
        if not pid:
            err = DataFormatError(path, "empty Patient ID", lineno)
        elif not is_patient_id(pid):
            err = DataFormatError(path, f"Patient ID must be a number, got {pid[:40]!r}", lineno)
        elif None in row or any(v is None for v in row.values()):
            err = DataFormatError(path, f"wrong number of columns (header has {len(fieldnames)})", lineno)
        elif pid in rows:
            err = DataFormatError(path, f"patient {pid} appears twice", lineno)
        else:
            rows[pid] = {k: v.strip() for k, v in row.items()}
            if lines is not None:
                lines[pid] = lineno
            continue
        if problems is None:
            raise err
        problems.append(Problem(path, err.message, lineno, "error"))
    return rows


def patient_labels(source: dict[str, str], path: Path, line: int | None = None,
                   lines: dict[str, int] | None = None) -> tuple[dict[str, str], tuple[str, ...]]:
    """Normalise the label fields of one patient (csv row or .txt fields) through the schema.

    An unknown label raises DataFormatError naming ``path`` and the line: ``lines[field]`` when
    given (a .txt header's field lines), else ``line`` (a csv row's line).
    """
    lines = lines or {}
    labels: dict[str, str] = {}
    name = L.MURMUR_LOCATIONS_NAME
    try:
        for f in (*L.FEATURES, *L.AUXILIARY):
            name = f.name
            if f.name not in source:
                raise DataFormatError(path, f"missing field {f.name!r}", line)
            labels[f.name] = f.normalise(source[f.name])
        name = L.MURMUR_LOCATIONS_NAME
        locations = L.parse_locations(source.get(name, L.NO_MURMUR))
    except L.LabelError as err:
        raise DataFormatError(path, str(err), lines.get(name, line)) from None
    return labels, locations


def load_patient(folder: str | Path, patient_id: str, table_row: dict[str, str] | None = None,
                 table_path: Path | None = None, table_line: int | None = None) -> tuple[Patient, list[Problem]]:
    """Load one patient from ``folder`` (the ``training_data`` directory).

    Labels come from ``table_row`` (a ``training_data.csv`` row) when given, else from the
    ``#Key: value`` lines of ``<id>.txt``. Missing recording files raise DataFormatError.
    """
    folder = Path(folder)
    txt = folder / f"{patient_id}.txt"
    header = read_patient_txt(txt)
    problems: list[Problem] = []
    if header.patient_id != patient_id:
        raise DataFormatError(txt, f"header names patient {header.patient_id}, file name says {patient_id}", 1)
    if table_row is not None:
        labels, locations = patient_labels(table_row, table_path or txt, table_line)
    else:
        labels, locations = patient_labels(header.fields, txt, lines=header.field_lines)
    recordings = []
    for (loc, hea_name, wav_name, tsv_name), lineno in zip(header.recordings, header.recording_lines):
        stem = Path(wav_name).stem
        audio = _find_audio(folder, stem)
        if audio is None:
            raise DataFormatError(txt, f"audio for recording {stem} not found (.wav or .flac)", lineno)
        hea_path = folder / hea_name
        hea = read_hea(hea_path) if hea_path.exists() else None
        if hea is None:
            problems.append(Problem(hea_path, "header file missing; audio length not checked"))
        elif hea.sampling_rate != header.sampling_rate:
            raise DataFormatError(hea_path, f"sampling rate {hea.sampling_rate} Hz differs from the patient header's {header.sampling_rate} Hz", 1)
        tsv_path = folder / tsv_name
        if not tsv_path.exists():
            problems.append(Problem(tsv_path, "segmentation file missing"))
            tsv_path = None
        recordings.append(Recording(
            patient_id=patient_id, location=loc, name=stem, audio_path=audio,
            sampling_rate=header.sampling_rate, header_path=hea_path if hea else None,
            segmentation_path=tsv_path, num_samples=hea.num_samples if hea else None,
        ))
    metadata = {k: (table_row or header.fields).get(k, "nan") for k in METADATA_FIELDS}
    return Patient(patient_id, recordings, labels, locations, metadata, header.sampling_rate), problems


def find_data_folder(root: str | Path) -> Path:
    """The folder holding the ``<id>.txt`` files: ``root/training_data`` or ``root`` itself."""
    root = Path(root)
    if not root.exists():
        raise DataFormatError(root, "dataset folder not found")
    for candidate in (root / "training_data", root):
        if candidate.is_dir() and any(candidate.glob("*.txt")):
            return candidate
    raise DataFormatError(root, "no patient headers (<id>.txt) found here or in training_data/")


def load_circor(root: str | Path, patient_ids: Iterable[str] | None = None,
                on_error: str = "raise") -> CirCorDataset:
    """Load a CirCor folder (the one holding ``training_data.csv`` and ``training_data/``).

    ``on_error="raise"`` stops at the first unusable patient; ``"skip"`` skips it and records the
    error as a Problem of severity "error" in ``dataset.problems`` (nothing is dropped silently).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    root = Path(root)
    folder = find_data_folder(root)
    table_path = root / "training_data.csv"
    table_lines: dict[str, int] = {}
    table = read_label_table(table_path, lines=table_lines) if table_path.exists() else None
    if patient_ids is not None:
        ids = [str(p) for p in patient_ids]
    elif table is not None:
        ids = list(table)
    else:
        ids = sorted((p.stem for p in folder.glob("*.txt") if is_patient_id(p.stem)), key=int)
    patients: list[Patient] = []
    problems: list[Problem] = []
    if table is not None and patient_ids is None:
        for extra in sorted(p for p in folder.glob("*.txt") if is_patient_id(p.stem) and p.stem not in table):
            problems.append(Problem(extra, f"patient header without a row in {table_path.name}; not loaded"))
    for pid in ids:
        row = table.get(pid) if table is not None else None
        if table is not None and row is None:
            err = DataFormatError(table_path, f"patient {pid} has no row")
            if on_error == "raise":
                raise err
            problems.append(Problem(err.path, err.message, None, "error"))
            continue
        try:
            patient, found = load_patient(folder, pid, row, table_path if row is not None else None,
                                          table_lines.get(pid))
        except DataFormatError as err:
            if on_error == "raise":
                raise
            problems.append(Problem(err.path, err.message, err.line, "error"))
            continue
        patients.append(patient)
        problems.extend(found)
    return CirCorDataset(root, patients, problems)
