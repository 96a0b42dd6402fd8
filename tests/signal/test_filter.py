"""pcg_filter / pcg_resample / pcg_normalise / crop_annotated: physical properties on seeded signals."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data.circor import Segment
from murmurlm.signal.crop import crop_annotated
from murmurlm.signal.cycles import annotated_span
from murmurlm.signal.filter import pcg_clean, pcg_filter, pcg_normalise, pcg_resample

FS = 4000


def tone(freq: float, seconds: float = 2.0, fs: int = FS) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return np.sin(2 * np.pi * freq * t)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x[200:-200] ** 2)))  # edges aside


@pytest.mark.parametrize("freq, kept", [(5.0, False), (100.0, True), (300.0, True), (1200.0, False)])
def test_band_pass_keeps_the_band_and_removes_the_rest(freq, kept):
    y = pcg_filter(tone(freq), FS, low=25, high=400, order=4)
    ratio = rms(y) / rms(tone(freq))
    assert (ratio > 0.9) if kept else (ratio < 0.05)


def test_filter_is_zero_phase():
    x = np.zeros(FS)
    x[FS // 2] = 1.0  # an impulse: a zero-phase filter's response is symmetric around it
    y = pcg_filter(x, FS, low=25, high=400)
    assert int(np.argmax(np.abs(y))) == FS // 2
    np.testing.assert_allclose(y[FS // 2 - 50:FS // 2], y[FS // 2 + 50:FS // 2:-1], atol=1e-9)


def test_filter_keeps_dtype_and_handles_short_signals_and_edges():
    x = np.random.default_rng(0).standard_normal(30).astype(np.float32)
    assert pcg_filter(x, FS).dtype == np.float32
    assert pcg_filter(x, FS, low=None, high=None).shape == (30,)
    # a high edge at or above Nyquist degrades to a high-pass instead of failing
    assert pcg_filter(tone(100.0, fs=1000), 1000, low=25, high=600).shape == (2000,)
    with pytest.raises(ValueError, match="below high"):
        pcg_filter(x, FS, low=400, high=100)
    with pytest.raises(ValueError, match="sampling_rate"):
        pcg_filter(x, 0)


def test_resample_preserves_frequency_and_length():
    x = tone(150.0, seconds=2.0)
    y = pcg_resample(x, FS, 2000)
    assert y.shape == (4000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.fft.rfftfreq(len(y), 1 / 2000)[np.argmax(spectrum)] - 150.0) < 1.0
    assert pcg_resample(np.zeros(44100), 44100, 2000).shape == (2000,)
    np.testing.assert_array_equal(pcg_resample(x, FS, FS), x)


def test_resample_removes_what_the_new_rate_cannot_hold():
    y = pcg_resample(tone(1500.0), FS, 2000)  # above the new Nyquist (1 kHz): must not alias to 500 Hz
    assert rms(y) < 0.05


def test_normalise_scales_a_robust_amplitude():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(FS) * 0.01
    x[100] = 50.0  # one click must not squash the rest
    y = pcg_normalise(x, percentile=99)
    assert abs(np.percentile(np.abs(y), 99) - 1.0) < 0.05
    assert np.all(pcg_normalise(np.zeros(100)) == 0)


def test_clean_chains_resample_filter_normalise():
    x = (tone(100.0) + tone(1500.0)).astype(np.float32)
    y = pcg_clean(x, FS, target_rate=2000, low=25, high=400)
    assert y.dtype == np.float32 and y.shape == (4000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.fft.rfftfreq(len(y), 1 / 2000)[np.argmax(spectrum)] - 100.0) < 1.0


def test_crop_annotated_keeps_the_annotated_stretch_only():
    x = np.arange(10 * FS, dtype=np.float32)
    segs = [Segment(0.0, 1.5, 0), Segment(1.5, 1.6, 1), Segment(1.6, 8.0, 4), Segment(8.0, 10.0, 0)]
    assert annotated_span(segs) == (1.5, 8.0)
    y = crop_annotated(x, FS, segs)
    assert y[0] == 1.5 * FS and len(y) == 6.5 * FS
    # nothing annotated, or too little: the whole recording
    assert len(crop_annotated(x, FS, [Segment(0.0, 10.0, 0)])) == len(x)
    assert len(crop_annotated(x, FS, [Segment(1.0, 1.5, 2)], min_seconds=2.0)) == len(x)
    assert len(crop_annotated(x, FS, [])) == len(x)
