"""The web page end to end in headless Chromium (Debian's ``chromium``, driven by Playwright):
upload a synthetic recording, see the feature table, the figure and the JSON download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from murmurlm.data import labels as L
from predict_helpers import encode, serving, synthetic_wave, tiny_predictor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from murmurlm.serve.app import create_app

    tmp_dir = tmp_path_factory.mktemp("browser-service")
    with serving(create_app(tiny_predictor(), tmp_dir=tmp_dir)) as port:
        yield f"http://127.0.0.1:{port}", tmp_dir


@pytest.fixture(scope="module")
def browser(chromium):
    return chromium


def test_upload_shows_table_figure_and_download(server, browser, tmp_path):
    url, service_tmp = server
    wav = tmp_path / "synthetic murmur.wav"
    wav.write_bytes(encode(synthetic_wave(8.0, 4000, seed=3), 4000))
    page = browser.new_page(accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('limits').textContent.length > 0")
    page.set_input_files("#file-input", str(wav))
    page.wait_for_selector("#features tbody tr", timeout=60_000)
    rows = page.locator("#features tbody tr")
    assert rows.count() == 11
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(11)]
    assert names == list(L.FEATURE_NAMES)
    assert "synthetic murmur.wav: done" in page.inner_text("#status")
    assert page.eval_on_selector("#plot", "img => img.complete && img.naturalWidth > 0")
    assert "quality:" in page.inner_text("#summary-list")
    # the average heartbeat: its figure is shown and the summary counts its cycles
    assert page.is_visible("#heartbeat")
    assert page.eval_on_selector("#heartbeat", "img => img.complete && img.naturalWidth > 0")
    assert "average heartbeat:" in page.inner_text("#summary-list")
    with page.expect_download() as info:
        page.click("#download")
    data = json.loads(Path(info.value.path()).read_text())
    assert [f["name"] for f in data["features"]] == list(L.FEATURE_NAMES)
    assert "plot_png" not in data and "heartbeat_png" not in data
    assert data["heartbeat"]["reliable"] and data["heartbeat"]["cycles_kept"] >= 2
    assert len(data["heartbeat"]["descriptors"]) > 20
    overridden = [f["name"] for f in data["features"] if f["overridden"]]
    assert page.is_visible("#override-note") == bool(overridden)
    for i, f in enumerate(data["features"]):
        p_text = rows.nth(i).locator("td").nth(2).inner_text()
        assert p_text == ("*" if f["overridden"] else f"{f['probability']:.2f}")
    assert info.value.suggested_filename == "synthetic murmur.murmurlm.json"
    assert errors == []
    page.close()


def test_a_recording_drowned_in_noise_says_so_on_the_page(server, browser, tmp_path):
    import numpy as np

    from murmurlm.inference.report import segmentation_available
    from murmurlm.signal.noise import pcg_add_noise
    from murmurlm.signal.synth import synth_pcg

    if not segmentation_available():
        pytest.skip("the noise check needs the packaged segmenter's cycles")
    url, _ = server
    pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=4)
    noisy = pcg_add_noise(pcg.waveform, 4000, "white", -10.0, seed=1)
    wav = tmp_path / "noisy.wav"
    wav.write_bytes(encode(noisy / np.abs(noisy).max() * 0.9, 4000))
    page = browser.new_page()
    page.goto(url + "/")
    page.set_input_files("#file-input", str(wav))
    page.wait_for_selector("#features tbody tr", timeout=60_000)
    summary, warnings = page.inner_text("#summary-list"), page.inner_text("#warnings")
    assert "quality: poor, too noisy: the heart sounds stand only" in summary
    assert "Murmur: Unknown, because the recording is of poor quality (too noisy" in warnings
    page.close()


def test_bad_file_shows_the_error(server, browser, tmp_path):
    url, service_tmp = server
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n" * 10)
    page = browser.new_page()
    page.goto(url + "/")
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector("#status.error", timeout=30_000)
    assert "notes.wav" in page.inner_text("#status") and "415" in page.inner_text("#status")
    assert page.is_hidden("#result")
    assert list(service_tmp.iterdir()) == []
    page.close()


def test_drop_a_file_on_the_page(server, browser):
    import base64

    url, _ = server
    b64 = base64.b64encode(encode(synthetic_wave(5.0, 8000, seed=4), 8000, "FLAC")).decode()
    page = browser.new_page()
    page.goto(url + "/")
    transfer = page.evaluate_handle(
        """(b64) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], "dropped.flac", {type: "audio/flac"}));
             return dt;
           }""", b64)
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#features tbody tr", timeout=60_000)
    assert "dropped.flac: done" in page.inner_text("#status")
    assert "resampled from 8000 Hz to 4000 Hz" in page.inner_text("#warnings")
    assert page.locator("#features tbody tr").count() == 11
    page.close()


def test_a_patient_of_several_recordings_gets_its_sites_and_one_answer(server, browser, tmp_path):
    """Three recordings at once: the page asks for each one's site (guessed from CirCor names),
    posts them to /v1/patients and shows the patient summary, one row per site and the figure."""
    url, service_tmp = server
    paths = []
    for i, site in enumerate(("AV", "TV", "MV")):
        path = tmp_path / f"50001_{site}.wav"
        path.write_bytes(encode(synthetic_wave(8.0, 4000, seed=10 + i), 4000))
        paths.append(str(path))
    page = browser.new_page(accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url + "/")
    page.set_input_files("#file-input", paths)
    page.wait_for_selector("#patient-sites:not([hidden])")
    chosen = page.eval_on_selector_all("#site-table select", "els => els.map((e) => e.value)")
    assert chosen == ["AV", "TV", "MV"]
    page.select_option("#site-table tbody tr:nth-child(1) select", "PV")  # the user corrects a site
    page.click("#patient-go")
    page.wait_for_selector("#sites tbody tr", timeout=60_000)
    assert "patient: done" in page.inner_text("#status")
    sites = [page.locator("#sites tbody tr").nth(i).locator("td").first.inner_text() for i in range(3)]
    assert sites == ["PV", "TV", "MV"]
    summary = page.inner_text("#summary-list")
    assert "murmur heard at:" in summary and "most audible at:" in summary
    assert page.locator("#features tbody tr").count() == 11
    assert page.eval_on_selector("#plot", "img => img.complete && img.naturalWidth > 0")
    with page.expect_download() as info:
        page.click("#download")
    data = json.loads(Path(info.value.path()).read_text())
    assert [s["site"] for s in data["sites"]] == ["PV", "TV", "MV"] and "plot_png" not in data
    page.set_input_files("#file-input", paths + paths[:2])  # five: refused on the page
    page.wait_for_selector("#status.error")
    assert "at most 4" in page.inner_text("#status")
    assert errors == []
    assert list(service_tmp.iterdir()) == []
    page.close()
