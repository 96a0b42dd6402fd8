"""murmurlm.data.manifest: a CirCor folder parsed once, manifests that rebuild the same dataset,
refreshed when the folder changes, and the stages that take them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from murmurlm.data import circor
from murmurlm.data.circor import load_circor
from murmurlm.data.manifest import (circor_manifest, folder_fingerprint, load_manifest, open_circor,
                                    prepare_circor)
from murmurlm.errors import DataFormatError
from murmurlm.signal.synth import write_synthetic_circor


@pytest.fixture()
def root(tmp_path) -> Path:
    folder = tmp_path / "circor"
    write_synthetic_circor(folder, num_patients=5, seed=4, duration=(2.0, 3.0))
    return folder.resolve()


def test_the_manifest_rebuilds_exactly_what_load_circor_reads(root, tmp_path):
    manifest = prepare_circor(root, tmp_path / "m")
    parsed, rebuilt = load_circor(root, on_error="skip"), load_manifest(manifest)
    assert rebuilt.patients == parsed.patients and rebuilt.root == root
    lines = [json.loads(x) for x in (manifest / "recordings.jsonl").read_text().splitlines()]
    assert len(lines) == len(parsed.recordings)
    first = lines[0]
    assert {"sampling_rate", "num_samples", "duration", "segmentation", "audio", "patient_id"} <= set(first)
    assert not Path(first["audio"]).is_absolute()  # relative to the folder it describes
    summary = json.loads((manifest / "manifest.json").read_text())
    assert summary["patients"] == 5 and summary["root"] == str(root) and summary["errors"] == 0


def test_loading_a_fresh_manifest_does_not_parse_the_folder(root, tmp_path, monkeypatch):
    manifest = prepare_circor(root, tmp_path / "m")

    def no_parsing(*args, **kwargs):
        raise AssertionError("the folder was parsed again")

    for name in ("read_patient_txt", "read_hea", "read_label_table", "load_circor"):
        monkeypatch.setattr(circor, name, no_parsing)
    monkeypatch.setattr("murmurlm.data.manifest.load_circor", no_parsing)
    assert len(load_manifest(manifest).patients) == 5
    assert len(open_circor(manifest, patient_ids=[load_manifest(manifest).patients[0].patient_id]).patients) == 1


def test_a_changed_folder_refreshes_the_manifest(root, tmp_path):
    manifest = prepare_circor(root, tmp_path / "m")
    before = folder_fingerprint(root)
    victim = sorted((root / "training_data").glob("*.txt"))[0]
    pid = victim.stem
    table = root / "training_data.csv"
    rows = table.read_text().splitlines()
    table.write_text("\n".join(r for r in rows if not r.startswith(pid + ",")) + "\n")  # drop one patient
    assert folder_fingerprint(root) != before
    with pytest.raises(DataFormatError, match="stale"):
        load_manifest(manifest, refresh=False)
    refreshed = load_manifest(manifest)
    assert pid not in refreshed.by_id() and len(refreshed.patients) == 4
    assert json.loads((manifest / "manifest.json").read_text())["fingerprint"] == folder_fingerprint(root)


def test_touching_a_file_changes_the_fingerprint(root):
    before = folder_fingerprint(root)
    some = sorted((root / "training_data").glob("*.tsv"))[0]
    stat = some.stat()
    os.utime(some, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert folder_fingerprint(root) != before


def test_prepare_checks_the_audio_against_the_header(root, tmp_path):
    hea = sorted((root / "training_data").glob("*.hea"))[0]
    first, *rest = hea.read_text().splitlines()
    parts = first.split()
    parts[3] = str(int(parts[3]) + 5)  # the .hea now claims 5 more samples than the file has
    hea.write_text("\n".join([" ".join(parts), *rest]) + "\n")
    manifest = prepare_circor(root, tmp_path / "m")
    problems = [json.loads(x) for x in (manifest / "problems.jsonl").read_text().splitlines()]
    assert any(p["path"].endswith(hea.stem + ".flac") or p["path"].endswith(hea.stem + ".wav") for p in problems)
    assert any("samples, the .hea says" in p["message"] for p in problems)


def test_circor_manifest_reuses_a_fresh_one_and_replaces_one_of_another_folder(root, tmp_path):
    out = tmp_path / "m"
    circor_manifest(root, out)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert len(circor_manifest(root, out).patients) == 5
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # reused, not prepared again
    other = tmp_path / "other"
    write_synthetic_circor(other, num_patients=3, seed=9, duration=(2.0, 2.0))
    assert len(circor_manifest(other, out).patients) == 3
    assert json.loads((out / "manifest.json").read_text())["root"] == str(other.resolve())


def test_open_circor_takes_a_folder_a_manifest_or_a_dataset(root, tmp_path):
    manifest = prepare_circor(root, tmp_path / "m")
    dataset = load_circor(root, on_error="skip")
    ids = [p.patient_id for p in dataset.patients][:2]
    for source in (root, manifest, dataset):
        picked = open_circor(source, patient_ids=[*ids, "99999"])
        assert [p.patient_id for p in picked.patients] == ids
        assert any("99999" in p.message and p.severity == "error" for p in picked.problems)
    assert open_circor(dataset) is dataset


def test_a_broken_manifest_names_the_file_and_line(root, tmp_path):
    manifest = prepare_circor(root, tmp_path / "m")
    lines = (manifest / "patients.jsonl").read_text().splitlines()
    lines[1] = lines[1][:20]
    (manifest / "patients.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:
        load_manifest(manifest)
    assert "patients.jsonl" in str(err.value) and err.value.line == 2
    with pytest.raises(DataFormatError, match="not a manifest folder"):
        load_manifest(tmp_path)


def test_the_cli_prepares_and_train_reads_the_manifest(root, tmp_path):
    from murmurlm.cli import main

    assert main(["data", "prepare", str(root), "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    assert main(["train", "--data", str(tmp_path / "m"), "--out", str(tmp_path / "run"), "--no-progress",
                 "epochs=1", "crop_seconds=2.0", "window_hop_seconds=2.0", "model.channels=[8,16]",
                 f"cache_dir={tmp_path / 'cache'}"]) == 0
    assert (tmp_path / "run" / "best.pt").is_file()
