"""Rendering (:mod:`murmurlm.evaluate.report`): report.md, report.html and metrics.json of scored
models; the scoring names stay importable from it."""

from __future__ import annotations

import json

from murmurlm.evaluate import scoring
from murmurlm.evaluate.baselines import baseline_predictions
from murmurlm.evaluate.report import write_reports
from murmurlm.evaluate.scoring import evaluate_predictions
from evaluate_helpers import as_frame, make_truth


def test_write_reports_two_models(tmp_path):
    truth = make_truth(30)
    results = {name: evaluate_predictions(baseline_predictions(name, list(truth.values()), list(truth)), truth,
                                          bootstrap=50, name=name) for name in ("majority", "prior")}
    paths = write_reports(results, tmp_path / "rep", context={"data": "synthetic"})
    html = paths["html"].read_text()
    assert html.count('confusion matrix"><figcaption>') == 2 * 12  # 11 features + Outcome, 2 models
    assert html.count('Murmur reliability diagram"><figcaption>') == 2  # calibration: one per model
    assert "majority" in html and "prior" in html and "Systolic murmur timing" in html
    md = paths["markdown"].read_text()
    assert "| majority |" in md and "](figures/majority__murmur.png)" in md
    assert (tmp_path / "rep" / "figures" / "prior__murmur.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def no_nan(const):
        raise AssertionError(f"non-JSON constant {const} in metrics.json")
    data = json.loads(paths["json"].read_text(), parse_constant=no_nan)
    assert set(data["models"]) == {"majority", "prior"}
    assert data["context"] == {"data": "synthetic"}
    assert data["models"]["majority"]["features"]["Murmur"]["all"]["per_class"]["Present"]["precision"] is None


def test_auroc_column_only_for_models_with_probabilities(tmp_path):
    truth = make_truth(30)
    with_probs = evaluate_predictions(baseline_predictions("prior", list(truth.values()), list(truth), seed=1),
                                      truth, bootstrap=0)
    labels_only = evaluate_predictions(as_frame(truth), truth, bootstrap=0)
    paths = write_reports({"prior": with_probs, "oracle": labels_only}, tmp_path, plots=False)
    md = paths["markdown"].read_text()
    assert "| model | n | accuracy | macro-F1 | UAR | AUROC |" in md
    assert "| oracle | 30 | 1.000 | 1.000 | 1.000 | – |" in md


def test_scoring_names_stay_importable_from_the_report_module():
    from murmurlm.evaluate import report

    for name in ("evaluate_predictions", "evaluate_with_baselines", "dataset_labels", "HEADLINE"):
        assert getattr(report, name) is getattr(scoring, name)
