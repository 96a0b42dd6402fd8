"""``murmurlm data check | download | split`` through the console entry point (exit codes, output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_mirror import FakeMirror, build_mirror
from murmurlm.cli import main
from murmurlm.signal.synth import write_synthetic_circor


@pytest.fixture
def synth(tmp_path) -> Path:
    root = tmp_path / "circor"
    write_synthetic_circor(root, num_patients=3, seed=2, duration=(3.0, 4.0))
    return root


def test_help_lists_the_data_commands(capsys):
    assert main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("check", "download", "split"))


def test_check_clean_folder_exits_0(synth, tmp_path, capsys):
    report = tmp_path / "out" / "report.json"
    assert main(["data", "check", str(synth), "--json", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 patients, 12 recordings" in out and "no errors" in out
    data = json.loads(report.read_text())
    assert data["ok"] and data["patients"] == 3 and data["problems"] == []


def test_check_warnings_alone_exit_0(synth, capsys):
    (synth / "training_data" / "stray.bin").write_bytes(b"?")
    assert main(["data", "check", str(synth), "--no-progress"]) == 0
    assert "unexpected file" in capsys.readouterr().out


def test_check_errors_exit_1(synth, tmp_path, capsys):
    audio = next((synth / "training_data").glob("*_AV.wav"))
    audio.write_bytes(audio.read_bytes()[:100])
    report = tmp_path / "report.json"
    assert main(["data", "check", str(synth), "--json", str(report), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 error(s)" in out and audio.name in out
    [problem] = json.loads(report.read_text())["problems"]
    assert problem["file"] == f"training_data/{audio.name}" and problem["severity"] == "error"


def test_check_not_a_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'missing'}: dataset folder not found"


@pytest.mark.circor
def test_check_real_data(circor_root, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert main(["data", "check", str(circor_root), "--json", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "518 patients, 1729 recordings" in out and "50782_MV_1.tsv:1" in out and "Present 98" in out
    data = json.loads(report.read_text())
    assert (data["patients"], data["recordings"], data["errors"], data["warnings"]) == (518, 1729, 0, 1)


def test_download_from_a_mirror(tmp_path, capsys):
    files = {"training_data.csv": b"Patient ID\n", "training_data/1.txt": b"1 0 4000\n"}
    build_mirror(tmp_path / "mirror", files)
    target = tmp_path / "dest"
    with FakeMirror(tmp_path / "mirror") as mirror:
        args = ["data", "download", str(target), "--base-url", mirror.url, "--no-progress"]
        assert main(args) == 0
        assert "murmurlm data check" in capsys.readouterr().out
        assert (target / "training_data" / "1.txt").read_bytes() == files["training_data/1.txt"]
        assert (target / ".completed").is_file()
        mirror.requests.clear()
        assert main(args) == 0 and mirror.requests == []
        (tmp_path / "mirror" / "training_data" / "1.txt").write_bytes(b"changed")
        (target / "training_data" / "1.txt").unlink()
        assert main([*args, "--force"]) == 2
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert "training_data/1.txt: corrupted download refused" in line


def test_split_subcommand(tmp_path, capsys):
    root = tmp_path / "circor"
    write_synthetic_circor(root, num_patients=12, seed=0, duration=(2.0, 2.5))
    out = tmp_path / "split"
    assert main(["data", "split", str(root), "--out", str(out), "--seed", "1"]) == 0
    ids = [line for part in ("train", "val", "test") for line in (out / f"{part}.txt").read_text().splitlines()
           if line and not line.startswith("#")]
    assert len(ids) == len(set(ids)) == 12
    assert main(["data", "split", str(root), "--out", str(tmp_path / "k"), "--folds", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["fold0", "fold1", "fold2"]
    assert main(["data", "split", str(root), "--out", str(out), "--folds", "1"]) == 2  # usage error
