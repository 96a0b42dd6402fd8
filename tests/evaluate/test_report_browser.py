"""The evaluation report opened in a real browser (headless Chromium): every embedded confusion
matrix decodes to a picture and every feature has its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from murmurlm.cli import main
from murmurlm.data import labels as L

pytestmark = pytest.mark.slow


def test_report_html_shows_tables_and_plots(synthetic_circor, tmp_path, chromium):
    out = tmp_path / "rep"
    # no predictions file: the majority and class-prior baselines are scored side by side
    assert main(["evaluate", "--data", str(synthetic_circor), "--out", str(out), "--bootstrap", "20"]) == 0
    check_report_in_browser(out / "report.html", chromium)


def test_report_on_real_circor_opens_in_the_browser(circor_root, tmp_path, chromium):
    test_patients = Path(__file__).resolve().parents[2] / "splits" / "circor-dev" / "test.txt"
    out = tmp_path / "rep"
    assert main(["evaluate", "--data", str(circor_root), "--patients", str(test_patients),
                 "--out", str(out), "--bootstrap", "20"]) == 0
    assert (out / "report.md").exists() and (out / "metrics.json").exists()
    check_report_in_browser(out / "report.html", chromium)


def check_report_in_browser(report, chromium) -> None:
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(report.resolve().as_uri())
    page.wait_for_load_state("load")
    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    # one confusion matrix per model for each of the 11 features and Outcome, and one reliability
    # diagram of Murmur per model, each decoded by the browser into a real picture
    assert len(images) == 2 * (len(L.FEATURES) + 1) + 2
    assert sum("reliability diagram" in alt for *_, alt in images) == 2
    for feature in (*L.FEATURE_NAMES, "Outcome"):
        assert sum(f": {feature} confusion matrix" in alt for *_, alt in images) == 2, feature
    assert all(complete and w > 100 and h > 100 for complete, w, h, _ in images), images
    text = page.inner_text("body")
    for feature in L.FEATURE_NAMES:
        assert feature in text
    assert page.locator("table").count() >= len(L.FEATURES)
    assert "baseline-majority" in text and "baseline-prior" in text
    assert errors == []
    page.close()
