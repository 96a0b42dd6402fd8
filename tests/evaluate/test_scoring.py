"""Scoring (:mod:`murmurlm.evaluate.scoring`): evaluate_predictions, evaluate_with_baselines, dataset_labels."""

from __future__ import annotations

import pytest

from murmurlm.data import labels as L
from murmurlm.errors import DataFormatError
from murmurlm.evaluate import metrics as M
from murmurlm.evaluate.aggregate import PatientPrediction
from murmurlm.evaluate.baselines import baseline_predictions
from murmurlm.evaluate.predictions import predictions_frame, read_predictions
from murmurlm.evaluate.scoring import dataset_labels, evaluate_predictions, evaluate_with_baselines
from evaluate_helpers import as_frame, make_truth


def test_perfect_predictions_score_one():
    truth = make_truth()
    res = evaluate_predictions(as_frame(truth), truth, bootstrap=100, seed=0, name="oracle")
    assert res["name"] == "oracle" and res["num_patients"] == 40
    for feat in L.FEATURES:
        view = res["features"][feat.name]["all"]
        assert view["accuracy"] == 1.0 and view["macro_f1"] == 1.0 and view["uar"] == 1.0
        assert view["accuracy_ci"] == [1.0, 1.0]
    assert res["challenge"]["murmur_weighted_accuracy"]["value"] == 1.0
    assert res["headline"]["murmur_weighted_accuracy"]["ci"] == [1.0, 1.0]
    assert res["features"]["Outcome"]["all"]["accuracy"] == 1.0
    # the cost of perfect outcome predictions: nobody missed, the Abnormal ones referred
    outcome = [t["Outcome"] for t in truth.values()]
    assert res["challenge"]["outcome_cost"]["value"] == pytest.approx(M.challenge_outcome_cost(outcome, outcome))


def test_results_match_the_metric_functions_and_views():
    truth = make_truth(60, seed=1)
    pred = baseline_predictions("prior", list(truth.values()), list(truth), seed=3)
    res = evaluate_predictions(pred, truth, bootstrap=200, seed=0)
    murmur_t = [t["Murmur"] for t in truth.values()]
    assert res["challenge"]["murmur_weighted_accuracy"]["value"] == pytest.approx(
        M.challenge_murmur_score(murmur_t, pred["Murmur"].tolist()))
    feat = "Systolic murmur grading"
    keep = [pid for pid, t in truth.items() if t["Systolic murmur timing"] != L.NO_MURMUR]
    char = res["features"][feat]["characterisation"]
    expected = M.feature_metrics([truth[p][feat] for p in keep], pred.loc[keep, feat].tolist(), feat)
    assert char["num_patients"] == len(keep)
    assert char["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert char["confusion_matrix"] == expected["confusion_matrix"]
    lo, hi = res["features"][feat]["all"]["accuracy_ci"]
    assert lo <= res["features"][feat]["all"]["accuracy"] <= hi
    assert res["features"]["Murmur"]["characterisation"] is None


def test_missing_prediction_column_and_patient_are_errors():
    truth = make_truth(10)
    frame = as_frame(truth)
    frame.attrs["source"] = "model.csv"
    with pytest.raises(DataFormatError, match=r"model\.csv: no prediction for 1 patient\(s\): 5555"):
        evaluate_predictions(frame, {**truth, "5555": next(iter(truth.values()))}, bootstrap=0)
    no_outcome = frame.drop(columns=["Outcome"])
    res = evaluate_predictions(no_outcome, truth, bootstrap=0)
    assert res["challenge"]["outcome_cost"] is None
    assert "no Outcome column" in res["challenge"]["notes"][0]
    assert res["challenge"]["murmur_cost"]["value"] is not None
    assert res["headline"]["mean_macro_f1"]["ci"] is None  # bootstrap=0: no intervals


def test_dataset_labels_from_csv_or_patient_headers(synthetic_circor, tmp_path):
    import shutil

    from_csv = dataset_labels(synthetic_circor)
    assert len(from_csv) == 12 and all(set(L.FEATURE_NAMES) <= set(t) for t in from_csv.values())
    copy = tmp_path / "no_csv"
    shutil.copytree(synthetic_circor / "training_data", copy / "training_data")
    from_txt = dataset_labels(copy)
    assert set(from_txt) == set(from_csv)
    for pid, labels in from_csv.items():
        assert {k: labels[k] for k in L.FEATURE_NAMES} == {k: from_txt[pid][k] for k in L.FEATURE_NAMES}


def test_truth_without_outcome_skips_costs():
    truth = make_truth(12)
    for labels in truth.values():
        del labels["Outcome"]
    res = evaluate_predictions(as_frame(make_truth(12)), truth, bootstrap=10)
    assert res["challenge"]["murmur_cost"] is None and res["challenge"]["outcome_cost"] is None
    assert "no Outcome labels" in res["challenge"]["notes"][0]
    assert res["headline"]["outcome_cost"]["value"] is None


def test_auroc_reported_when_probabilities_present():
    truth = make_truth(30)
    with_probs = baseline_predictions("prior", list(truth.values()), list(truth), seed=1)
    res = evaluate_predictions(with_probs, truth, bootstrap=0)
    # the prior baseline gives every patient the same probabilities: no ranking, AUROC 0.5
    assert res["features"]["Murmur"]["all"]["auroc"] == pytest.approx(0.5)
    assert res["features"]["Murmur"]["all"]["per_class"]["Present"]["auroc"] == pytest.approx(0.5)
    labels_only = evaluate_predictions(as_frame(truth), truth, bootstrap=0)
    assert "auroc" not in labels_only["features"]["Murmur"]["all"]


# --------------------------------------------------------------------------------------------
# evaluate_with_baselines


def test_evaluate_with_baselines_scores_models_then_baselines(tmp_path):
    truth = make_truth(30, seed=1)
    train = list(make_truth(20, seed=2).values())
    oracle = predictions_frame({pid: PatientPrediction(labels) for pid, labels in truth.items()})
    results = evaluate_with_baselines({"oracle": oracle}, truth, train, bootstrap=20, seed=5,
                                      predictions_dir=tmp_path / "pred")
    assert list(results) == ["oracle", "baseline-majority", "baseline-prior"]
    assert results["oracle"]["headline"]["mean_macro_f1"]["value"] == 1.0
    # each the same as scoring it alone, with the seed of both the baselines and the bootstrap
    for method in ("majority", "prior"):
        frame = baseline_predictions(method, train, list(truth), seed=5)
        alone = evaluate_predictions(frame, truth, bootstrap=20, seed=5, name=f"baseline-{method}")
        got = results[f"baseline-{method}"]
        assert got["headline"] == alone["headline"] and got["name"] == f"baseline-{method}"
        written = read_predictions(tmp_path / "pred" / f"baseline-{method}.csv")
        assert list(written.index) == list(truth) and written["Murmur"].tolist() == frame["Murmur"].tolist()
    # without training labels: the models alone, nothing written
    alone = evaluate_with_baselines({"oracle": oracle}, truth, bootstrap=0, predictions_dir=tmp_path / "none")
    assert list(alone) == ["oracle"] and not (tmp_path / "none").exists()


def test_evaluate_with_baselines_checks_every_frame_before_writing(tmp_path):
    truth = make_truth(10)
    partial = predictions_frame({pid: PatientPrediction(truth[pid]) for pid in list(truth)[:-1]})
    ok = predictions_frame({pid: PatientPrediction(labels) for pid, labels in truth.items()})
    with pytest.raises(DataFormatError, match="no prediction for 1 patient"):
        evaluate_with_baselines({"ok": ok, "partial": partial}, truth, list(truth.values()),
                                predictions_dir=tmp_path / "pred")
    stranger = predictions_frame({**{pid: PatientPrediction(labels) for pid, labels in truth.items()},
                                  "x": PatientPrediction(next(iter(truth.values())))})
    with pytest.raises(DataFormatError, match="not in the dataset"):
        evaluate_with_baselines({"s": stranger}, truth, list(truth.values()), known_ids=list(truth),
                                predictions_dir=tmp_path / "pred")
    assert not (tmp_path / "pred").exists()
