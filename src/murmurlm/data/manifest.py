"""Parse a CirCor folder once: manifests of its patients and recordings (lhotse's ``prepare_*``).

:func:`prepare_circor` reads a CirCor folder with :func:`~murmurlm.data.circor.load_circor`, checks
every audio file's own header (rate and sample count, against the ``.hea``), and writes a manifest
folder:

- ``patients.jsonl``: one line per patient (id, labels, murmur locations, metadata, rate);
- ``recordings.jsonl``: one line per recording (patient, location, name, audio / ``.hea`` /
  ``.tsv`` paths relative to the folder, sampling rate, sample count, duration);
- ``problems.jsonl``: what was found wrong (``path:line: message``, severity);
- ``manifest.json``: the folder it describes, counts, and a fingerprint of the folder (every
  file's relative path, size and modification time).

:func:`load_manifest` rebuilds the :class:`~murmurlm.data.circor.CirCorDataset` from those files
without parsing the folder again. It compares the fingerprint first, which costs a ``stat`` per
file, and prepares the manifest again when the folder changed, so a stale manifest is never used.
:func:`open_circor` is what the stages call. It takes a CirCor folder, a manifest folder or an
already-loaded dataset, so that ``murmurlm pipeline`` parses the folder once (into
``RUN_DIR/manifests/``) and hands the one dataset to training, prediction and evaluation.

Examples
--------
>>> import tempfile, pathlib
>>> from murmurlm.signal.synth import write_synthetic_circor
>>> root = pathlib.Path(tempfile.mkdtemp()) / "circor"
>>> _ = write_synthetic_circor(root, num_patients=3, seed=0)
>>> manifest = prepare_circor(root, root.parent / "manifests")
>>> sorted(p.name for p in manifest.iterdir())
['manifest.json', 'patients.jsonl', 'problems.jsonl', 'recordings.jsonl']
>>> dataset = load_manifest(manifest)
>>> len(dataset.patients), dataset.recordings[0].num_samples > 0
(3, True)
>>> open_circor(manifest).by_id().keys() == dataset.by_id().keys()
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Iterable

from murmurlm.data.circor import CirCorDataset, Patient, Problem, Recording, find_data_folder, load_circor
from murmurlm.errors import DataFormatError

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
FILES = ("patients.jsonl", "recordings.jsonl", "problems.jsonl", "manifest.json")


def folder_fingerprint(root: str | Path) -> str:
    """SHA-256 over every file's relative path, size and modification time (nanoseconds) under
    ``root``: any added, removed, rewritten or touched file changes it. Files are listed, not read."""
    root = Path(root)
    digest = hashlib.sha256()
    entries = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            stat = path.stat()
            entries.append(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}")
    for entry in sorted(entries):
        digest.update(entry.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def _relative(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _audio_checks(recording: Recording) -> tuple[Recording, list[Problem]]:
    """The file's own rate and sample count (soundfile reads the header only), against the .hea's."""
    import soundfile as sf

    try:
        info = sf.info(str(recording.audio_path))
    except (RuntimeError, sf.LibsndfileError) as err:
        return recording, [Problem(recording.audio_path, f"unreadable audio: {err}", None, "error")]
    problems = []
    if info.samplerate != recording.sampling_rate:
        problems.append(Problem(recording.audio_path, f"the file is at {info.samplerate} Hz, its header says "
                                f"{recording.sampling_rate} Hz", None, "error"))
    if recording.num_samples is not None and info.frames != recording.num_samples:
        problems.append(Problem(recording.audio_path, f"{info.frames} samples, the .hea says {recording.num_samples}"))
    if recording.num_samples is None:
        recording.num_samples = int(info.frames)
    return recording, problems


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)  # never a half-written manifest


def prepare_circor(root: str | Path, out: str | Path, progress: bool = False) -> Path:
    """Parse and check the CirCor folder ``root`` once; write its manifests to ``out``. Unusable
    patients and recordings are skipped and listed in ``problems.jsonl``; returns ``out``."""
    from tqdm.auto import tqdm

    root, out = Path(root).resolve(), Path(out)
    find_data_folder(root)  # a clear error for a folder that is not CirCor's
    fingerprint = folder_fingerprint(root)
    dataset = load_circor(root, on_error="skip")
    problems = list(dataset.problems)
    patients, recordings = [], []
    for patient in tqdm(dataset.patients, desc="prepare", unit="patient", disable=not progress):
        kept = []
        for rec in patient.recordings:
            rec, found = _audio_checks(rec)
            problems.extend(found)
            if any(p.severity == "error" for p in found):
                continue
            kept.append(rec)
            recordings.append({
                "patient_id": rec.patient_id, "location": rec.location, "name": rec.name,
                "audio": _relative(rec.audio_path, root), "header": _relative(rec.header_path, root),
                "segmentation": _relative(rec.segmentation_path, root), "sampling_rate": rec.sampling_rate,
                "num_samples": rec.num_samples, "duration": rec.duration, "custom": rec.custom,
            })
        if not kept:
            problems.append(Problem(root, f"patient {patient.patient_id}: no readable recording; not in the manifest",
                                    None, "error"))
            continue
        patients.append({"patient_id": patient.patient_id, "labels": patient.labels,
                         "murmur_locations": list(patient.murmur_locations), "metadata": patient.metadata,
                         "sampling_rate": patient.sampling_rate, "recordings": [r.name for r in kept]})
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "patients.jsonl", patients)
    _write_jsonl(out / "recordings.jsonl", recordings)
    _write_jsonl(out / "problems.jsonl", ({"path": str(p.path), "line": p.line, "message": p.message,
                                           "severity": p.severity} for p in problems))
    summary = {"version": MANIFEST_VERSION, "root": str(root), "fingerprint": fingerprint,
               "patients": len(patients), "recordings": len(recordings),
               "errors": sum(p.severity == "error" for p in problems),
               "warnings": sum(p.severity != "error" for p in problems),
               "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / "manifest.json.tmp").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "manifest.json.tmp").replace(out / "manifest.json")  # written last: its presence means complete
    log.info("%s: %d patients, %d recordings, %d error(s), %d warning(s) -> %s", root, len(patients),
             len(recordings), summary["errors"], summary["warnings"], out)
    return out


def is_manifest(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise DataFormatError(path, f"not a JSON line: {err.msg}", line_no) from None
    return rows


def load_manifest(manifest: str | Path, refresh: bool = True) -> CirCorDataset:
    """The dataset a manifest folder describes, without parsing the CirCor folder again. When the
    folder changed since (its fingerprint differs), the manifest is prepared again first
    (``refresh=False``: a :class:`~murmurlm.errors.DataFormatError` instead)."""
    manifest = Path(manifest)
    if not is_manifest(manifest):
        raise DataFormatError(manifest, "not a manifest folder (no manifest.json; make one with murmurlm data prepare)")
    summary = json.loads((manifest / "manifest.json").read_text(encoding="utf-8"))
    if summary.get("version") != MANIFEST_VERSION:
        raise DataFormatError(manifest / "manifest.json", f"manifest version {summary.get('version')}, "
                              f"this murmurlm reads {MANIFEST_VERSION}; prepare it again")
    root = Path(summary["root"])
    if not root.is_dir():
        raise DataFormatError(manifest / "manifest.json", f"the CirCor folder it describes is gone: {root}")
    if folder_fingerprint(root) != summary["fingerprint"]:
        if not refresh:
            raise DataFormatError(manifest, f"stale: {root} changed since the manifest was prepared")
        log.info("%s changed since its manifest was prepared: preparing it again", root)
        prepare_circor(root, manifest)
        return load_manifest(manifest, refresh=False)

    def path(text: str | None) -> Path | None:
        return None if text is None else root / text

    by_name = {}
    for row in _read_jsonl(manifest / "recordings.jsonl"):
        by_name[row["name"]] = Recording(
            patient_id=row["patient_id"], location=row["location"], name=row["name"], audio_path=path(row["audio"]),
            sampling_rate=int(row["sampling_rate"]), header_path=path(row["header"]),
            segmentation_path=path(row["segmentation"]), num_samples=row["num_samples"], custom=row.get("custom") or {})
    patients = [Patient(row["patient_id"], [by_name[n] for n in row["recordings"]], dict(row["labels"]),
                        tuple(row["murmur_locations"]), dict(row["metadata"]), int(row["sampling_rate"]))
                for row in _read_jsonl(manifest / "patients.jsonl")]
    problems = [Problem(Path(r["path"]), r["message"], r["line"], r["severity"])
                for r in _read_jsonl(manifest / "problems.jsonl")]
    return CirCorDataset(root, patients, problems)


def circor_manifest(root: str | Path, out: str | Path, progress: bool = False) -> CirCorDataset:
    """The dataset of ``root`` through its manifest in ``out``: read when it describes ``root`` and
    is fresh, else (missing, another folder, changed since) prepared first."""
    out = Path(out)
    if is_manifest(out):
        described = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("root")
        if described == str(Path(root).resolve()):
            return load_manifest(out)  # prepares it again itself when the folder changed
    return load_manifest(prepare_circor(root, out, progress=progress), refresh=False)


def open_circor(data: str | Path | CirCorDataset, patient_ids: Iterable[str] | None = None) -> CirCorDataset:
    """What every stage calls for its data: a loaded dataset as it is, a manifest folder through
    :func:`load_manifest`, a CirCor folder through :func:`~murmurlm.data.circor.load_circor`
    (unusable patients skipped and listed in ``problems``). ``patient_ids`` selects patients; an
    id that is not there is a problem of severity "error", not an exception, as in ``load_circor``."""
    if isinstance(data, CirCorDataset):
        dataset = data
    elif is_manifest(data):
        dataset = load_manifest(data)
    else:
        return load_circor(data, patient_ids=patient_ids, on_error="skip")
    if patient_ids is None:
        return dataset
    index = dataset.by_id()
    wanted = [str(p) for p in patient_ids]
    problems = list(dataset.problems) + [Problem(dataset.root, f"patient {pid} is not in the dataset", None, "error")
                                         for pid in wanted if pid not in index]
    return CirCorDataset(dataset.root, [index[p] for p in wanted if p in index], problems)
