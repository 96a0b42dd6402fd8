"""``murmurlm predict``: one file (summary, --report, --json, --plot, --out), folders of files with a
bad one skipped, a CirCor folder, and the exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from pathlib import Path

from murmurlm.cli import main
from murmurlm.data import labels as L
from predict_helpers import save_tiny_checkpoint, synthetic_wave


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    sf.write(folder / "a.wav", synthetic_wave(6.0, 4000, seed=0), 4000)
    wave = synthetic_wave(6.0, 4000, seed=1)
    sf.write(folder / "b.flac", np.stack([wave, wave], axis=1), 4000, format="FLAC")
    return folder


def test_single_file_summary(ckpt, recordings, capsys):
    assert main(["predict", "--model", str(ckpt), str(recordings / "a.wav")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == list(L.FEATURE_NAMES)


def test_single_file_report_and_plot(ckpt, recordings, tmp_path, capsys):
    png = tmp_path / "figs" / "a.png"
    png.parent.mkdir()
    assert main(["predict", "--model", str(ckpt), str(recordings / "a.wav"), "--report", "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("murmurlm report for a.wav: 6.0 s at 4000 Hz")
    assert "heart rate:" in text and "quality:" in text
    for name in L.FEATURE_NAMES:
        assert name in text
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_single_file_json_and_csv(ckpt, recordings, tmp_path, capsys):
    from murmurlm.evaluate.predictions import read_predictions

    out = tmp_path / "one.csv"
    assert main(["predict", "--model", str(ckpt), str(recordings / "b.flac"), "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in report["features"]] == list(L.FEATURE_NAMES)
    assert "mixed 2 channels down to mono" in report["warnings"]
    frame = read_predictions(out)
    assert list(frame.index) == ["b"]
    assert frame.loc["b", "Murmur"] == report["labels"]["Murmur"]


def test_folder_with_a_bad_file_skips_it(ckpt, recordings, tmp_path, capsys):
    from murmurlm.evaluate.predictions import read_predictions

    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("a.wav", "b.flac"):
        (folder / name).write_bytes((recordings / name).read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    (folder / "notes.txt").write_text("recorded on Monday\n")  # not a CirCor patient header
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(ckpt), str(folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    # docs/serve.md: "skipped: PATH: reason", the file named, one line per skipped file
    [line] = [ln for ln in err.splitlines() if ln.startswith("skipped:")]
    assert line.startswith(f"skipped: {folder / 'broken.wav'}: ")
    assert len(line) > len(f"skipped: {folder / 'broken.wav'}: ") + 5  # a reason follows the name
    assert sorted(read_predictions(out).index) == ["a", "b"]


def test_nothing_predictable_is_an_error(ckpt, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    assert main(["predict", "--model", str(ckpt), str(bad), str(empty)]) == 2
    err = capsys.readouterr().err
    assert "bad.wav" in err and "empty.flac" in err and "none of the 2 file(s)" in err
    assert main(["predict", "--model", str(ckpt), str(tmp_path / "missing.wav")]) == 2
    assert main(["predict", "--model", str(ckpt), str(bad), "--report"]) == 2
    assert "not a readable audio file" in capsys.readouterr().err


def test_report_needs_one_file(ckpt, recordings, capsys):
    assert main(["predict", "--model", str(ckpt), str(recordings), "--report"]) == 2
    assert "single audio file" in capsys.readouterr().err


def test_missing_checkpoint(tmp_path, recordings, capsys):
    assert main(["predict", "--model", str(tmp_path / "none.pt"), str(recordings / "a.wav")]) == 2
    assert "none.pt" in capsys.readouterr().err


def test_circor_folder_to_csv(ckpt, synthetic_circor, tmp_path, capsys):
    from murmurlm.data.circor import load_circor
    from murmurlm.evaluate.predictions import read_predictions

    out = tmp_path / "circor.csv"
    assert main(["predict", "--model", str(ckpt), str(synthetic_circor), "--out", str(out)]) == 0
    frame = read_predictions(out)
    assert sorted(frame.index) == sorted(p.patient_id for p in load_circor(synthetic_circor))
    assert "P(Murmur=Present)" in frame.columns


def test_circor_folder_to_challenge_files(ckpt, synthetic_circor, tmp_path, capsys):
    """--format challenge: one Challenge 2022 output file per patient, holding the same Murmur and
    Outcome labels and probabilities as the CSV."""
    from murmurlm.data.circor import load_circor
    from murmurlm.evaluate.challenge import challenge_probabilities, read_challenge_output
    from murmurlm.evaluate.predictions import prob_columns, read_predictions

    out = tmp_path / "challenge"
    assert main(["predict", "--model", str(ckpt), str(synthetic_circor), "--format", "challenge",
                 "--out", str(out)]) == 0
    assert main(["predict", "--model", str(ckpt), str(synthetic_circor), "--out", str(tmp_path / "p.csv")]) == 0
    frame = read_predictions(tmp_path / "p.csv")
    ids = sorted(p.patient_id for p in load_circor(synthetic_circor))
    assert sorted(p.stem for p in out.glob("*.csv")) == ids
    for pid in ids:
        got = read_challenge_output(out / f"{pid}.csv")
        assert got.patient_id == pid
        assert got.label(("Present", "Unknown", "Absent")) == frame.loc[pid, "Murmur"]
        assert got.label(("Abnormal", "Normal")) == frame.loc[pid, "Outcome"]
        probs = challenge_probabilities(got)
        np.testing.assert_allclose(probs["Murmur"], frame.loc[pid, prob_columns("Murmur")].to_numpy(float), atol=1e-6)
    assert main(["predict", "--model", str(ckpt), str(synthetic_circor), "--format", "challenge"]) != 0
    assert "--out FOLDER" in capsys.readouterr().err


def test_circor_folder_patient_list(ckpt, synthetic_circor, tmp_path, capsys):
    from murmurlm.data.circor import load_circor
    from murmurlm.evaluate.predictions import read_predictions

    ids = [p.patient_id for p in load_circor(synthetic_circor)][:3]
    listing = tmp_path / "few.txt"
    listing.write_text("# three patients\n" + "\n".join(ids) + "\n")
    out = tmp_path / "few.csv"
    assert main(["predict", "--model", str(ckpt), str(synthetic_circor), "--patients", str(listing),
                 "--out", str(out)]) == 0
    assert sorted(read_predictions(out).index) == sorted(ids)
    listing.write_text("99999999\n")
    assert main(["predict", "--model", str(ckpt), str(synthetic_circor), "--patients", str(listing)]) == 2
    assert "99999999" in capsys.readouterr().err



def test_ensemble_command_then_predict_with_it(ckpt, recordings, tmp_path, capsys):
    ens = tmp_path / "ens.pt"
    assert main(["ensemble", str(ckpt), str(ckpt), "--out", str(ens)]) == 0
    assert main(["predict", "--model", str(ens), str(recordings / "a.wav"), "--json"]) == 0
    with_ensemble = capsys.readouterr().out
    assert main(["predict", "--model", str(ckpt), str(recordings / "a.wav"), "--json"]) == 0
    assert capsys.readouterr().out == with_ensemble  # two copies of one model predict what it predicts
    assert main(["ensemble", str(ckpt), "--out", str(tmp_path / "one.pt")]) == 2
    assert "two or more" in capsys.readouterr().err
    assert main(["ensemble", str(ckpt), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def patient_files(tmp_path_factory):
    """One synthetic patient at four sites: a loud murmur at TV and MV, none at AV and PV."""
    from murmurlm.signal.synth import MurmurSpec, synth_pcg

    folder = tmp_path_factory.mktemp("patient")
    for i, site in enumerate(("AV", "PV", "TV", "MV")):
        murmurs = [MurmurSpec(grade="III/VI")] if site in ("TV", "MV") else []
        sf.write(folder / f"50001_{site}.wav", synth_pcg(8.0, 4000, heart_rate=80, murmurs=murmurs, seed=i).waveform, 4000)
    return folder


def test_site_names_are_parsed_from_items_and_circor_names(tmp_path):
    from murmurlm.cli.predict import parse_patient_inputs
    from murmurlm.errors import MurmurlmError

    assert parse_patient_inputs(["PV=x.wav", "dir/123_TV_2.flac", "Phc=y.wav"]) == [
        ("PV", Path("x.wav")), ("TV", Path("dir/123_TV_2.flac")), ("Phc", Path("y.wav"))]
    with pytest.raises(MurmurlmError, match="which site"):
        parse_patient_inputs(["recording.wav"])
    with pytest.raises(MurmurlmError, match="unknown site 'XX'"):
        parse_patient_inputs(["XX=a.wav"])


def test_a_patient_from_four_sites_says_where_the_murmur_is(patient_files, tmp_path, capsys):
    """The packaged default on one patient's four recordings: one answer, the murmur heard at the two
    sites that have it, the most audible one among them, a figure, a CSV row that reads back."""
    from murmurlm.evaluate.predictions import read_predictions

    files = {s: str(patient_files / f"50001_{s}.wav") for s in ("AV", "PV", "TV", "MV")}
    assert main(["predict", "--patient", *files.values(), "--json", "--plot", str(tmp_path / "p.png"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"]["Murmur"] == "Present"
    assert set(report["murmur_locations"]["label"].split("+")) == {"TV", "MV"}
    assert report["most_audible_location"] in ("TV", "MV")
    assert [s["site"] for s in report["sites"]] == ["AV", "PV", "TV", "MV"]
    assert {s["site"] for s in report["sites"] if s["heard"]} == {"TV", "MV"}
    assert set(report["murmur_locations"]["sites"]) == {"AV", "PV", "TV", "MV"}
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    row = read_predictions(tmp_path / "p.csv").loc["50001"]
    assert row["Murmur locations"] == "TV+MV" and row["Murmur"] == "Present"


def test_a_bad_file_inside_a_patient_is_named_and_the_rest_predicted(patient_files, tmp_path, capsys):
    bad = tmp_path / "50001_PV.wav"
    bad.write_bytes(b"not audio at all" * 10)
    assert main(["predict", "--patient", f"AV={patient_files / '50001_AV.wav'}", str(bad),
                 f"MV={patient_files / '50001_MV.wav'}", "--report"]) == 0
    captured = capsys.readouterr()
    assert "skipped: PV=" in captured.err and "50001_PV.wav" in captured.err
    assert "2 site(s)" in captured.out and "murmur heard at: MV" in captured.out
    assert main(["predict", "--patient", str(bad)]) != 0


def test_the_segmenter_option_is_method_everywhere(ckpt, recordings, capsys):
    """One vocabulary: --method names the segmenter in predict, serve and segment (--segment-method
    still works in predict and serve)."""
    wav = str(recordings / "a.wav")
    assert main(["predict", "--model", str(ckpt), wav, "--json", "--method", "springer"]) == 0
    assert json.loads(capsys.readouterr().out)["segmentation"]["method"] == "springer"
    assert main(["predict", "--model", str(ckpt), wav, "--json", "--segment-method", "springer"]) == 0
    assert json.loads(capsys.readouterr().out)["segmentation"]["method"] == "springer"
    for command in (["predict"], ["serve"], ["segment", "predict"], ["segment", "evaluate"]):
        assert main([*command, "--help"]) == 0
        assert "--method" in capsys.readouterr().out


def test_calibrate_stores_temperatures_that_predict_then_uses(synthetic_circor, tmp_path, capsys):
    import shutil

    from murmurlm.data.circor import load_circor
    from murmurlm.inference.predict import DEFAULT_CHECKPOINT, load_model

    ckpt = tmp_path / "model.pt"
    shutil.copyfile(DEFAULT_CHECKPOINT, ckpt)
    ids = tmp_path / "val.txt"
    ids.write_text("\n".join(p.patient_id for p in load_circor(synthetic_circor).patients[:8]) + "\n")
    assert main(["calibrate", str(ckpt), "--data", str(synthetic_circor), "--patients", str(ids)]) == 0
    assert "Murmur: temperature" in capsys.readouterr().out
    assert "Murmur" in load_model(ckpt).calibration
    assert main(["calibrate", str(tmp_path / "none.pt"), "--data", str(synthetic_circor), "--patients", str(ids)]) != 0
