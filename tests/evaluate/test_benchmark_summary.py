"""benchmarks/summary.py: the one summary of evaluation results that the CV and Whisper benchmarks share."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from murmurlm.data import labels as L
from murmurlm.evaluate.aggregate import PatientPrediction
from murmurlm.evaluate.predictions import predictions_frame
from murmurlm.evaluate.report import evaluate_with_baselines

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from summary import summarise, summarise_all  # noqa: E402


def labels(murmur: str, timing: str = L.NO_MURMUR) -> dict[str, str]:
    out = {n: L.NO_MURMUR for n in L.FEATURE_NAMES}
    out.update({"Murmur": murmur, "Outcome": "Abnormal" if murmur == "Present" else "Normal"})
    if murmur == "Present":
        for f in L.SYSTOLIC:
            out[f.name] = f.present_classes[0]
        out["Systolic murmur timing"] = timing
    return out


def test_summary_by_hand():
    # 12 Absent patients, 2 Present ones (Holosystolic, Early-systolic); the model misses one murmur
    truth = {str(i): labels("Absent") for i in range(12)}
    truth.update({"p1": labels("Present", "Holosystolic"), "p2": labels("Present", "Early-systolic")})
    pred = dict(truth)
    pred["p2"] = labels("Absent")
    frame = predictions_frame({pid: PatientPrediction(lab) for pid, lab in pred.items()})
    results = evaluate_with_baselines({"model": frame}, truth, list(truth.values()), bootstrap=0)
    summary = summarise_all(results)
    assert list(summary) == ["model", "baseline-majority", "baseline-prior"]
    s = summary["model"]
    head = results["model"]["headline"]
    assert s["murmur_weighted_accuracy"] == pytest.approx((5 + 12) / (5 * 2 + 12))
    for key in ("murmur_weighted_accuracy", "murmur_cost", "outcome_cost", "mean_macro_f1", "systolic_char_uar"):
        assert s[key] == head[key]["value"]
    timing = s["features"]["Systolic murmur timing"]
    assert timing["recall"]["Holosystolic"] == 1.0 and timing["recall"]["Early-systolic"] == 0.0
    assert timing["support"] == {"nan": 12, "Early-systolic": 1, "Holosystolic": 1, "Mid-systolic": 0,
                                 "Late-systolic": 0}
    # rare classes: murmur classes with 1..10 patients (never "nan", never an absent class)
    assert timing["rare_class_recall"] == {"Early-systolic": 0.0, "Holosystolic": 1.0}
    # the characterisation view: the two Present patients only
    assert timing["macro_f1_murmur_patients"] == results["model"]["features"]["Systolic murmur timing"][
        "characterisation"]["macro_f1"]
    assert timing["uar_murmur_patients"] == pytest.approx(0.5)
    murmur = s["features"]["Murmur"]
    assert murmur["macro_f1_murmur_patients"] is None and murmur["uar_murmur_patients"] is None
    assert murmur["rare_class_recall"] == {"Present": 0.5}
    assert summarise(results["model"]) == s
