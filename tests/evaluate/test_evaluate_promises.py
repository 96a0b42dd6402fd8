"""Promises of docs/evaluation.md about ``murmurlm evaluate`` that test_evaluate_cli.py does not pin:
with ``--patients`` the baselines are fitted on the dataset's *other* patients (without it, on all of
them), the bootstrap defaults to 1000 resamples with seed 0, and ``--data`` alone scores the baselines."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from murmurlm.cli import main
from murmurlm.evaluate.report import dataset_labels


def _baseline_probability(out, column: str) -> set[float]:
    frame = pd.read_csv(out / "predictions" / "baseline-majority.csv", dtype={"Patient ID": str})
    return set(frame[column].round(6))


def test_baselines_are_fitted_on_the_patients_outside_the_evaluated_set(synthetic_circor, tmp_path):
    truth = dataset_labels(synthetic_circor)
    murmur = [pid for pid, t in truth.items() if t["Murmur"] != "Absent"]
    others = [pid for pid in truth if pid not in murmur]
    assert murmur and others
    plist = tmp_path / "murmur-patients.txt"
    plist.write_text("\n".join(murmur) + "\n")

    out = tmp_path / "subset"
    assert main(["evaluate", "--data", str(synthetic_circor), "--patients", str(plist), "--out", str(out),
                 "--no-plots"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["baseline-majority", "baseline-prior"]  # --data alone: the baselines
    assert metrics["models"]["baseline-majority"]["num_patients"] == len(murmur)
    # fitted on the others, who are all Absent: the training priors put nothing on Present
    assert _baseline_probability(out, "P(Murmur=Present)") == {0.0}
    assert _baseline_probability(out, "P(Murmur=Absent)") == {1.0}
    # the default bootstrap
    assert metrics["models"]["baseline-prior"]["bootstrap"]["resamples"] == 1000
    assert metrics["models"]["baseline-prior"]["bootstrap"]["seed"] == 0

    everyone = tmp_path / "all"
    assert main(["evaluate", "--data", str(synthetic_circor), "--out", str(everyone), "--no-plots",
                 "--bootstrap", "0"]) == 0
    present = sum(t["Murmur"] == "Present" for t in truth.values()) / len(truth)
    [in_sample] = _baseline_probability(everyone, "P(Murmur=Present)")
    assert in_sample == pytest.approx(present, abs=1e-6) and present > 0
