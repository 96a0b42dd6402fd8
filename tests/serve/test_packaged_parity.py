"""One recording, three ways into the packaged model (src/murmurlm/assets/compact-default.pt): the
Python API (``load_model()`` + ``predict_recording`` on the samples soundfile reads), the CLI
(``murmurlm predict FILE --out CSV --json``) and the service (``POST /v1/predict`` of
``create_app()``). Every class probability of the 11 features and Outcome must agree to 1e-6.

The service's JSON, like the CLI's ``--json`` report, rounds probabilities to 4 decimals, so
the JSON is checked to be the API's probabilities rounded to 4 decimals (and identical to the
CLI's report), and the service's unrounded probabilities are taken where it computes them (a
spy around ``predict_recording`` that returns the real result) and checked to 1e-6."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from murmurlm.data import labels as L
from murmurlm.inference import predict as predict_module
from murmurlm.inference.predict import DEFAULT_CHECKPOINT, load_model, predict_recording
from murmurlm.serve.app import create_app
from predict_helpers import synthetic_wave

HEADS = (*L.FEATURE_NAMES, L.OUTCOME.name)
TOL = 1e-6


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("parity") / "parity.wav"
    sf.write(path, synthetic_wave(8.0, 4000, seed=3), 4000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def api(recording):
    """(a) the Python API on the samples as soundfile reads them."""
    predictor = load_model()
    assert predictor.path == DEFAULT_CHECKPOINT and set(HEADS) <= set(predictor.heads)
    samples, rate = sf.read(recording, dtype="float32")
    assert rate == 4000 and samples.shape == (32000,)
    return predict_recording(predictor, samples, rate)


@pytest.fixture(scope="module")
def cli(recording, tmp_path_factory):
    """(b) ``murmurlm predict FILE --out CSV --json``: the CSV row and the JSON report."""
    from murmurlm.cli import main

    out = tmp_path_factory.mktemp("cli") / "pred.csv"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["predict", str(recording), "--out", str(out), "--json"])
    assert code == 0, stdout.getvalue()
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["Patient ID"] == "parity"
    return rows[0], json.loads(stdout.getvalue())


@pytest.fixture(scope="module")
def service(recording, tmp_path_factory):
    """(c) ``POST /v1/predict`` of the app built with the packaged default model: the JSON answer
    and the unrounded prediction the service computed for it."""
    computed = []

    def spy(model, waveform, sampling_rate, **kwargs):
        result = predict_recording(model, waveform, sampling_rate, **kwargs)
        computed.append(result)
        return result

    patch = pytest.MonkeyPatch()
    patch.setattr(predict_module, "predict_recording", spy)
    try:
        with TestClient(create_app(None, tmp_dir=tmp_path_factory.mktemp("svc"))) as client:
            assert client.get("/healthz").json()["model"] == DEFAULT_CHECKPOINT.name
            r = client.post("/v1/predict", files={"file": ("parity.wav", recording.read_bytes(), "audio/wav")})
    finally:
        patch.undo()
    assert r.status_code == 200, r.text
    assert len(computed) == 1
    return r.json(), computed[0]


def test_cli_csv_matches_the_api(api, cli):
    row, _ = cli
    for name in HEADS:
        feat = L.feature(name)
        assert row[name] == api.labels[name]
        got = np.array([float(row[f"P({name}={c})"]) for c in feat.classes])
        assert got == pytest.approx(api.probabilities[name], abs=TOL, rel=0), name


def test_service_computes_the_api_probabilities(api, service):
    body, computed = service
    assert body["labels"] == {n: api.labels[n] for n in L.FEATURE_NAMES}
    assert computed.labels == api.labels
    for name in HEADS:
        assert computed.probabilities[name] == pytest.approx(api.probabilities[name], abs=TOL, rel=0), name


def test_service_json_is_the_api_probabilities_rounded(api, service, cli):
    body, _ = service
    assert [f["name"] for f in body["features"]] == list(L.FEATURE_NAMES)  # Outcome is not served
    for f in body["features"]:
        classes = L.feature(f["name"]).classes
        assert list(f["probabilities"]) == list(classes)
        assert list(f["probabilities"].values()) == [round(float(p), 4) for p in api.probabilities[f["name"]]]
    _, report = cli
    assert report["features"] == body["features"]  # the CLI's --json report says exactly the same
    assert report["labels"] == body["labels"]
