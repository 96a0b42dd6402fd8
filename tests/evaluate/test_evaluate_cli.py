"""``murmurlm evaluate`` end to end on the synthetic CirCor folder (and, marked, on the real one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from murmurlm.cli import main
from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import PatientPrediction
from murmurlm.evaluate.predictions import predictions_frame, write_predictions
from murmurlm.evaluate.report import dataset_labels


def oracle_file(root: Path, path: Path, drop: int = 0) -> dict[str, dict[str, str]]:
    truth = dataset_labels(root)
    keep = list(truth)[drop:]
    write_predictions(predictions_frame({pid: PatientPrediction(truth[pid]) for pid in keep}), path)
    return truth


def load_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_evaluate_oracle_and_baselines(synthetic_circor, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich: no wrapping of the printed table
    pred = tmp_path / "oracle.csv"
    truth = oracle_file(synthetic_circor, pred)
    out = tmp_path / "rep"
    rc = main(["evaluate", str(pred), "--data", str(synthetic_circor), "--out", str(out), "--bootstrap", "50",
               "--no-plots"])  # the figures are checked in test_eval_report and on the real data
    assert rc == 0
    printed = capsys.readouterr().out
    assert "oracle" in printed and "baseline-majority" in printed and "report.html" in printed
    metrics = load_metrics(out)
    assert list(metrics["models"]) == ["oracle", "baseline-majority", "baseline-prior"]
    oracle = metrics["models"]["oracle"]
    assert oracle["num_patients"] == len(truth)
    assert oracle["challenge"]["murmur_weighted_accuracy"]["value"] == 1.0
    assert "Systolic murmur timing" in (out / "report.html").read_text()
    assert (out / "report.md").exists()
    # the baseline predictions files are written and can be evaluated on their own
    base = out / "predictions" / "baseline-majority.csv"
    rc = main(["evaluate", str(base), "--data", str(synthetic_circor), "--out", str(tmp_path / "rep2"),
               "--no-baselines", "--bootstrap", "0", "--no-plots"])
    assert rc == 0
    again = load_metrics(tmp_path / "rep2")["models"]["baseline-majority"]
    assert again["challenge"]["murmur_weighted_accuracy"]["value"] == pytest.approx(
        metrics["models"]["baseline-majority"]["challenge"]["murmur_weighted_accuracy"]["value"])


def test_evaluate_patient_subset(synthetic_circor, tmp_path):
    pred = tmp_path / "oracle.csv"
    truth = oracle_file(synthetic_circor, pred)
    subset = list(truth)[:5]
    plist = tmp_path / "test.txt"
    plist.write_text("# test split\n" + "\n".join(subset) + "\n\n")
    out = tmp_path / "rep"
    rc = main(["evaluate", str(pred), "--data", str(synthetic_circor), "--patients", str(plist),
               "--out", str(out), "--bootstrap", "20", "--no-plots"])
    assert rc == 0
    metrics = load_metrics(out)
    assert metrics["models"]["oracle"]["num_patients"] == 5
    assert "<img" not in (out / "report.html").read_text() and not (out / "figures").exists()
    assert metrics["context"]["baselines fitted on"] == "the dataset's other patients"
    base = (out / "predictions" / "baseline-prior.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in base[1:]] == subset


def test_evaluate_errors_are_one_line(synthetic_circor, tmp_path, capsys):
    pred = tmp_path / "short.csv"
    truth = oracle_file(synthetic_circor, pred, drop=1)
    first = list(truth)[0]
    rc = main(["evaluate", str(pred), "--data", str(synthetic_circor), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == f"error: {pred}: no prediction for 1 patient(s): {first}"
    assert not (tmp_path / "r").exists()  # nothing written before the check
    bad = tmp_path / "bad.csv"
    bad.write_text(pred.read_text().replace("Absent", "absent", 1))
    assert main(["evaluate", str(bad), "--data", str(synthetic_circor), "--out", str(tmp_path / "r")]) == 2
    assert "unknown label 'absent' for 'Murmur'" in capsys.readouterr().err
    plist = tmp_path / "p.txt"
    plist.write_text("123456789\n")
    assert main(["evaluate", str(pred), "--data", str(synthetic_circor), "--patients", str(plist)]) == 2
    assert "not in" in capsys.readouterr().err
    plist.write_text("# nobody\n")
    assert main(["evaluate", str(pred), "--data", str(synthetic_circor), "--patients", str(plist)]) == 2
    assert "no patient ids" in capsys.readouterr().err


@pytest.mark.circor
@pytest.mark.slow
def test_evaluate_real_circor_baselines(circor_root, tmp_path):
    out = tmp_path / "rep"
    assert main(["evaluate", "--data", str(circor_root), "--out", str(out), "--bootstrap", "200"]) == 0
    majority = load_metrics(out)["models"]["baseline-majority"]
    truth = dataset_labels(circor_root)
    counts = {c: sum(t["Murmur"] == c for t in truth.values()) for c in L.MURMUR.classes}
    # majority predicts Absent for all: weighted accuracy = n_Absent / (5 n_Present + 3 n_Unknown + n_Absent)
    expected = counts["Absent"] / (5 * counts["Present"] + 3 * counts["Unknown"] + counts["Absent"])
    assert majority["challenge"]["murmur_weighted_accuracy"]["value"] == pytest.approx(expected)
    assert majority["num_patients"] == len(truth)
    html = (out / "report.html").read_text()
    assert html.count('confusion matrix"><figcaption>') == 2 * 12
    assert html.count('Murmur reliability diagram"><figcaption>') == 2
