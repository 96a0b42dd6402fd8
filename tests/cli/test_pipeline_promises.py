"""Promises of docs/compact.md and the README about ``murmurlm pipeline`` (``make run``): an empty or missing data folder is downloaded first, and the split is ``--split``, else the
repository's ``splits/<folder name>/`` when it holds the dataset's patients, else a 70/15/15 split;
``--members 1`` trains one model straight into ``RUN_DIR/model/``."""

from __future__ import annotations

import shutil

import pytest

from repo_paths import REPO
from murmurlm.cli import main
from murmurlm.cli import pipeline as P
from murmurlm.data.circor import load_circor
from murmurlm.data.splits import read_split, train_val_test_split, write_split
from murmurlm.errors import DownloadError


@pytest.fixture
def fake_download(monkeypatch):
    """download_circor replaced by a stub that records its target and stops the pipeline there."""
    import murmurlm.data.download as download

    calls = []

    def stub(target, **kw):
        calls.append(target)
        raise DownloadError("stub: no network in this test")

    monkeypatch.setattr(download, "download_circor", stub)
    return calls


@pytest.mark.parametrize("make", [True, False], ids=["empty", "missing"])
def test_an_empty_or_missing_data_folder_is_downloaded_first(fake_download, tmp_path, capsys, make):
    data = tmp_path / "circor"
    if make:
        data.mkdir()
    assert main(["pipeline", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert fake_download == [data]
    assert "error: stub: no network in this test" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_dataset_folder_is_not_downloaded(fake_download, tmp_path):
    data = tmp_path / "circor"
    (data / "training_data").mkdir(parents=True)  # not empty, but no patients
    assert main(["pipeline", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert fake_download == []


def test_split_choice_without_a_committed_split(synthetic_circor, tmp_path):
    # a folder named like a committed split, holding other patients: a fresh 70/15/15 split, seed 0
    data = tmp_path / "circor-dev"
    shutil.copytree(synthetic_circor, data)
    dataset = load_circor(data)
    chosen, source = P.choose_split(dataset, data, None)
    assert source == "train_val_test_split(seed=0)"
    assert chosen == train_val_test_split(dataset, seed=0)
    # --split wins
    given = train_val_test_split(dataset, fractions=(0.5, 0.25, 0.25), seed=3)
    write_split(given, tmp_path / "mine")
    chosen, source = P.choose_split(dataset, data, tmp_path / "mine")
    assert chosen == read_split(tmp_path / "mine") and source.startswith("split ")


@pytest.mark.circor
def test_the_committed_split_is_used_for_circor_dev(circor_root):
    dataset = load_circor(circor_root)
    chosen, source = P.choose_split(dataset, circor_root, None)
    assert source.startswith("recommended split") and circor_root.resolve().name == "circor-dev"
    assert chosen == read_split(REPO / "splits" / "circor-dev")
    assert (len(chosen.train), len(chosen.val), len(chosen.test)) == (362, 78, 78)


@pytest.mark.slow  # about 7 s: one tiny epoch, prediction and the report with its figures
def test_one_member_trains_straight_into_the_model_folder(synthetic_circor, tmp_path):
    out = tmp_path / "run"
    assert main(["pipeline", "--data", str(synthetic_circor), "--out", str(out), "--no-progress", "--bootstrap", "0",
                 "--members", "1", "epochs=1", "batch_size=16", "crop_seconds=2.0", "model.channels=[4,8]",
                 "threads=1", f"cache_dir={tmp_path / 'cache'}"]) == 0
    assert (out / "model" / "best.pt").is_file() and (out / "model" / "last.pt").is_file()
    assert not list((out / "model").glob("member*"))
    for rel in ("split/test.txt", "predictions/compact.csv", "predictions/baseline-majority.csv",
                "predictions/baseline-prior.csv", "report/report.md", "report/report.html", "report/metrics.json"):
        assert (out / rel).is_file(), rel


@pytest.mark.slow
def test_the_main_job_fits_a_descriptor_head_on_its_training_patients(tmp_path):
    """With enough systolic-murmur patients in train, the pipeline fits the descriptor head on them
    (never on test), calibrates on the validation patients, predicts with the head (compact.csv)
    and without it (cnn_only.csv), and reports both with calibration and locations; the murmur
    decision is the CNN's in both (but for the quality rule's Unknown)."""
    import json

    from murmurlm.evaluate.predictions import read_predictions
    from murmurlm.signal.synth import write_synthetic_circor

    data = tmp_path / "circor"
    write_synthetic_circor(data, num_patients=40, seed=5, locations=("MV",), duration=(5.0, 5.0))
    out = tmp_path / "run"
    assert main(["pipeline", "--data", str(data), "--out", str(out), "--no-progress", "--bootstrap", "0",
                 "--members", "1", "--head-transplants", "1", "epochs=1", "batch_size=16", "crop_seconds=2.0",
                 "model.channels=[4,8]", "threads=1", f"cache_dir={tmp_path / 'cache'}"]) == 0
    head = json.loads((out / "descriptor-head" / "descriptor-head.json").read_text())
    split = read_split(out / "split")
    train_murmur = [p for p in load_circor(data).patients if p.patient_id in set(split.train)
                    and p.has_murmur("systolic")]
    assert head["meta"]["patients"] == len(train_murmur) >= 10  # the training patients' murmurs only
    with_head = read_predictions(out / "predictions" / "compact.csv")
    cnn_only = read_predictions(out / "predictions" / "cnn_only.csv")
    assert sorted(with_head.index.astype(str)) == sorted(split.test)
    # the murmur decision is the CNN's in both, except where the one quality rule answers Unknown: the
    # head's path segments the recordings, so it can find a patient's recordings all poor
    same = with_head["Murmur"] == cnn_only["Murmur"]
    assert (same | (with_head["Murmur"] == "Unknown")).all() and same.mean() >= 0.75
    cols = [c for c in with_head.columns if c.startswith("P(Systolic murmur timing=")]
    assert not with_head[cols].equals(cnn_only[cols])  # the head changed the description
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert {"compact", "cnn only"} <= set(metrics["models"])
    from murmurlm.inference.predict import load_model

    assert "Murmur" in load_model(out / "model" / "best.pt").calibration  # fitted on the validation patients
    assert metrics["models"]["compact"]["calibration"]["Murmur"]["ece"] is not None
    assert metrics["models"]["compact"]["locations"] is not None  # where the murmur is heard, scored


def test_too_few_murmur_patients_leave_the_cnn_alone(synthetic_circor, tmp_path):
    """12 synthetic patients: fewer than 10 systolic murmurs in train, so no head (a warning) and the
    run goes on with the CNN alone."""
    out = tmp_path / "run"
    assert main(["pipeline", "--data", str(synthetic_circor), "--out", str(out), "--no-progress", "--bootstrap",
                     "0", "--members", "1", "epochs=1", "batch_size=16", "crop_seconds=2.0", "model.channels=[4,8]",
                 "threads=1", f"cache_dir={tmp_path / 'cache'}"]) == 0
    assert not (out / "descriptor-head" / "descriptor-head.json").exists()
    assert not (out / "predictions" / "cnn_only.csv").exists()
    assert (out / "predictions" / "compact.csv").is_file()
