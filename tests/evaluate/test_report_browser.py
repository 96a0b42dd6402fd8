"""The evaluation report opened in a real browser (headless Chromium): every embedded confusion
matrix decodes to a picture and every feature has its table."""

from __future__ import annotations

import pytest

from murmurlm.cli import main
from murmurlm.data import labels as L

pytestmark = pytest.mark.slow


def test_report_html_shows_tables_and_plots(synthetic_circor, tmp_path, chromium):
    out = tmp_path / "rep"
    # no predictions file: the majority and class-prior baselines are scored side by side
    assert main(["evaluate", "--data", str(synthetic_circor), "--out", str(out), "--bootstrap", "20"]) == 0
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto((out / "report.html").resolve().as_uri())
    page.wait_for_load_state("load")
    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    # one confusion matrix per model for each of the 11 features and Outcome, each decoded by the
    # browser into a real picture
    assert len(images) == 2 * (len(L.FEATURES) + 1)
    for feature in (*L.FEATURE_NAMES, "Outcome"):
        assert sum(feature in alt for *_, alt in images) == 2, feature
    assert all(complete and w > 100 and h > 100 for complete, w, h, _ in images), images
    text = page.inner_text("body")
    for feature in L.FEATURE_NAMES:
        assert feature in text
    assert page.locator("table").count() >= len(L.FEATURES)
    assert "baseline-majority" in text and "baseline-prior" in text
    assert errors == []
    page.close()
