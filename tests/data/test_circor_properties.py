"""Property test: whatever damage a file takes, the reader raises only its documented errors
(DataFormatError, with AudioError under it, and LabelError), and check_dataset raises nothing and
flags as an error whatever makes the loader fail.

Real files (one patient of the CirCor copy, FLAC audio, CRLF headers, the state-28 row) and
synthetic ones (WAV audio) are mutated byte-wise and token-wise in place, one file per example.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from murmurlm.data.check import check_dataset
from murmurlm.data.circor import load_circor, read_audio, read_hea, read_label_table, read_patient_txt, read_tsv
from murmurlm.data.labels import LabelError
from murmurlm.errors import DataFormatError
from murmurlm.signal.synth import write_synthetic_circor

DOCUMENTED = (DataFormatError, LabelError)  # AudioError is a DataFormatError

# Fragments that parsers meet in broken files: separators, numbers that overflow or are not finite,
# unicode digits, path tricks, labels and locations.
TOKENS = ["", " ", "\t", "\r\n", "\n", "#", ":", "+", ",", '"', "nan", "inf", "-inf", "-1", "0", "1e400",
          "4000", "99999999999999999999", "x", "\x00", "/", "../", "é", "١٢", "1_0", "²", "AV", "Phc", "XX",
          "_1", "Present", "Holosystolic", "I/VI", "[/]", "[bold]"]

_position = st.floats(0.0, 1.0)
_ops = st.one_of(
    st.tuples(st.just("token"), _position, _position, st.sampled_from(TOKENS)),  # replace a span with a token
    st.tuples(st.just("bytes"), _position, st.integers(0, 8), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), _position),
    st.tuples(st.just("line"), _position, st.sampled_from(["duplicate", "delete", "swap"])),
)


def mutate(data: bytes, ops) -> bytes:
    for op in ops:
        n = len(data)
        if op[0] == "token":
            start = int(op[1] * n)
            end = min(n, start + int(op[2] * 12))
            data = data[:start] + op[3].encode() + data[end:]
        elif op[0] == "bytes":
            start = int(op[1] * n)
            data = data[:start] + op[3] + data[start + op[2]:]
        elif op[0] == "truncate":
            data = data[: int(op[1] * n)]
        else:
            lines = data.splitlines(keepends=True)
            if not lines:
                continue
            i = min(len(lines) - 1, int(op[1] * len(lines)))
            if op[2] == "duplicate":
                lines.insert(i, lines[i])
            elif op[2] == "delete":
                del lines[i]
            else:
                lines[i], lines[-1] = lines[-1], lines[i]
            data = b"".join(lines)
    return data


def _parser(path: Path):
    if path.name == "training_data.csv":
        return read_label_table
    return {".txt": read_patient_txt, ".hea": read_hea, ".tsv": read_tsv}.get(
        path.suffix, lambda p: read_audio(p, expected_rate=4000))


@pytest.fixture(scope="module", params=["synthetic", "real"])
def folder(request, tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp(f"fuzz_{request.param}")
    if request.param == "synthetic":
        ids = write_synthetic_circor(root, num_patients=2, seed=5, locations=("AV", "MV", "MV"),
                                     duration=(2.0, 3.0))
        pid, stem = ids[0], f"{ids[0]}_MV_1"
        audio = f"{stem}.wav"
    else:
        source: Path = request.getfixturevalue("circor_root")
        pid, stem = "50782", "50782_MV_1"  # state 28; _1/_2 suffixes; FLAC audio
        audio = f"{stem}.flac"
        (root / "training_data").mkdir()
        with open(source / "training_data.csv", newline="") as f:
            rows = [r for r in csv.reader(f) if r[0] in ("Patient ID", pid)]
        with open(root / "training_data.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
        for path in (source / "training_data").glob(f"{pid}[._]*"):
            shutil.copy(path, root / "training_data" / path.name)
    data = root / "training_data"
    targets = [root / "training_data.csv", data / f"{pid}.txt", data / f"{stem}.hea", data / f"{stem}.tsv",
               data / audio]
    assert load_circor(root).patients and all(t.is_file() for t in targets)
    return root, targets


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_files_raise_only_documented_errors(folder, data):
    root, targets = folder
    path = data.draw(st.sampled_from(targets), label="file")
    original = path.read_bytes()
    mutated = mutate(original, data.draw(st.lists(_ops, min_size=1, max_size=4), label="ops"))
    path.write_bytes(mutated)
    try:
        try:
            _parser(path)(path)
        except DOCUMENTED:
            pass
        try:
            for recording in load_circor(root).recordings:
                recording.load_audio()
                recording.load_segments()
            loaded = True
        except DOCUMENTED:
            loaded = False
        report = check_dataset(root, progress=False, workers=1)  # never raises for a damaged file
        event(f"{path.suffix}: loader {'ok' if loaded else 'failed'}, check {'ok' if report.ok else 'errors'}")
        if not loaded:
            assert not report.ok, "the loader failed on a folder that the check passed"
        report.to_json()
        report.render()
    finally:
        path.write_bytes(original)
