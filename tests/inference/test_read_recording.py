"""Reading a user's recording for prediction: conversions said in notes, every refusal with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from murmurlm.inference.audio import RecordingError, read_recording
from murmurlm.signal.filter import pcg_resample


def tone(freq: float, rate: int, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 2000])
def test_resampling_keeps_the_tone(tmp_path, rate):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(150.0, rate), rate)
    rec = read_recording(path, target_rate=4000)
    assert rec.sampling_rate == 4000 and rec.info.sampling_rate == rate
    assert len(rec.waveform) == pytest.approx(8000, abs=1)
    assert peak_frequency(rec.waveform, 4000) == pytest.approx(150.0, abs=1.0)
    assert np.max(np.abs(rec.waveform[100:-100])) == pytest.approx(0.5, abs=0.02)
    assert rec.notes == [f"resampled from {rate} Hz to 4000 Hz"]


def test_stereo_is_averaged(tmp_path):
    left, right = tone(100.0, 4000), tone(100.0, 4000, amp=0.1)
    sf.write(tmp_path / "s.flac", np.stack([left, right], axis=1), 4000, format="FLAC")
    rec = read_recording(tmp_path / "s.flac", target_rate=4000)
    assert rec.notes == ["mixed 2 channels down to mono"]
    np.testing.assert_allclose(rec.waveform, (left + right) / 2, atol=1e-4)


def test_float_above_full_scale_is_scaled(tmp_path):
    sf.write(tmp_path / "loud.wav", tone(100.0, 4000, amp=3.0), 4000, subtype="FLOAT")
    rec = read_recording(tmp_path / "loud.wav", target_rate=4000)
    assert np.max(np.abs(rec.waveform)) == pytest.approx(1.0)
    assert rec.notes[0].startswith("scaled down from a peak of 3")


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case, reason", [
    ("missing", "not_found"), ("empty", "empty"), ("text", "not_audio"), ("truncated", "truncated"),
    ("8bit", "unsupported"), ("nan", "non_finite"), ("inf", "non_finite"), ("long", "too_long"),
    ("short", "too_short"), ("low_rate", "unsupported"), ("truncated_flac", "truncated"),
])
def test_refusals(tmp_path, case, reason):
    path = tmp_path / f"{case}.wav"
    x = tone(100.0, 4000, seconds=4.0)
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("definitely not audio\n" * 50)
    elif case == "truncated":
        sf.write(path, x, 4000)
        path.write_bytes(path.read_bytes()[:20000])
    elif case == "8bit":
        sf.write(path, x, 4000, subtype="PCM_U8")
    elif case in ("nan", "inf"):
        x[5] = np.nan if case == "nan" else np.inf
        sf.write(path, x, 4000, subtype="FLOAT")
    elif case == "long":
        sf.write(path, np.tile(x, 4), 4000)
    elif case == "short":
        sf.write(path, x[:2000], 4000)
    elif case == "low_rate":
        sf.write(path, x[::10], 400)
    elif case == "truncated_flac":
        path = tmp_path / "t.flac"
        sf.write(path, np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.1, 4000, format="FLAC")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RecordingError) as info:
        read_recording(path, target_rate=4000, max_duration_s=10.0, min_duration_s=1.0)
    assert info.value.reason == reason
    assert str(path) in str(info.value)


def test_duration_cap_applies_even_without_header_length(tmp_path):
    # a WAV whose data chunk size is left "unknown" (streaming writers): the cap bounds decoding
    path = tmp_path / "stream.wav"
    sf.write(path, tone(100.0, 4000, seconds=30.0), 4000)
    data = bytearray(path.read_bytes())
    pos = data.index(b"data")
    data[pos + 4:pos + 8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError) as info:
        read_recording(path, target_rate=4000, max_duration_s=10.0)
    assert info.value.reason == "too_long"


def test_resample_rejects_bad_rates():
    with pytest.raises(ValueError):
        pcg_resample(np.zeros(10, np.float32), 0, 4000)


def test_the_file_is_read_once_at_its_own_rate_and_resampled_once(tmp_path):
    from murmurlm.data.audio import read_pcg

    path = tmp_path / "tone.wav"
    sf.write(path, tone(150.0, 44100), 44100)
    native = read_pcg(path)
    assert native.sampling_rate == 44100 and native.notes == []
    rec = read_recording(path, target_rate=4000)
    expected = pcg_resample(native.waveform.astype(np.float64), 44100, 4000).astype(np.float32)
    assert np.array_equal(rec.waveform, expected)
