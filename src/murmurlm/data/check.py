"""Check a CirCor folder end to end: read every file, decode every recording, report every problem.

:func:`check_dataset` is the thorough counterpart of :func:`~murmurlm.data.circor.load_circor`: where
the loader stops at the first unusable file, the check reads everything — ``training_data.csv``,
every ``<id>.txt``, ``.hea`` and ``.tsv``, and every audio file (decoded; rate, channels, length
against the header and finiteness checked) — and gathers every :class:`~murmurlm.data.circor.Problem`
into a :class:`CheckReport` along with the dataset's counts (patients, recordings, hours, recordings
per location, class counts of every label field).

Severity: ``"error"`` means the item is unusable or the labels are contradictory (the loader would
fail or train on wrong data); ``"warning"`` means a quirk that is kept and reported, e.g. the
undocumented state 28 in the real ``50782_MV_1.tsv`` (read as 0, unannotated).

Examples
--------
>>> import tempfile, pathlib
>>> from murmurlm.signal.synth import write_synthetic_circor
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_synthetic_circor(root, num_patients=3, seed=0)
>>> report = check_dataset(root, progress=False)
>>> report.patients, report.ok
(3, True)
>>> (root / "training_data" / "notes.bak").write_text("x")
1
>>> [p.message for p in check_dataset(root, progress=False).warnings]
['unexpected file in the data folder']
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from murmurlm.data import labels as L
from murmurlm.data.audio import decode_audio
from murmurlm.data.circor import (
    AUDIO_SUFFIXES,
    METADATA_FIELDS,
    PatientHeader,
    Problem,
    audio_issues,
    find_data_folder,
    is_patient_id,
    parse_recording_name,
    read_hea,
    read_label_table,
    read_patient_txt,
    read_tsv,
)
from murmurlm.errors import DataFormatError

log = logging.getLogger(__name__)

LABEL_FIELDS: tuple[str, ...] = (*L.FEATURE_NAMES, *(f.name for f in L.AUXILIARY), L.MURMUR_LOCATIONS_NAME)
"""The label fields whose class counts a report gives: the 11 features, Outcome, Most audible
location and Murmur locations (multi-label: a patient counts once per location)."""

LOCATIONS_COLUMN = "Recording locations:"
"""``training_data.csv``'s column listing each patient's recordings ('+'-joined, repeats kept)."""

# Files of the official download that are not part of the data folder's contents.
_ROOT_FILES = {"training_data.csv", "RECORDS", "SHA256SUMS.txt", "LICENSE.txt", "README.md"}


@dataclass
class CheckReport:
    """What :func:`check_dataset` found. Renders as text (``str(report)``, rich tables) and JSON."""

    root: Path
    patients: int = 0
    recordings: int = 0
    seconds: float = 0.0  # total duration of the audio that decoded
    locations: dict[str, int] = field(default_factory=dict)  # recordings per auscultation location
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # field -> class -> patients
    problems: list[Problem] = field(default_factory=list)
    files_read: int = 0

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        """True when no problem is an error (warnings alone are fine)."""
        return not self.errors

    def _relative(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; problem files are relative to ``root``."""
        return {
            "root": str(self.root),
            "ok": self.ok,
            "patients": self.patients,
            "recordings": self.recordings,
            "hours": round(self.hours, 4),
            "seconds": round(self.seconds, 3),
            "files_read": self.files_read,
            "locations": dict(self.locations),
            "class_counts": {k: dict(v) for k, v in self.class_counts.items()},
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [
                {"file": self._relative(p.path), "line": p.line, "severity": p.severity, "message": p.message}
                for p in self.problems
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def __rich_console__(self, console, options):
        from rich.markup import escape
        from rich.table import Table

        # File names and messages quote file contents: escape them, '[/]' in a label is no markup.
        verdict = "[green]no errors[/]" if self.ok else f"[bold red]{len(self.errors)} error(s)[/]"
        yield (f"[bold]{escape(str(self.root))}[/]: {self.patients} patients, {self.recordings} recordings, "
               f"{self.hours:.2f} hours of audio, {self.files_read} files read; "
               f"{verdict}, {len(self.warnings)} warning(s)")
        if self.locations:
            where = Table(title="Recordings per location", title_justify="left")
            for loc in self.locations:
                where.add_column(loc, justify="right")
            where.add_row(*(str(n) for n in self.locations.values()))
            yield where
        if self.class_counts:
            counts = Table("Field", "Class counts (patients)", title="Labels", title_justify="left")
            for name, classes in self.class_counts.items():
                counts.add_row(name, escape("  ".join(f"{c} {n}" for c, n in classes.items())))
            yield counts
        if self.problems:
            table = Table("Severity", "File", "Message", title=f"Problems ({len(self.problems)})",
                          title_justify="left")
            for p in self.problems:
                where_ = self._relative(p.path) + (f":{p.line}" if p.line is not None else "")
                colour = "red" if p.severity == "error" else "yellow"
                table.add_row(f"[{colour}]{p.severity}[/]", escape(where_), escape(p.message))
            yield table

    def render(self, width: int = 120) -> str:
        """The report as plain text (the tables ``murmurlm data check`` prints)."""
        from rich.console import Console

        buffer = io.StringIO()
        Console(file=buffer, width=width, color_system=None, force_terminal=False).print(self, soft_wrap=True)
        return buffer.getvalue()

    def __str__(self) -> str:
        return self.render()


@dataclass
class _AudioJob:
    path: Path
    sampling_rate: int
    num_samples: int | None
    segments_end: float | None  # end of the last .tsv segment, to check against the audio


def _labels_of(source: dict[str, str], path: Path, line_of, problems: list[Problem],
               required: bool = True) -> tuple[dict[str, str], tuple[str, ...]]:
    """Normalise every label field of one patient, recording each bad field as an error (and each
    missing one, when ``required``)."""
    labels: dict[str, str] = {}
    for f in (*L.FEATURES, *L.AUXILIARY):
        if f.name not in source:
            if required:
                problems.append(Problem(path, f"missing field {f.name!r}", line_of(None), "error"))
            continue
        try:
            labels[f.name] = f.normalise(source[f.name])
        except L.LabelError as err:
            problems.append(Problem(path, str(err), line_of(f.name), "error"))
    locations: tuple[str, ...] = ()
    try:
        locations = L.parse_locations(source.get(L.MURMUR_LOCATIONS_NAME, L.NO_MURMUR))
    except L.LabelError as err:
        problems.append(Problem(path, str(err), line_of(L.MURMUR_LOCATIONS_NAME), "error"))
    return labels, locations


def _same_cell(a: str, b: str) -> bool:
    def norm(x: str) -> str:
        x = x.strip()
        return L.NO_MURMUR if x.lower() in ("", "nan") else x
    return norm(a) == norm(b)


def _check_audio(job: _AudioJob) -> tuple[float, list[Problem]]:
    """Decode one recording; its duration in seconds (0 when undecodable) and its problems."""
    try:
        data, rate = decode_audio(job.path)
    except DataFormatError as err:
        return 0.0, [Problem(err.path, err.message, None, "error")]
    problems = [Problem(job.path, issue, None, "error")
                for issue in audio_issues(data, rate, job.sampling_rate, job.num_samples)]
    seconds = data.shape[0] / rate if rate > 0 else 0.0
    if problems:  # a truncated file also ends before its segmentation: say it once
        return seconds, problems
    if data.shape[0] and not np.any(data):
        problems.append(Problem(job.path, "audio is all zeros (silent)"))
    if job.segments_end is not None and rate > 0 and job.segments_end > seconds + 1.0 / rate:
        problems.append(Problem(job.path, f"segmentation runs to {job.segments_end:.3f} s, past the end of "
                                          f"the audio at {seconds:.3f} s"))
    return seconds, problems


def check_dataset(root: str | Path, progress: bool = True, workers: int | None = None) -> CheckReport:
    """Read every file of a CirCor folder and report what is in it and what is wrong with it.

    Parameters
    ----------
    root
        The folder holding ``training_data.csv`` and ``training_data/`` (or the data folder itself).
    progress
        Show tqdm progress bars.
    workers
        Threads decoding audio (default: up to 4, bounded by the CPU count).

    Returns
    -------
    CheckReport
        Counts and every problem found; ``report.ok`` is False when any problem is an error.

    Raises
    ------
    DataFormatError
        Only when ``root`` is not a dataset folder at all (missing, or no ``<id>.txt`` anywhere).
        Every problem inside the folder is reported, never raised.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from murmurlm.signal.synth import write_synthetic_circor
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_synthetic_circor(root, num_patients=2, seed=1)
    >>> report = check_dataset(root, progress=False)
    >>> report.recordings == sum(report.locations.values()), report.to_dict()["errors"]
    (True, 0)
    """
    root = Path(root)
    folder = find_data_folder(root)
    report = CheckReport(root=root)
    problems = report.problems

    # 1. the label table
    table_path = root / "training_data.csv"
    table: dict[str, dict[str, str]] | None = None
    table_lines: dict[str, int] = {}
    if table_path.is_file():
        report.files_read += 1
        try:
            table = read_label_table(table_path, problems=problems, lines=table_lines)
        except DataFormatError as err:
            problems.append(Problem(err.path, err.message, err.line, "error"))
    else:
        problems.append(Problem(table_path, "label table not found; labels taken from the patient headers"))

    # 2. the patient headers and what they list
    listed: set[str] = set()  # file names in ``folder`` that some patient header refers to
    headers: dict[str, PatientHeader] = {}
    txt_files = sorted((p for p in folder.glob("*.txt") if is_patient_id(p.stem)), key=lambda p: int(p.stem))
    for txt in tqdm(txt_files, desc="patients", unit="patient", disable=not progress):
        listed.add(txt.name)
        report.files_read += 1
        try:
            header = read_patient_txt(txt)
        except DataFormatError as err:
            problems.append(Problem(err.path, err.message, err.line, "error"))
            continue
        if header.patient_id != txt.stem:
            problems.append(Problem(txt, f"header names patient {header.patient_id}, file name says {txt.stem}",
                                    1, "error"))
        headers[txt.stem] = header

    all_ids = list(table or {}) + [pid for pid in headers if pid not in (table or {})]
    report.patients = len(all_ids)
    counts: dict[str, Counter] = {name: Counter() for name in LABEL_FIELDS}
    jobs: list[_AudioJob] = []
    for pid in all_ids:
        header = headers.get(pid)
        row = table.get(pid) if table is not None else None
        txt = folder / f"{pid}.txt"
        if header is None:
            if not txt.is_file():
                problems.append(Problem(table_path, f"patient {pid} has no header file {txt.name}",
                                        table_lines.get(pid), "error"))
            continue  # an unreadable header was reported above
        if table is not None and row is None:
            problems.append(Problem(txt, f"patient {pid} has no row in {table_path.name}", None, "error"))
        labels, locations = _labels_of(header.fields, txt, lambda k: header.field_lines.get(k), problems,
                                       required=row is None)
        if row is not None:
            row_line = table_lines.get(pid)
            labels, locations = _cross_check(pid, row, row_line, table_path, header, txt, labels,
                                             locations, problems)
        for name, value in labels.items():
            counts[name][value] += 1
        for loc in locations or (L.NO_MURMUR,):
            counts[L.MURMUR_LOCATIONS_NAME][loc] += 1
        jobs.extend(_check_recordings(folder, header, txt, listed, report, problems))

    report.class_counts = _ordered_counts(counts)
    report.locations = {loc: report.locations[loc] for loc in L.LOCATIONS if loc in report.locations}
    report.recordings = sum(report.locations.values())

    # 3. the audio, decoded in a few threads (libsndfile releases the GIL)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_check_audio, jobs)
        for seconds, found in tqdm(results, total=len(jobs), desc="audio", unit="rec", disable=not progress):
            report.seconds += seconds
            report.files_read += 1
            problems.extend(found)

    # 4. whatever no header mentions
    problems.extend(_orphans(root, folder, listed))
    problems.sort(key=lambda p: (str(p.path), p.line or 0))
    log.info("checked %s: %d patients, %d recordings, %d error(s), %d warning(s)", root, report.patients,
             report.recordings, len(report.errors), len(report.warnings))
    return report


def _cross_check(pid: str, row: dict[str, str], row_line: int | None, table_path: Path,
                 header: PatientHeader, txt: Path, txt_labels: dict[str, str],
                 txt_locations: tuple[str, ...], problems: list[Problem]
                 ) -> tuple[dict[str, str], tuple[str, ...]]:
    """Compare a csv row with the ``#`` fields of the patient's .txt; the csv labels win."""
    labels, locations = _labels_of(row, table_path, lambda k: row_line, problems)
    for name, value in labels.items():
        if name in txt_labels and txt_labels[name] != value:
            problems.append(Problem(txt, f"{name} is {txt_labels[name]!r} here but {value!r} in "
                                         f"{table_path.name} line {row_line}", header.field_lines.get(name), "error"))
    if set(locations) != set(txt_locations) and L.MURMUR_LOCATIONS_NAME in header.fields:
        problems.append(Problem(txt, f"{L.MURMUR_LOCATIONS_NAME} differ from {table_path.name} line {row_line}",
                                header.field_lines.get(L.MURMUR_LOCATIONS_NAME), "error"))
    for name in METADATA_FIELDS:
        if name in row and name in header.fields and not _same_cell(row[name], header.fields[name]):
            problems.append(Problem(txt, f"{name} is {header.fields[name]!r} here but {row[name]!r} in "
                                         f"{table_path.name} line {row_line}", header.field_lines.get(name)))
    if LOCATIONS_COLUMN in row:
        listed = "+".join(loc for loc, *_ in header.recordings)
        if row[LOCATIONS_COLUMN] != listed:
            problems.append(Problem(table_path, f"{LOCATIONS_COLUMN!r} of patient {pid} is {row[LOCATIONS_COLUMN]!r}, "
                                                f"its header lists {listed!r}", row_line))
    return labels, locations


def _check_recordings(folder: Path, header: PatientHeader, txt: Path, listed: set[str],
                      report: CheckReport, problems: list[Problem]) -> list[_AudioJob]:
    """Check the .hea and .tsv of each recording of one patient; return the audio left to decode."""
    jobs = []
    for (loc, hea_name, wav_name, tsv_name), lineno in zip(header.recordings, header.recording_lines):
        stem = Path(wav_name).stem
        report.locations[loc] = report.locations.get(loc, 0) + 1
        try:
            pid, name_loc, _ = parse_recording_name(stem)
            if pid != header.patient_id or name_loc != loc:
                problems.append(Problem(txt, f"recording {stem} listed under patient {header.patient_id}, "
                                             f"location {loc}", lineno))
        except ValueError as err:
            problems.append(Problem(txt, str(err), lineno))
        if Path(hea_name).stem != stem or Path(tsv_name).stem != stem:
            problems.append(Problem(txt, f"recording line names different stems: {hea_name} {wav_name} {tsv_name}",
                                    lineno))
        listed.update((hea_name, tsv_name, wav_name))
        candidates = [folder / f"{stem}{suffix}" for suffix in AUDIO_SUFFIXES]
        present = [c for c in candidates if c.is_file()]
        listed.update(c.name for c in candidates)
        if len(present) > 1:
            problems.append(Problem(present[1], f"duplicate audio for {stem}; {present[0].name} is used"))

        num_samples = None
        hea_path = folder / hea_name
        if not hea_path.is_file():
            problems.append(Problem(hea_path, "header file missing; audio length not checked"))
        else:
            report.files_read += 1
            try:
                hea = read_hea(hea_path)
            except DataFormatError as err:
                problems.append(Problem(err.path, err.message, err.line, "error"))
            else:
                num_samples = hea.num_samples
                if hea.num_signals != 1:
                    problems.append(Problem(hea_path, f"{hea.num_signals} signals, CirCor recordings have 1",
                                            1, "error"))
                if hea.sampling_rate != header.sampling_rate:
                    problems.append(Problem(hea_path, f"sampling rate {hea.sampling_rate} Hz differs from "
                                                      f"{txt.name}'s {header.sampling_rate} Hz", 1, "error"))
                if hea.record_name != stem:
                    problems.append(Problem(hea_path, f"record name {hea.record_name!r}, expected {stem!r}", 1))
                if hea.file_name is not None and Path(hea.file_name).stem != stem:
                    problems.append(Problem(hea_path, f"signal file {hea.file_name!r}, expected {stem}.wav", 2))
                if hea.location is not None and hea.location != loc:
                    problems.append(Problem(hea_path, f"location {hea.location!r}, {txt.name} says {loc!r}", 2))

        segments_end = None
        tsv_path = folder / tsv_name
        if not tsv_path.is_file():
            problems.append(Problem(tsv_path, "segmentation file missing"))
        else:
            report.files_read += 1
            try:
                segments, found = read_tsv(tsv_path)
            except DataFormatError as err:
                problems.append(Problem(err.path, err.message, err.line, "error"))
            else:
                problems.extend(found)
                segments_end = max((s.end for s in segments), default=None)

        if not present:
            problems.append(Problem(txt, f"audio for recording {stem} not found "
                                         f"({' or '.join(c.name for c in candidates)})", lineno, "error"))
            continue
        jobs.append(_AudioJob(present[0], header.sampling_rate, num_samples, segments_end))
    return jobs


def _orphans(root: Path, folder: Path, listed: set[str]) -> list[Problem]:
    """Files in the data folder that no patient header mentions, and RECORDS entries without a recording."""
    problems = []
    for path in sorted(folder.iterdir()):
        if path.name in listed or path.name.startswith("."):
            continue
        if folder == root and path.name in _ROOT_FILES:
            continue
        suffix = path.suffix.lower()
        if path.is_dir():
            if folder != root:
                problems.append(Problem(path, "unexpected folder in the data folder"))
        elif suffix in AUDIO_SUFFIXES:
            problems.append(Problem(path, "audio file not listed in any patient header"))
        elif suffix in (".hea", ".tsv"):
            problems.append(Problem(path, f"{suffix} file not listed in any patient header"))
        elif suffix == ".txt" and is_patient_id(path.stem):
            continue  # a patient header; it was read
        else:
            problems.append(Problem(path, "unexpected file in the data folder"))
    records = root / "RECORDS"
    if records.is_file():
        prefix = "" if folder == root else folder.name + "/"
        try:
            lines = records.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as err:
            return [*problems, Problem(records, f"cannot read: {err}", None, "error")]
        known = {f"{prefix}{Path(n).stem}" for n in listed if Path(n).suffix.lower() == ".hea"}
        for lineno, line in enumerate(lines, start=1):
            entry = line.strip()
            if entry and entry not in known:
                problems.append(Problem(records, f"record {entry!r} is not a listed recording", lineno))
    return problems


def _ordered_counts(counts: dict[str, Counter]) -> dict[str, dict[str, int]]:
    """Class counts in schema order, zero counts included; unexpected values (none after
    normalisation) would come last."""
    out: dict[str, dict[str, int]] = {}
    for name, counter in counts.items():
        if name == L.MURMUR_LOCATIONS_NAME:
            classes: tuple[str, ...] = (*L.LOCATIONS, L.NO_MURMUR)
        else:
            classes = L.feature(name).classes
        ordered = {c: counter.get(c, 0) for c in classes}
        ordered.update({c: n for c, n in counter.items() if c not in ordered})
        out[name] = ordered
    return out
