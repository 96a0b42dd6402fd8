"""The web service: valid uploads (WAV, FLAC, stereo 44.1 kHz, raw bodies), every kind of bad upload
(a clear 4xx, never a 500) and every row of docs/serve.md's limits table except 408 (timeout,
test_slow_client.py) and 503 (busy, test_admission.py), path-traversal file names, temp files,
concurrency, /v1/ask."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import os
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient

from murmurlm.data import labels as L
from murmurlm.inference.report import segmentation_available
from murmurlm.serve.app import create_app
from predict_helpers import encode, save_tiny_checkpoint, synthetic_wave, tiny_predictor


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor()


@pytest.fixture(scope="module")
def wave():
    return synthetic_wave(6.0, 4000, seed=1)


@pytest.fixture()
def tmp_dir(tmp_path):
    return tmp_path / "service-tmp"


@pytest.fixture()
def client(predictor, tmp_dir):
    app = create_app(predictor, max_upload_mb=2.0, max_duration_s=30.0, min_duration_s=2.0, tmp_dir=tmp_dir)
    with TestClient(app) as c:
        c.tmp_dir = tmp_dir
        yield c


def post_file(client, data: bytes, filename: str = "rec.wav", mime: str = "audio/wav", query: str = ""):
    return client.post(f"/v1/predict{query}", files={"file": (filename, data, mime)})


def check_prediction(body: dict) -> None:
    assert [f["name"] for f in body["features"]] == list(L.FEATURE_NAMES)
    for f in body["features"]:
        feat = L.feature(f["name"])
        assert list(f["probabilities"]) == list(feat.classes)
        assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert f["label"] == body["labels"][f["name"]]
    assert body["labels"] == L.make_consistent(body["labels"])
    assert body["quality"]["flag"] in ("good", "fair", "poor")
    assert 0.0 <= body["quality"]["usable_fraction"] <= 1.0


def test_valid_wav(client, wave):
    r = post_file(client, encode(wave, 4000))
    assert r.status_code == 200, r.text
    body = r.json()
    check_prediction(body)
    assert body["input"] == {"filename": "rec.wav", "bytes": len(encode(wave, 4000)), "format": "WAV",
                             "subtype": "PCM_16", "sampling_rate": 4000, "channels": 1, "duration_s": 6.0}
    assert body["sampling_rate"] == 4000 and body["duration_s"] == pytest.approx(6.0)
    assert not any("resampled" in w or "mixed" in w for w in body["warnings"])
    seg = body["segmentation"]
    if segmentation_available():  # the synthetic PCG beats at 80 bpm
        assert seg["available"] and seg["method"] == "mamba", body["warnings"]
        assert seg["heart_rate_bpm"] == pytest.approx(80, abs=10)
        assert seg["cycles"] >= 4
        assert {s["state"] for s in seg["segments"]} >= {1, 2, 3, 4}
    assert os.listdir(client.tmp_dir) == []


def test_valid_flac_and_raw_body_agree_with_wav(client, wave):
    wav = post_file(client, encode(wave, 4000)).json()
    flac = post_file(client, encode(wave, 4000, "FLAC"), "rec.flac", "audio/flac")
    assert flac.status_code == 200, flac.text
    assert flac.json()["input"]["format"] == "FLAC"
    raw = client.post("/v1/predict", content=encode(wave, 4000, "FLAC"), headers={"content-type": "audio/flac"})
    assert raw.status_code == 200, raw.text
    for other in (flac.json(), raw.json()):  # lossless: the same samples, the same probabilities
        assert other["labels"] == wav["labels"]
        for a, b in zip(other["features"], wav["features"]):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-3)


@pytest.mark.parametrize("content_type", ["audio/wav", "application/octet-stream"])
def test_raw_body_upload(client, wave, content_type):
    data = encode(wave, 4000)
    form = post_file(client, data).json()
    r = client.post("/v1/predict", content=data, headers={"content-type": content_type})
    assert r.status_code == 200, r.text
    body = r.json()
    check_prediction(body)
    assert body["input"]["filename"] == "upload" and body["input"]["bytes"] == len(data)
    assert body["labels"] == form["labels"]
    for a, b in zip(body["features"], form["features"]):
        assert a["probabilities"] == b["probabilities"]


def test_empty_raw_body(client):
    r = client.post("/v1/predict", content=b"", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "empty" and r.json()["detail"] == "upload: the uploaded file is empty"


def test_stereo_44k_is_mixed_down_and_resampled(client, wave):
    from murmurlm.signal.filter import pcg_resample

    hi = pcg_resample(wave, 4000, 44100)
    stereo = np.stack([hi, 0.5 * hi], axis=1)
    r = post_file(client, encode(stereo, 44100), "stereo.wav")
    assert r.status_code == 200, r.text
    body = r.json()
    check_prediction(body)
    assert body["input"]["sampling_rate"] == 44100 and body["input"]["channels"] == 2
    assert body["sampling_rate"] == 4000
    assert body["duration_s"] == pytest.approx(6.0, abs=0.01)
    assert "mixed 2 channels down to mono" in body["warnings"]
    assert "resampled from 44100 Hz to 4000 Hz" in body["warnings"]


def test_plot_is_a_png(client, wave):
    r = post_file(client, encode(wave, 4000), query="?plot=true")
    assert r.status_code == 200, r.text
    png = base64.b64decode(r.json()["plot_png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert post_file(client, encode(wave, 4000)).json()["plot_png"] is None


def _truncated_wav(wave) -> bytes:
    data = encode(wave, 4000)
    return data[: len(data) // 2]


def _nan_wav(wave) -> bytes:
    w = wave.copy()
    w[100:200] = np.nan
    return encode(w, 4000, subtype="FLOAT")


def _inf_wav(wave) -> bytes:
    w = wave.copy()
    w[50] = np.inf
    w[60] = -np.inf
    return encode(w, 4000, subtype="FLOAT")


# a real 1x1 PNG image
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _lying_header(wave) -> bytes:
    # a RIFF header announcing a huge data chunk, followed by a few bytes
    data = bytearray(encode(wave[:4000], 4000))
    pos = data.index(b"data")
    data[pos + 4: pos + 8] = struct.pack("<I", 0x7FFFFFF0)
    return bytes(data)


BAD_FILES = {
    # name: (bytes builder, expected status, expected reason)
    "text": (lambda w: b"hello, this is not audio at all\n" * 20, 415, "not_audio"),
    "html": (lambda w: b"<html><script>alert(1)</script></html>", 415, "not_audio"),
    "empty": (lambda w: b"", 400, "empty"),
    "riff_only": (lambda w: b"RIFF\x24\x00\x00\x00WAVE", 415, "not_audio"),
    "image": (lambda w: PNG, 415, "not_audio"),
    "no_samples": (lambda w: encode(w[:0], 4000), 400, "empty"),  # a valid WAV header, 0 frames
    "truncated_wav": (_truncated_wav, 400, "truncated"),
    "lying_header": (_lying_header, 400, "truncated"),
    "truncated_flac": (lambda w: encode(w, 4000, "FLAC")[:3000], 400, "truncated"),
    "nan": (_nan_wav, 422, "non_finite"),
    "inf": (_inf_wav, 422, "non_finite"),
    "8bit": (lambda w: encode(w, 4000, subtype="PCM_U8"), 415, "unsupported"),
    "mulaw": (lambda w: encode(w, 4000, subtype="ULAW"), 415, "unsupported"),
    "alaw": (lambda w: encode(w, 4000, subtype="ALAW"), 415, "unsupported"),
    "too_short": (lambda w: encode(w[:4000], 4000), 422, "too_short"),
    "too_long": (lambda w: encode(np.tile(w, 6), 4000, "FLAC"), 413, "too_long"),
    "low_rate": (lambda w: encode(w[::8], 500), 415, "unsupported"),
}


def test_bad_files_are_what_their_names_say(wave):
    import soundfile as sf

    infos = {name: sf.info(io.BytesIO(BAD_FILES[name][0](wave))) for name in ("no_samples", "mulaw", "alaw", "8bit")}
    assert infos["no_samples"].frames == 0 and infos["no_samples"].format == "WAV"
    assert [infos[n].subtype for n in ("mulaw", "alaw", "8bit")] == ["ULAW", "ALAW", "PCM_U8"]


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_uploads_get_a_clear_4xx(client, wave, name):
    build, status, reason = BAD_FILES[name]
    r = post_file(client, build(wave), f"{name}.wav")
    assert r.status_code == status, r.text
    body = r.json()
    assert body["reason"] == reason
    assert body["detail"].startswith(f"{name}.wav: ") and len(body["detail"]) > len(name) + 10
    assert client.tmp_dir.is_dir() and os.listdir(client.tmp_dir) == []


def test_upload_size_limit(predictor, tmp_dir, wave):
    app = create_app(predictor, max_upload_mb=0.05, tmp_dir=tmp_dir)  # 52 kB; the WAV is 48 kB + ...
    big = encode(np.tile(wave, 2), 4000)  # 96 kB
    with TestClient(app) as client:
        r = post_file(client, big)
        assert r.status_code == 413 and r.json()["reason"] == "too_large", r.text
        # no Content-Length (chunked upload): counted while reading
        r = client.post("/v1/predict", content=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
                        headers={"content-type": "audio/wav"})
        assert r.status_code == 413 and r.json()["reason"] == "too_large", r.text
        assert post_file(client, encode(wave[:12000], 4000)).status_code == 200
    assert not tmp_dir.exists() or os.listdir(tmp_dir) == []


def test_too_long_is_refused_on_the_header_and_decoding_is_capped(client, wave, monkeypatch):
    import soundfile

    real_read = soundfile.read
    reads = []

    def spy(*args, **kwargs):
        reads.append(kwargs.get("frames", -1))
        return real_read(*args, **kwargs)

    monkeypatch.setattr(soundfile, "read", spy)
    r = post_file(client, encode(np.tile(wave, 6), 4000), "long.wav")  # 36 s, the limit is 30 s
    assert r.status_code == 413 and r.json()["reason"] == "too_long", r.text
    assert "36.0 s" in r.json()["detail"]
    assert reads == []  # refused from the header: nothing was decoded
    assert post_file(client, encode(wave, 4000)).status_code == 200
    assert reads and all(0 < frames <= 30 * 4000 + 1 for frames in reads)  # never more than the limit


def _unknown_length_flac(wave) -> bytes:
    """A FLAC whose STREAMINFO leaves the total sample count 0 ("unknown", as streaming encoders write)."""
    data = bytearray(encode(wave, 4000, "FLAC"))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first; its 34 bytes start at 8
    data[8 + 13] &= 0xF0  # total samples: the low 4 bits of byte 13 and bytes 14-17
    data[8 + 14: 8 + 18] = b"\0\0\0\0"
    return bytes(data)


def test_unknown_length_flac_is_refused_with_the_cure(client, wave):
    # libsndfile reports SF_COUNT_MAX frames for it and fails to seek before its end: not decodable in full
    r = post_file(client, _unknown_length_flac(wave), "stream.flac", "audio/flac")
    assert r.status_code == 415, r.text
    assert r.json()["reason"] == "unsupported"
    assert r.json()["detail"].startswith("stream.flac: FLAC file without its length in the header")
    assert "re-encode" in r.json()["detail"]


def _cut_form(wave) -> bytes:
    """A valid multipart form cut before its closing boundary (an interrupted browser upload)."""
    body = (b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + encode(wave[:12000], 4000) + b"\r\n--XX--\r\n")
    return body[:-200]


@pytest.mark.parametrize("content_type, body, status, reason", [
    ("text/plain", b"abc", 415, "unsupported_media_type"),
    ("application/json", b"{}", 415, "unsupported_media_type"),
    (None, b"abc", 415, "unsupported_media_type"),
    ("multipart/form-data", b"abc", 400, "bad_multipart"),
    ("multipart/form-data; boundary=XX", b"--XX\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--XX--\r\n",
     400, "no_file"),
    ("multipart/form-data; boundary=XX", b"--XX\r\nbroken", 400, "bad_multipart"),
    ("multipart/form-data; boundary=XX", _cut_form, 400, "bad_multipart"),
])
def test_bad_requests(client, wave, content_type, body, status, reason):
    body = body(wave) if callable(body) else body
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/v1/predict", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason


def test_bad_query_parameter(client, wave):
    r = post_file(client, encode(wave, 4000), query="?plot=perhaps")
    assert r.status_code == 422 and r.json()["reason"] == "invalid_parameter"
    assert "plot" in r.json()["detail"]


def test_two_files_in_one_form(client, wave):
    data = encode(wave, 4000)
    r = client.post("/v1/predict", files=[("file", ("a.wav", data, "audio/wav")), ("file", ("b.wav", data, "audio/wav"))])
    assert r.status_code == 400 and r.json()["reason"] == "many_files"


@pytest.mark.parametrize("filename", [
    "../../escaped.wav", "..\\..\\escaped.wav", "/tmp/escaped.wav", "....//....//escaped.wav",
    "%2e%2e%2fescaped.wav", "escaped.wav\x00.txt", "..", "",
])
def test_path_traversal_filenames_stay_inside(predictor, tmp_path, wave, filename):
    tmp_dir = tmp_path / "a" / "b" / "service-tmp"
    app = create_app(predictor, tmp_dir=tmp_dir)
    with TestClient(app) as client:
        data = encode(wave, 4000)
        r = post_file(client, data, filename)
        assert r.status_code == 200, r.text
        assert r.json()["input"]["bytes"] == len(data)  # the upload was analysed, not the named file
        shown = r.json()["input"]["filename"]
        assert "/" not in shown and "\\" not in shown and ".." not in shown and "\x00" not in shown
        assert os.listdir(tmp_dir) == []
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


def test_static_files_do_not_leak(client):
    for url in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/../../errors.py"):
        assert client.get(url).status_code == 404, url


def test_concurrent_requests_match_sequential_ones(client, wave):
    files = [encode(synthetic_wave(4.0, 4000, seed=s), 4000) for s in range(4)]
    sequential = [post_file(client, f).json() for f in files]

    def call(i):
        return post_file(client, files[i % 4], f"c{i}.wav").json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(16)))
    for i, body in enumerate(results):
        expected = sequential[i % 4]
        assert body["input"]["filename"] == f"c{i}.wav"
        assert body["labels"] == expected["labels"]
        for a, b in zip(body["features"], expected["features"]):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
    assert os.listdir(client.tmp_dir) == []


def test_model_is_loaded_once(tmp_path, wave, monkeypatch):
    import murmurlm.inference.predict as predict

    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    calls = []
    real = predict.load_model
    monkeypatch.setattr(predict, "load_model", lambda path=None, **kw: calls.append(path) or real(path, **kw))
    app = create_app(ckpt, tmp_dir=tmp_path / "svc")
    with TestClient(app) as client:
        for _ in range(3):
            assert post_file(client, encode(wave, 4000)).status_code == 200
        assert client.get("/healthz").json()["model"] == "tiny.pt"
    assert calls == [ckpt]
    assert not (tmp_path / "svc").exists() or os.listdir(tmp_path / "svc") == []


def test_own_temp_dir_is_removed_at_shutdown(predictor, wave):
    app = create_app(predictor)
    tmp_dir = app.state.service.tmp_dir
    with TestClient(app) as client:
        assert post_file(client, encode(wave, 4000)).status_code == 200
        assert tmp_dir.is_dir() and os.listdir(tmp_dir) == []
    assert not tmp_dir.exists()


def test_healthz_openapi_and_page(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["ask"] is False
    assert h["limits"] == {"max_upload_mb": 2.0, "max_duration_s": 30.0, "min_duration_s": 2.0}
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/healthz"} <= set(schema["paths"])
    assert "/v1/ask" not in schema["paths"]
    assert client.get("/docs").status_code == 404  # its viewer would load scripts from a CDN
    post = schema["paths"]["/v1/predict"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "400", "408", "413", "415", "422", "503"} <= set(post["responses"])
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="file-input"' in page.text
    for asset in ("/", "/static/app.js", "/static/style.css"):  # offline: nothing from elsewhere
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert client.post("/v1/ask?question=x", content=b"x", headers={"content-type": "audio/wav"}).status_code == 404


def test_create_app_rejects_bad_limits(predictor):
    with pytest.raises(ValueError, match="limits"):
        create_app(predictor, max_upload_mb=0)


class EchoLM:
    """A stand-in audio LM backend: records what it was given, answers with the audio's length."""

    name = "echo-lm"
    sampling_rate = 16000
    max_audio_seconds = 3.0

    def __init__(self):
        self.calls = []

    def generate(self, waves, questions):
        self.calls.append((waves, questions))
        return [f" {len(w)} samples; you asked: {q} " for w, q in zip(waves, questions)]


def test_ask_endpoint(predictor, tmp_path, wave):
    backend = EchoLM()
    with TestClient(create_app(predictor, audio_lm=backend, tmp_dir=tmp_path / "svc")) as client:
        assert client.get("/healthz").json()["ask"] is True
        assert "/v1/ask" in client.get("/openapi.json").json()["paths"]
        data = encode(wave, 4000)
        r = client.post("/v1/ask", params={"question": "Murmur?"}, files={"file": ("rec.wav", data, "audio/wav")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["answer"] == "48000 samples; you asked: Murmur?"  # 3 s at 16 kHz, stripped
        assert body["question"] == "Murmur?" and body["model"] == "echo-lm"
        assert body["input"]["sampling_rate"] == 4000 and body["input"]["bytes"] == len(data)
        assert body["warnings"] == ["resampled from 4000 Hz to 16000 Hz",
                                    "only the first 3 s were given to the audio model"]
        (waves, questions), = backend.calls
        assert len(waves[0]) == 48000 and questions == ["Murmur?"]
        for params in ({}, {"question": ""}):
            r = client.post("/v1/ask", params=params, files={"file": ("rec.wav", data, "audio/wav")})
            assert r.status_code == 422 and r.json()["reason"] == "invalid_parameter", r.text
            assert "question" in r.json()["detail"]
        r = client.post("/v1/ask", params={"question": "q"}, files={"file": ("x.wav", b"junk" * 10, "audio/wav")})
        assert r.status_code == 415 and r.json()["reason"] == "not_audio"
        assert len(backend.calls) == 1  # refused requests never reach the model
        assert os.listdir(tmp_path / "svc") == []


def test_ask_hands_an_adapter_its_band_mapping(predictor, tmp_path, wave):
    """An adapter fine-tuned with playback=4 gets the 4 kHz recording sample for sample (read at
    16000 / 4 Hz, taken as 16 kHz audio), and 4x the model window of recording."""
    backend = EchoLM()
    backend.playback = 4.0
    with TestClient(create_app(predictor, audio_lm=backend, tmp_dir=tmp_path / "svc")) as client:
        data = encode(wave, 4000)
        r = client.post("/v1/ask", params={"question": "Murmur?"}, files={"file": ("rec.wav", data, "audio/wav")})
        assert r.status_code == 200, r.text
        (waves, _), = backend.calls
        assert len(waves[0]) == min(len(wave), 12 * 4000)  # up to 3 s x 4 of recording, not resampled
        assert not any("resampled" in w for w in r.json()["warnings"])


@pytest.mark.slow
def test_ask_with_a_tiny_audio_lm(predictor, tmp_path, wave):
    from murmurlm.cli.serve import load_audio_lm
    from murmurlm.models.audio_lm import LoraSettings, get_backend
    from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio

    source = build_tiny_qwen2_audio(tmp_path / "tiny-lm", seed=0)
    trained = get_backend("qwen2-audio").load(source, lora=LoraSettings(rank=4, alpha=8))
    adapter = trained.save_adapter(tmp_path / "adapter")
    backend = load_audio_lm(adapter)  # what `murmurlm serve --audio-lm DIR` does
    question = "Is a heart murmur present?"
    upload = tmp_path / "rec.wav"
    upload.write_bytes(encode(wave, 4000))
    from murmurlm.inference.audio import read_recording

    first = read_recording(upload, 16000).waveform[: int(trained.max_audio_seconds * 16000)]
    expected = trained.generate([first], [question])[0]
    app = create_app(predictor, audio_lm=backend, tmp_dir=tmp_path / "svc")
    with TestClient(app) as client:
        assert client.get("/healthz").json()["ask"] is True
        r = client.post("/v1/ask", params={"question": "Is a heart murmur present?"},
                        files={"file": ("rec.wav", encode(wave, 4000), "audio/wav")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["question"] == question and body["answer"] == expected.strip()
        assert "resampled from 4000 Hz to 16000 Hz" in body["warnings"]
        assert f"only the first {trained.max_audio_seconds:g} s were given to the audio model" in body["warnings"]
        no_question = client.post("/v1/ask", files={"file": ("rec.wav", encode(wave, 4000), "audio/wav")})
        assert no_question.status_code == 422 and "question" in no_question.json()["detail"]
        r = client.post("/v1/ask", params={"question": "q"}, files={"file": ("x.wav", b"junk" * 10, "audio/wav")})
        assert r.status_code == 415
        assert os.listdir(tmp_path / "svc") == []


def test_packaged_default_model(tmp_path, wave):
    from murmurlm.inference.predict import DEFAULT_CHECKPOINT

    with TestClient(create_app(None, tmp_dir=tmp_path / "svc")) as client:
        assert client.get("/healthz").json()["model"] == DEFAULT_CHECKPOINT.name
        r = post_file(client, encode(wave, 4000))
        assert r.status_code == 200, r.text
        check_prediction(r.json())


def test_segmentation_switched_off(predictor, tmp_path, wave):
    with TestClient(create_app(predictor, segment=False, tmp_dir=tmp_path / "svc")) as client:
        assert client.get("/healthz").json()["segmentation"] is False
        r = post_file(client, encode(wave, 4000), query="?plot=true")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["segmentation"]["available"] is False and body["quality"]["method"] == "energy"
        assert "segmentation switched off" in body["warnings"]
        assert base64.b64decode(body["plot_png"])[:4] == b"\x89PNG"


def test_corrupted_files_never_give_a_500(predictor, tmp_path, wave):
    """Bytes flipped, cut or inserted anywhere in a WAV or FLAC header or body: a 200 or a 4xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    sources = [encode(wave[:12000], 4000), encode(wave[:12000], 4000, "FLAC")]
    tmp_dir = tmp_path / "svc"
    client = TestClient(create_app(predictor, tmp_dir=tmp_dir), raise_server_exceptions=False)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(which=st.integers(0, 1), pos=st.integers(0, 200), value=st.binary(min_size=1, max_size=8),
           action=st.sampled_from(["replace", "cut", "insert"]))
    def check(which, pos, value, action):
        data = sources[which]
        if action == "replace":
            data = data[:pos] + value + data[pos + len(value):]
        elif action == "cut":
            data = data[:pos]
        else:
            data = data[:pos] + value + data[pos:]
        r = post_file(client, data, "fuzz.wav")
        assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)
        if r.status_code != 200:
            assert r.json()["detail"].startswith("fuzz.wav: ") or r.json()["reason"] in ("empty",)
        assert os.listdir(tmp_dir) == []

    check()


def test_patients_endpoint_answers_one_patient_from_its_sites(tmp_path):
    """POST /v1/patients with the packaged model: one file field per site, one patient answer with
    where the murmur is heard; a bad file is refused with its 4xx, the site and file named; an
    unknown site field is a 422; nothing is left on disk."""
    from murmurlm.inference.predict import load_model
    from murmurlm.signal.synth import MurmurSpec, synth_pcg

    def wav(murmur: bool, seed: int) -> bytes:
        return encode(synth_pcg(8.0, 4000, heart_rate=80, murmurs=[MurmurSpec(grade="III/VI")] if murmur else [],
                                seed=seed).waveform, 4000)

    with TestClient(create_app(load_model(), tmp_dir=tmp_path / "svc")) as client:
        files = [("AV", ("av.wav", wav(False, 0), "audio/wav")), ("MV", ("mv.wav", wav(True, 1), "audio/wav")),
                 ("TV", ("tv.wav", wav(True, 2), "audio/wav"))]
        r = client.post("/v1/patients", files=files, params={"plot": "true"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["labels"]["Murmur"] == "Present"
        assert set(body["murmur_locations"]["label"].split("+")) == {"TV", "MV"}
        assert [s["site"] for s in body["sites"]] == ["AV", "MV", "TV"]
        assert body["sites"][1]["input"]["filename"] == "mv.wav" and body["plot_png"]
        bad = client.post("/v1/patients", files=[files[0], ("PV", ("pv.wav", b"junk" * 50, "audio/wav"))])
        assert bad.status_code == 415 and "PV" in bad.json()["detail"] and "pv.wav" in bad.json()["detail"]
        odd = client.post("/v1/patients", files=[("XX", ("x.wav", wav(False, 3), "audio/wav"))])
        assert odd.status_code == 422 and "XX" in odd.json()["detail"]
        many = client.post("/v1/patients", files=files + [("PV", ("pv.wav", wav(False, 4), "audio/wav")),
                                                          ("Phc", ("p.wav", wav(False, 5), "audio/wav"))])
        assert many.status_code == 422 and "at most 4" in many.json()["detail"]
        assert "/v1/patients" in client.get("/openapi.json").json()["paths"]
    assert not (tmp_path / "svc").exists() or os.listdir(tmp_path / "svc") == []


def test_a_recording_drowned_in_noise_is_answered_unknown_with_the_reason(client):
    if not segmentation_available():
        pytest.skip("the noise check needs the packaged segmenter's cycles")
    from murmurlm.signal.noise import pcg_add_noise
    from murmurlm.signal.synth import synth_pcg

    pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=4)
    noisy = pcg_add_noise(pcg.waveform, 4000, "white", -10.0, seed=1)
    noisy = noisy / np.abs(noisy).max() * 0.9  # within full scale for the 16-bit file
    body = post_file(client, encode(noisy, 4000)).json()
    check_prediction(body)
    assert body["quality"]["flag"] == "poor" and body["quality"]["reason"].startswith("too noisy")
    assert body["quality"]["heart_contrast_db"] < 6.0
    assert body["labels"]["Murmur"] == "Unknown"
    assert any(w.startswith("Murmur: Unknown, because the recording is of poor quality (too noisy")
               for w in body["warnings"])
