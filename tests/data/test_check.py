"""check_dataset: counts and the state-28 warning on the real data; every problem of a broken folder."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from murmurlm.data import labels as L
from murmurlm.data.check import LABEL_FIELDS, CheckReport, check_dataset
from murmurlm.data.circor import read_hea
from murmurlm.errors import DataFormatError
from murmurlm.signal.synth import write_synthetic_circor


@pytest.fixture(scope="module")
def real_report(circor_root) -> CheckReport:
    return check_dataset(circor_root, progress=False)


@pytest.mark.circor
def test_real_counts(real_report, circor_root):
    report = real_report
    assert (report.patients, report.recordings) == (518, 1729)
    folder = circor_root / "training_data"
    assert report.files_read == len(list(folder.iterdir())) + 1  # every file in the folder + the csv
    samples = sum(read_hea(h).num_samples for h in folder.glob("*.hea"))
    assert report.seconds == pytest.approx(samples / 4000)
    names = (circor_root / "RECORDS").read_text().split()
    assert report.locations == {loc: n for loc, n in
                                sorted(Counter(n.split("_")[2] for n in names).items(),
                                       key=lambda kv: L.LOCATIONS.index(kv[0]))}


@pytest.mark.circor
def test_real_class_counts_match_the_csv(real_report, circor_root):
    with open(circor_root / "training_data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(real_report.class_counts) == list(LABEL_FIELDS)
    for name in (*L.FEATURE_NAMES, "Outcome", "Most audible location"):
        counts = real_report.class_counts[name]
        assert list(counts)[: len(L.feature(name).classes)] == list(L.feature(name).classes)
        assert {c: n for c, n in counts.items() if n} == dict(Counter(row[name] for row in rows)), name
    multi = Counter(loc for row in rows for loc in row["Murmur locations"].split("+"))
    assert {c: n for c, n in real_report.class_counts["Murmur locations"].items() if n} == dict(multi)


@pytest.mark.circor
def test_real_only_problem_is_the_state_28_row(real_report):
    assert real_report.ok and real_report.errors == []
    [warning] = real_report.problems
    assert (warning.path.name, warning.line, warning.severity) == ("50782_MV_1.tsv", 1, "warning")
    assert "unknown state '28'" in warning.message
    text = real_report.render(width=200)
    assert "518 patients, 1729 recordings" in text and "training_data/50782_MV_1.tsv:1" in text
    assert "Present 98" in text and "Holosystolic" in text
    data = json.loads(real_report.to_json())
    assert data["problems"] == [{"file": "training_data/50782_MV_1.tsv", "line": 1, "severity": "warning",
                                 "message": warning.message}]
    assert (data["patients"], data["recordings"], data["ok"]) == (518, 1729, True)


@pytest.fixture
def synth(tmp_path) -> tuple[Path, list[str]]:
    root = tmp_path / "circor"
    ids = write_synthetic_circor(root, num_patients=4, seed=3, duration=(3.0, 4.0))
    return root, ids


def test_clean_synthetic_folder(synth):
    root, ids = synth
    report = check_dataset(root, progress=False)
    assert report.ok and report.problems == []
    assert report.patients == 4 and report.recordings == 16 and report.locations == {l: 4 for l in L.LOCATIONS[:4]}
    assert 4 * 3.0 * 4 <= report.seconds <= 4 * 4.0 * 4 + 1
    assert sum(report.class_counts["Murmur"].values()) == 4


def _set_cell(table: Path, pid: str, column: str, value: str) -> None:
    rows = list(csv.reader(table.open()))
    row = next(r for r in rows if r[0] == pid)
    row[rows[0].index(column)] = value
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1), newline="")


def test_broken_folder_reports_every_problem(synth):
    root, (a, b, c, d) = synth
    folder = root / "training_data"
    table = root / "training_data.csv"
    wave, rate = sf.read(str(folder / f"{a}_AV.wav"), dtype="float32")
    # patient a: audio faults, one per recording
    sf.write(str(folder / f"{a}_AV.wav"), wave[:1000], rate, subtype="PCM_16")           # truncated
    sf.write(str(folder / f"{a}_PV.wav"), np.stack([wave, wave], 1), rate)                # stereo
    sf.write(str(folder / f"{a}_TV.wav"), wave, 8000, subtype="PCM_16")                   # wrong rate
    (folder / f"{a}_MV.wav").write_bytes(b"not audio at all")                             # undecodable
    # patient b: header and segmentation faults
    (folder / f"{b}_AV.wav").unlink()
    (folder / f"{b}_PV.hea").unlink()
    (folder / f"{b}_TV.tsv").write_text("0\t1\n")
    _replace(folder / f"{b}_MV.hea", f"{b}_MV 1 4000", f"{b}_MV 1 2000")
    # patient c: labels
    _set_cell(table, c, "Outcome", "Sick")
    _replace(folder / f"{c}.txt", "#Campaign: ", "#Campaign: X")
    (folder / f"{c}_AV.tsv").write_text("0\t99\t1\n")
    # patient d: no header at all; plus stray files
    (folder / f"{d}.txt").unlink()
    shutil.copy(folder / f"{c}_PV.wav", folder / "12345_AV.wav")
    (folder / "notes.doc").write_text("?")
    (folder / "99999.txt").write_text("99999 0 4000\n")

    report = check_dataset(root, progress=False, workers=2)
    found: dict[tuple, str] = {}
    for p in report.problems:
        key = (p.path.name, p.line, p.severity)
        found[key] = found.get(key, "") + " | " + p.message

    def has(name: str, line: int | None, severity: str, text: str) -> None:
        message = found.get((name, line, severity))
        assert message is not None and text in message, (name, line, severity, text, sorted(found))

    has(f"{a}_AV.wav", None, "error", "1000 samples, header announces")
    has(f"{a}_PV.wav", None, "error", "expected mono audio, got 2 channels")
    has(f"{a}_TV.wav", None, "error", "sampling rate 8000 Hz, expected 4000 Hz")
    has(f"{a}_MV.wav", None, "error", "cannot decode audio")
    has(f"{b}.txt", 2, "error", f"audio for recording {b}_AV not found")
    has(f"{b}_PV.hea", None, "warning", "header file missing")
    has(f"{b}_TV.tsv", 1, "error", "expected 3 tab-separated columns")
    has(f"{b}_MV.hea", 1, "error", "sampling rate 2000 Hz differs")
    has("training_data.csv", 4, "error", "unknown label 'Sick' for 'Outcome'")
    has(f"{c}.txt", 25, "warning", "Campaign is 'X")
    has(f"{c}_AV.wav", None, "warning", "segmentation runs to 99.000 s, past the end")
    has("training_data.csv", 5, "error", f"patient {d} has no header file {d}.txt")
    has("99999.txt", None, "error", "patient 99999 has no row in training_data.csv")
    has("12345_AV.wav", None, "warning", "audio file not listed in any patient header")
    has("notes.doc", None, "warning", "unexpected file in the data folder")
    for name in (f"{d}_AV.wav", f"{d}_AV.hea", f"{d}_AV.tsv"):
        has(name, None, "warning", "not listed in any patient header")
    assert not report.ok and len(report.errors) >= 10
    assert report.patients == 5 and report.recordings == 12  # a, b, c, 99999 (no recordings); d unread

    data = json.loads(report.to_json())
    assert data["errors"] == len(report.errors) and data["warnings"] == len(report.warnings)
    assert {"file": "training_data/notes.doc", "line": None, "severity": "warning",
            "message": "unexpected file in the data folder"} in data["problems"]
    text = str(report)
    assert f"training_data/{b}_TV.tsv:1" in text and "error(s)" in text


def test_csv_and_txt_disagree(synth):
    root, (a, b, *_) = synth
    folder = root / "training_data"
    murmur = next(f.name for f in L.FEATURES)
    txt = folder / f"{a}.txt"
    value = next(line.split(": ", 1)[1] for line in txt.read_text().splitlines() if line.startswith("#Murmur:"))
    other = next(c for c in L.MURMUR.classes if c != value)
    _replace(txt, f"#Murmur: {value}", f"#Murmur: {other}")
    _set_cell(root / "training_data.csv", b, "Recording locations:", "AV")
    report = check_dataset(root, progress=False)
    [error] = report.errors
    assert (error.path, error.line) == (txt, 11)
    assert f"{murmur} is {other!r} here but {value!r} in training_data.csv line 2" == error.message
    [warning] = report.warnings
    assert warning.path.name == "training_data.csv" and warning.line == 3 and "'AV'" in warning.message


def test_labels_from_headers_when_the_csv_is_missing(synth):
    root, ids = synth
    (root / "training_data.csv").unlink()
    report = check_dataset(root, progress=False)
    assert report.ok and report.patients == 4
    assert [p.message for p in report.problems] == ["label table not found; labels taken from the patient headers"]
    assert sum(report.class_counts["Outcome"].values()) == 4


def test_records_file_and_flat_layout(synth):
    root, ids = synth
    (root / "RECORDS").write_text("".join(f"training_data/{i}_AV\n" for i in ids) + "training_data/1_XX\n")
    report = check_dataset(root, progress=False)
    assert [(p.path.name, p.line) for p in report.problems] == [("RECORDS", 5)]
    flat = check_dataset(root / "training_data", progress=False)  # the data folder itself
    assert flat.patients == 4 and flat.ok


def test_not_a_dataset(tmp_path):
    with pytest.raises(DataFormatError, match="dataset folder not found"):
        check_dataset(tmp_path / "missing")
    with pytest.raises(DataFormatError, match=r"no patient headers"):
        check_dataset(tmp_path)


def test_unreadable_table_header_is_one_error(synth):
    root, _ = synth
    (root / "training_data.csv").write_text("Patient ID\n1\n")
    report = check_dataset(root, progress=False)
    assert [(p.path.name, p.line, p.severity) for p in report.errors] == [("training_data.csv", 1, "error")]
