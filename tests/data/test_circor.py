"""The CirCor reader: parsers on the real files (skipped without them) and on broken ones."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from murmurlm.data import labels as L
from murmurlm.data.circor import (
    STATES,
    Problem,
    Segment,
    decode_audio,
    find_data_folder,
    load_circor,
    load_patient,
    parse_recording_name,
    read_audio,
    read_hea,
    read_label_table,
    read_patient_txt,
    read_tsv,
)
from murmurlm.errors import AudioError, DataFormatError
from murmurlm.signal.synth import write_synthetic_circor

# --------------------------------------------------------------------------------------------
# real data


@pytest.fixture(scope="module")
def real(circor_root):
    return load_circor(circor_root)


@pytest.mark.circor
def test_real_dataset_loads_whole(real, circor_root):
    folder = circor_root / "training_data"
    assert len(real.patients) == 518 == len(list(folder.glob("*.txt")))
    assert len(real.recordings) == 1729 == len(list(folder.glob("*.hea")))
    assert real.problems == []
    with open(circor_root / "training_data.csv", newline="") as f:
        assert [p.patient_id for p in real] == [row["Patient ID"] for row in csv.DictReader(f)]
    records = (circor_root / "RECORDS").read_text().split()
    assert sorted(f"training_data/{r.name}" for r in real.recordings) == sorted(records)


@pytest.mark.circor
def test_real_recording_names_and_locations(real):
    by_id = real.by_id()
    phc = [r.name for r in by_id["50216"].recordings if r.location == "Phc"]
    assert phc == ["50216_Phc_1", "50216_Phc_2"]
    assert [r.name for r in by_id["84690"].recordings if r.location == "Phc"] == ["84690_Phc"]
    assert [r.name for r in by_id["50782"].recordings] == [
        "50782_AV_1", "50782_AV_2", "50782_PV", "50782_TV", "50782_MV_1", "50782_MV_2"]
    for rec in real.recordings:
        pid, loc, n = parse_recording_name(rec.name)
        assert (pid, loc) == (rec.patient_id, rec.location)
        assert (n is None) == (rec.name.count("_") == 1)
    assert parse_recording_name("50782_MV_1") == ("50782", "MV", 1)
    for bad in ("50782", "50782_XX", "a_MV", "50782_MV_x"):
        with pytest.raises(ValueError, match="not a CirCor recording name"):
            parse_recording_name(bad)


@pytest.mark.circor
def test_real_hea_has_crlf_and_matches_audio(real):
    for rec in real.by_id()["50782"].recordings:
        raw = rec.header_path.read_bytes()
        assert raw.count(b"\r\n") == raw.count(b"\n") >= 2  # CRLF throughout
        hea = read_hea(rec.header_path)
        assert (hea.record_name, hea.num_signals, hea.sampling_rate) == (rec.name, 1, 4000)
        assert hea.file_name == rec.name + ".wav" and hea.location == rec.location
        wave = rec.load_audio()
        assert wave.dtype == np.float32 and wave.shape == (hea.num_samples,)
        assert np.abs(wave).max() <= 1.0 and np.isfinite(wave).all()


@pytest.mark.circor
def test_real_state_28_row_kept_as_unannotated(real, caplog):
    rec = next(r for r in real.recordings if r.name == "50782_MV_1")
    segments, problems = read_tsv(rec.segmentation_path)
    assert segments == [Segment(0.0, 0.0, 0)]
    assert len(problems) == 1 and problems[0].line == 1 and problems[0].severity == "warning"
    assert "'28'" in problems[0].message and "50782_MV_1.tsv:1" in str(problems[0])
    with caplog.at_level(logging.WARNING, logger="murmurlm.data.circor"):
        assert rec.load_segments() == segments
    assert "unknown state '28'" in caplog.text


@pytest.mark.circor
def test_real_segmentations_use_documented_states(real):
    unknown = 0
    for rec in real.by_id()["50782"].recordings + real.by_id()["2530"].recordings:
        segments, problems = read_tsv(rec.segmentation_path)
        unknown += len(problems)
        assert all(s.state in STATES and 0 <= s.start <= s.end for s in segments)
        assert all(a.start <= b.start for a, b in zip(segments, segments[1:]))
    assert unknown == 1


@pytest.mark.circor
def test_real_labels_csv_equal_txt_and_nan_fields(real, circor_root):
    folder = circor_root / "training_data"
    for patient in real:
        from_txt, _ = load_patient(folder, patient.patient_id)  # labels from the '#' lines
        assert from_txt.labels == patient.labels
        assert from_txt.murmur_locations == patient.murmur_locations
        if patient.labels["Murmur"] != "Present":
            assert all(patient.labels[f.name] == L.NO_MURMUR for f in (*L.SYSTOLIC, *L.DIASTOLIC))
            assert patient.murmur_locations == ()
        assert L.make_consistent(patient.labels) == patient.labels
    absent = real.by_id()["2530"]
    assert absent.labels["Murmur"] == "Absent" and absent.labels["Systolic murmur timing"] == "nan"
    assert not absent.has_murmur("systolic") and absent.metadata["Age"] == "Child"
    assert read_patient_txt(folder / "50782.txt").fields["Age"] == "nan"


@pytest.mark.circor
def test_real_flac_read_in_place_of_wav(real):
    rec = real.recordings[0]
    assert rec.audio_path.suffix == ".flac" and rec.header_path.read_text().split()[4].endswith(".wav")


# --------------------------------------------------------------------------------------------
# broken files


@pytest.fixture
def synth(tmp_path) -> Path:
    root = tmp_path / "circor"
    write_synthetic_circor(root, num_patients=3, seed=0, duration=(3.0, 4.0))
    return root


def _first(root: Path) -> tuple[Path, str]:
    folder = root / "training_data"
    return folder, sorted(p.stem for p in folder.glob("*.txt"))[0]


def _raises(exc, path: Path, line: int | None, fn, *args, **kw) -> DataFormatError:
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    err = info.value
    assert err.path.name == Path(path).name and err.line == line
    where = f"{err.path}:{line}: " if line is not None else f"{err.path}: "
    assert str(err).startswith(where)
    return err


def test_synthetic_folder_reads_back(synth):
    data = load_circor(synth)
    assert len(data) == 3 and data.problems == [] and len(data.recordings) == 12
    assert find_data_folder(synth) == synth / "training_data"
    assert find_data_folder(synth / "training_data") == synth / "training_data"


def test_missing_files(synth, tmp_path):
    folder, pid = _first(synth)
    _raises(DataFormatError, tmp_path / "nowhere", None, find_data_folder, tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    _raises(DataFormatError, empty, None, find_data_folder, empty)

    (folder / f"{pid}_AV.hea").unlink()
    (folder / f"{pid}_PV.tsv").unlink()
    patient, problems = load_patient(folder, pid)
    assert sorted(p.path.name for p in problems) == [f"{pid}_AV.hea", f"{pid}_PV.tsv"]
    assert patient.recordings[0].num_samples is None and patient.recordings[1].load_segments() == []
    assert patient.recordings[0].load_audio().size > 0

    (folder / f"{pid}_MV.wav").unlink()
    err = _raises(DataFormatError, folder / f"{pid}.txt", 5, load_circor, synth)
    assert f"{pid}_MV not found" in err.message
    skipped = load_circor(synth, on_error="skip")
    assert len(skipped) == 2 and [p.severity for p in skipped.problems if p.severity == "error"] == ["error"]

    (folder / f"{pid}.txt").unlink()
    err = _raises(DataFormatError, folder / f"{pid}.txt", None, load_circor, synth)
    assert "file not found" in err.message
    (synth / "training_data.csv").unlink()  # labels then come from the .txt headers
    assert len(load_circor(synth)) == 2


def test_txt_without_csv_row_is_reported(synth):
    folder, pid = _first(synth)
    shutil.copy(folder / f"{pid}.txt", folder / "99999.txt")
    data = load_circor(synth)
    assert len(data) == 3 and [p.path.name for p in data.problems] == ["99999.txt"]
    with pytest.raises(DataFormatError, match="patient 42 has no row"):
        load_circor(synth, patient_ids=["42"])
    with pytest.raises(DataFormatError, match="not in this dataset: 42"):
        data.subset(["42"])


def _wav(path: Path, data: np.ndarray, rate: int = 4000, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def test_audio_errors(synth, tmp_path):
    folder, pid = _first(synth)
    rec = load_circor(synth).patients[0].recordings[0]
    good = rec.load_audio()

    _wav(rec.audio_path, good[: len(good) // 2])  # truncated
    err = _raises(AudioError, rec.audio_path, None, rec.load_audio)
    assert f"{len(good) // 2} samples, header announces {len(good)}" in err.message

    rec.audio_path.write_bytes(b"")
    assert "cannot decode audio" in _raises(AudioError, rec.audio_path, None, rec.load_audio).message
    rec.audio_path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert "cannot decode audio" in _raises(AudioError, rec.audio_path, None, rec.load_audio).message

    empty = _wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    assert "no samples" in _raises(AudioError, empty, None, read_audio, empty).message

    fast = _wav(tmp_path / "fast.wav", good, rate=8000)
    err = _raises(AudioError, fast, None, read_audio, fast, expected_rate=4000)
    assert "sampling rate 8000 Hz, expected 4000 Hz" in err.message

    stereo = _wav(tmp_path / "stereo.wav", np.stack([good, good / 2], axis=1))
    assert "expected mono audio, got 2 channels" in _raises(AudioError, stereo, None, read_audio, stereo).message
    np.testing.assert_allclose(read_audio(stereo, mono=True), 0.75 * good, atol=1e-4)

    nan = good.copy()
    nan[10] = np.nan
    bad = _wav(tmp_path / "nan.wav", nan, subtype="FLOAT")
    assert "NaN or infinite" in _raises(AudioError, bad, None, read_audio, bad).message

    many = _wav(tmp_path / "many.wav", np.stack([good, good], axis=1), rate=8000)
    err = _raises(AudioError, many, None, read_audio, many, expected_rate=4000, expected_samples=5)
    assert err.message.count(";") == 2  # channels, rate and length: every issue in one message
    data, rate = decode_audio(many)
    assert data.shape == (len(good), 2) and rate == 8000

    missing = tmp_path / "missing.wav"
    assert "not found" in _raises(AudioError, missing, None, read_audio, missing).message
    assert issubclass(AudioError, DataFormatError)


@pytest.mark.parametrize("text, line, message", [
    ("", None, "empty header"),
    ("# only a comment\r\n", None, "empty header"),
    ("1_AV 1\r\n", 1, "record line needs"),
    ("\r\n1_AV x 4000 10\r\n", 2, "non-numeric field"),
    ("1_AV 1 4000 ten\r\n", 1, "non-numeric field"),
    ("1_AV 1 -4000 10\r\n", 1, "impossible values"),
    ("1_AV 1 nan 10\r\n", 1, "impossible values"),
    ("1_AV 0 4000 10\r\n", 1, "impossible values"),
    ("1_AV 1 4000 -1\r\n", 1, "impossible values"),
])
def test_malformed_hea(tmp_path, text, line, message):
    path = tmp_path / "1_AV.hea"
    path.write_text(text, newline="")
    assert message in _raises(DataFormatError, path, line, read_hea, path).message


def test_hea_variants(tmp_path):
    path = tmp_path / "1_AV.hea"
    path.write_bytes(b"# comment\n1_AV/2 1 4000/1(0) \n")
    hea = read_hea(path)
    assert (hea.record_name, hea.sampling_rate, hea.num_samples, hea.file_name) == ("1_AV", 4000, None, None)
    path.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in _raises(DataFormatError, path, None, read_hea, path).message


@pytest.mark.parametrize("text, line, message", [
    ("0\t1\n1\t2\t1\t0\n", 1, "expected 3 tab-separated columns"),
    ("0\t1\t1\n\n1\t2\n", 3, "got 2"),
    ("0\tx\t1\n", 1, "non-numeric value"),
    ("0\tinf\t1\n", 1, "non-finite value"),
    ("0\t1\tnan\n", 1, "non-finite value"),
    ("-1\t1\t1\n", 1, "0 <= start <= end"),
    ("0\t1\t1\n2\t1\t2\n", 2, "0 <= start <= end"),
])
def test_malformed_tsv(tmp_path, text, line, message):
    path = tmp_path / "1_AV.tsv"
    path.write_text(text)
    assert message in _raises(DataFormatError, path, line, read_tsv, path).message


def test_tsv_states(tmp_path):
    path = tmp_path / "1_AV.tsv"
    path.write_text("0 0.5 1\r\n0.5\t0.8\t2.0\n0.8\t1\t7\n1\t1.2\t2.5\n")  # spaces, CRLF, 2.0 are fine
    segments, problems = read_tsv(path)
    assert [s.state for s in segments] == [1, 2, 0, 0]
    assert [p.line for p in problems] == [3, 4] and all(isinstance(p, Problem) for p in problems)
    assert segments[1].duration == pytest.approx(0.3)


@pytest.mark.parametrize("text, line, message", [
    ("", 1, "empty patient header"),
    ("1 1\n", 1, "first line must be"),
    ("1 x 4000\n", 1, "number of recordings must be a number"),
    ("1 0 inf\n", 1, "sampling rate must be finite"),
    ("1 0 4000.5\n", 1, "impossible count or sampling rate"),
    ("1 -1 4000\n", 1, "impossible count or sampling rate"),
    ("1 1 4000\nAV 1_AV.hea 1_AV.wav\n", 2, "recording line needs"),
    ("1 1 4000\nXX 1_XX.hea 1_XX.wav 1_XX.tsv\n", 2, "unknown location 'XX'"),
    ("1 1 4000\nAV ../1_AV.hea 1_AV.wav 1_AV.tsv\n", 2, "must be a plain name"),
    ("1 1 4000\nAV 1_AV.hea 1_AV.wav 1_AV.tsv\n#Murmur Absent\n", 3, "needs '#Key: value'"),
    ("1 2 4000\nAV 1_AV.hea 1_AV.wav 1_AV.tsv\n", 1, "announces 2 recordings, 1 listed"),
])
def test_malformed_patient_txt(tmp_path, text, line, message):
    path = tmp_path / "1.txt"
    path.write_text(text)
    assert message in _raises(DataFormatError, path, line, read_patient_txt, path).message


def test_patient_txt_fields_and_lines(synth):
    folder, pid = _first(synth)
    header = read_patient_txt(folder / f"{pid}.txt")
    assert header.patient_id == pid and header.sampling_rate == 4000
    assert header.recording_lines == (2, 3, 4, 5)
    assert header.field_lines["Murmur"] == 11 and header.fields["Outcome"] in L.OUTCOME.classes


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_unknown_labels_name_file_and_line(synth):
    folder, pid = _first(synth)
    table = synth / "training_data.csv"
    rows = list(csv.reader(table.open()))
    col = rows[0].index("Outcome")
    rows[2][col] = "Sick"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    err = _raises(DataFormatError, table, 3, load_circor, synth)
    assert "unknown label 'Sick' for 'Outcome'; valid: Abnormal, Normal" in err.message

    txt = folder / f"{pid}.txt"
    _rewrite(txt, "#Murmur locations: ", "#Murmur locations: XV+")
    err = _raises(DataFormatError, txt, 12, load_patient, folder, pid)
    assert "unknown location 'XV'" in err.message
    with pytest.raises(L.LabelError):
        L.feature("Systolic murmur pitch").normalise("Loud")


def test_header_inconsistencies(synth):
    folder, pid = _first(synth)
    hea = folder / f"{pid}_AV.hea"
    _rewrite(hea, " 4000 ", " 2000 ")
    err = _raises(DataFormatError, hea, 1, load_patient, folder, pid)
    assert "2000 Hz differs" in err.message
    _rewrite(folder / f"{pid}.txt", f"{pid} 4", "777 4")
    assert "header names patient 777" in _raises(DataFormatError, folder / f"{pid}.txt", 1,
                                                 load_patient, folder, pid).message


@pytest.mark.parametrize("edit, line, message", [
    (lambda rows: rows[1].__setitem__(0, ""), 2, "empty Patient ID"),
    (lambda rows: rows[1].__setitem__(0, "12a"), 2, "Patient ID must be a number"),
    (lambda rows: rows[2].pop(), 3, "wrong number of columns"),
    (lambda rows: rows[3].append("extra"), 4, "wrong number of columns"),
    (lambda rows: rows.__setitem__(3, list(rows[1])), 4, "appears twice"),
    (lambda rows: rows[0].__setitem__(rows[0].index("Outcome"), "Result"), 1, "missing column(s): Outcome"),
    (lambda rows: rows[0].__setitem__(0, "ID"), 1, "no 'Patient ID' column"),
])
def test_malformed_label_table(synth, edit, line, message):
    table = synth / "training_data.csv"
    rows = list(csv.reader(table.open()))
    edit(rows)
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    assert message in _raises(DataFormatError, table, line, read_label_table, table).message


def test_label_table_collects_every_bad_row(synth):
    table = synth / "training_data.csv"
    original = table.read_text()
    lines = original.splitlines()
    lines[1] = "," + lines[1].split(",", 1)[1]
    lines[3] = lines[3] + ",extra"
    table.write_text("\n".join(lines) + "\n")
    problems: list[Problem] = []
    where: dict[str, int] = {}
    rows = read_label_table(table, problems=problems, lines=where)
    assert [(p.line, p.severity) for p in problems] == [(2, "error"), (4, "error")]
    assert list(where.values()) == [3] and len(rows) == 1
    lines = original.splitlines()
    lines[2] = lines[2] + "x" * 200_000  # over the csv module's field size limit
    table.write_text("\n".join(lines) + "\n")
    assert "malformed CSV" in _raises(DataFormatError, table, 3, read_label_table, table).message


def test_dataset_api(synth):
    data = load_circor(synth)
    ids = [p.patient_id for p in data]
    sub = data.subset(ids[::-1][:2])
    assert [p.patient_id for p in sub] == ids[::-1][:2] and sub.root == data.root and len(sub) == 2
    assert load_circor(synth, patient_ids=ids[1:]).by_id().keys() == set(ids[1:])
    rec = data.patients[0].recordings[0]
    assert rec.duration == pytest.approx(rec.num_samples / 4000) == pytest.approx(rec.load_audio().size / 4000)
    segments = rec.load_segments()
    assert segments and segments[-1].end <= rec.duration + 1e-3 and {s.state for s in segments} <= set(STATES)
    assert data.patients[0].sampling_rate == 4000 and set(data.patients[0].metadata) >= {"Age", "Sex"}
    with pytest.raises(ValueError, match="on_error"):
        load_circor(synth, on_error="ignore")
