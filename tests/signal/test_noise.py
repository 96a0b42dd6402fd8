"""signal.noise: every noise type at the SNR asked for, each with its character."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.signal.noise import NOISE_TYPES, make_noise, pcg_add_noise
from murmurlm.signal.synth import synth_pcg

FS = 4000


@pytest.fixture(scope="module")
def pcg():
    return synth_pcg(8.0, FS, heart_rate=80, seed=0).waveform


def snr(clean, noisy):
    noise = noisy.astype(np.float64) - clean
    return 20 * np.log10(np.sqrt(np.mean(clean.astype(np.float64) ** 2)) / np.sqrt(np.mean(noise ** 2)))


@pytest.mark.parametrize("kind", NOISE_TYPES)
@pytest.mark.parametrize("target", [20.0, 10.0, 5.0, 0.0])
def test_the_snr_is_what_was_asked(pcg, kind, target):
    bank = [np.random.default_rng(1).standard_normal(FS * 3).astype(np.float32)] if kind == "ambient" else None
    noisy = pcg_add_noise(pcg, FS, kind, target, seed=3, bank=bank)
    assert noisy.dtype == np.float32 and noisy.shape == pcg.shape
    assert snr(pcg, noisy) == pytest.approx(target, abs=0.05)
    again = pcg_add_noise(pcg, FS, kind, target, seed=3, bank=bank)
    assert np.array_equal(noisy, again)  # seeded


def _slope(x):
    """Log-log slope of the power spectrum between 20 and 1000 Hz."""
    f = np.fft.rfftfreq(len(x), 1 / FS)
    p = np.abs(np.fft.rfft(x)) ** 2
    keep = (f > 20) & (f < 1000)
    return np.polyfit(np.log(f[keep]), np.log(p[keep] + 1e-20), 1)[0]


def test_each_noise_has_its_character():
    n = FS * 8
    slopes = {k: _slope(make_noise(k, n, FS, seed=0)) for k in ("white", "pink", "brown")}
    assert abs(slopes["white"]) < 0.2 and slopes["pink"] == pytest.approx(-1.0, abs=0.2)
    assert slopes["brown"] == pytest.approx(-2.0, abs=0.3)
    hum = make_noise("hum", n, FS, seed=0)
    f = np.fft.rfftfreq(n, 1 / FS)
    peak = f[np.argmax(np.abs(np.fft.rfft(hum)))]
    assert min(abs(peak - 50), abs(peak - 60)) < 1.0
    friction = make_noise("friction", n, FS, seed=0)
    kurtosis = np.mean(friction ** 4) / np.mean(friction ** 2) ** 2
    assert kurtosis > 6  # bursts over near silence, not steady noise (Gaussian: 3)
    speech = make_noise("speech", n, FS, seed=0)
    envelope = np.abs(speech).reshape(-1, FS // 10).mean(axis=1)
    assert envelope.std() / envelope.mean() > 0.3  # syllables and pauses
    for x in (hum, friction, speech):
        assert x.std() == pytest.approx(1.0, rel=1e-6)


def test_bad_requests_are_clear_and_silence_stays_silent():
    with pytest.raises(ValueError, match="unknown noise type 'rain'"):
        make_noise("rain", 100, FS)
    with pytest.raises(ValueError, match="needs a bank"):
        make_noise("ambient", 100, FS)
    with pytest.raises(ValueError, match="no usable"):
        make_noise("ambient", 100, FS, bank=[np.zeros(50)])
    silent = np.zeros(FS, np.float32)
    assert np.array_equal(pcg_add_noise(silent, FS, "pink", 0.0), silent)


def test_the_circor_noise_bank_cuts_unannotated_stretches(synthetic_circor):
    from murmurlm.data.circor import load_circor
    from murmurlm.signal.noise import circor_noise_bank

    recs = load_circor(synthetic_circor).recordings
    bank = circor_noise_bank(recs, min_seconds=0.1)
    state0 = sum(1 for r in recs for s in r.load_segments() if s.state == 0 and s.end - s.start >= 0.1)
    assert len(bank) == state0 > 0
    assert all(len(b) >= 0.1 * FS - 1 for b in bank)


def test_espeak_speech_bank_is_speech_at_the_asked_rate(pcg):
    from system_tools import need_tool

    from murmurlm.signal.noise import SPEECH_SENTENCES, espeak_speech_bank

    need_tool("espeak-ng")
    bank = espeak_speech_bank(FS, sentences=SPEECH_SENTENCES[:2], voices=("en-us", "de"))
    assert len(bank) == 4 and all(b.dtype == np.float32 for b in bank)
    for clip in bank:
        assert 0.8 * FS < len(clip) < 8 * FS  # a sentence: one to a few seconds at 4 kHz
        spectrum = np.abs(np.fft.rfft(clip)) ** 2
        freqs = np.fft.rfftfreq(len(clip), 1 / FS)
        assert spectrum[(freqs > 80) & (freqs < 1500)].sum() > 0.5 * spectrum.sum()  # voice, not hiss
    noisy = pcg_add_noise(pcg, FS, "speech", 5.0, seed=0, bank=bank)
    assert snr(pcg, noisy) == pytest.approx(5.0, abs=0.05)


def test_espeak_speech_bank_names_the_missing_tool():
    from murmurlm.signal.noise import espeak_speech_bank

    with pytest.raises(FileNotFoundError, match="no-such-espeak"):
        espeak_speech_bank(executable="no-such-espeak")
