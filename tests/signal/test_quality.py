"""``pcg_quality``: the share of a recording analysis can rely on, by cycles or by energy."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from murmurlm.signal.cycles import complete_cycles
from murmurlm.signal.heartbeat import pcg_heartbeat
from murmurlm.signal.quality import NOISE_CONTRAST_DB, heart_contrast_db, CYCLE_RULE, FAIR, GOOD, pcg_quality
from murmurlm.signal.synth import MurmurSpec, synth_pcg


def seg(start, end, state):
    return SimpleNamespace(start=start, end=end, state=state)


def test_energy_method_counts_silent_clipped_and_burst_windows():
    rng = np.random.default_rng(0)
    wave = (0.05 * rng.standard_normal(10 * 4000)).astype(np.float32)
    wave[0:4000] = 0.0                      # window 0 silent
    wave[4000:4040] = 1.0                   # window 1 clipped: 1 % of its samples at full scale (> 0.5 %)
    wave[8000:12000] *= 5                   # window 2 a burst: RMS 0.25 > 4 x the median 0.05, none clipped
    q = pcg_quality(wave, 4000)
    assert q["method"] == "energy"
    assert q["usable_fraction"] == pytest.approx(0.7)
    assert q["flag"] == "good" and GOOD <= 0.7
    assert "7 of 10 one-second windows usable (1 silent, 1 clipped, 1 bursts)" == q["detail"]


def test_cycles_method_counts_time_inside_complete_cycles():
    rng = np.random.default_rng(1)
    wave = (0.05 * rng.standard_normal(10 * 4000)).astype(np.float32)
    # two complete cycles of 1 s each (0-2 s), then an incomplete one: 20 % of 10 s
    cycle = lambda t0: [seg(t0, t0 + 0.1, 1), seg(t0 + 0.1, t0 + 0.4, 2), seg(t0 + 0.4, t0 + 0.5, 3),
                        seg(t0 + 0.5, t0 + 1.0, 4)]
    segments = cycle(0.0) + cycle(1.0) + [seg(2.0, 2.1, 1), seg(2.1, 2.4, 2)]
    q = pcg_quality(wave, 4000, list(reversed(segments)))  # order does not matter
    assert q["method"] == "cycles"
    assert q["usable_fraction"] == pytest.approx(0.2, abs=0.002)
    assert q["flag"] == "poor" and 0.2 < FAIR
    assert "2 complete heart cycle(s)" in q["detail"]


def test_a_synthetic_pcg_with_its_true_segments_is_good():
    pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=4)
    q = pcg_quality(pcg.waveform, 4000, pcg.segments)
    assert q["method"] == "cycles" and q["flag"] == "good" and q["usable_fraction"] > 0.8


def test_no_samples_is_poor():
    assert pcg_quality(np.zeros(0, np.float32), 4000) == {"usable_fraction": 0.0, "flag": "poor",
                                                          "method": "energy", "detail": "no samples",
                                                          "heart_contrast_db": None,
                                                          "reason": "the recording holds no samples"}


# ----------------------------------------------------------------------------------------------
# a 12 s synthetic PCG with a murmur, damaged on purpose


@pytest.fixture(scope="module")
def pcg():
    spec = MurmurSpec("systolic", "Holosystolic", "Plateau", "II/VI", "Medium", "Blowing")
    return synth_pcg(12.0, 4000, heart_rate=75, murmurs=[spec], seed=2)


def test_quality_from_true_segmentation(pcg):
    q = pcg_quality(pcg.waveform, 4000, pcg.segments)
    assert q["method"] == "cycles" and q["flag"] == "good"
    covered = sum(e - s for s, e in complete_cycles(pcg.segments, CYCLE_RULE))
    assert q["usable_fraction"] == pytest.approx(covered / 12.0, abs=1e-3)


def test_energy_quality_flags_silence_clipping_and_bursts(pcg):
    wave = pcg.waveform / np.max(np.abs(pcg.waveform)) * 0.5
    assert pcg_quality(wave, 4000)["flag"] == "good"
    damaged = wave.copy()
    damaged[: 4 * 4000] = 0.0  # 4 s silent
    damaged[4 * 4000: 6 * 4000] = np.clip(damaged[4 * 4000: 6 * 4000] * 50, -1, 1)  # 2 s clipped
    damaged[6 * 4000: 8 * 4000] = 0.6 * np.sin(2 * np.pi * 200 * np.arange(8000) / 4000)  # 2 s loud hum
    q = pcg_quality(damaged, 4000)
    assert q["method"] == "energy"
    assert q["usable_fraction"] == pytest.approx(4 / 12, abs=1e-3)
    assert q["flag"] == "fair"
    assert "4 silent, 2 clipped, 2 bursts" in q["detail"]
    assert pcg_quality(np.zeros(4000 * 5, np.float32), 4000)["flag"] == "poor"


def test_cycles_over_damaged_windows_do_not_count(pcg):
    wave = pcg.waveform / np.max(np.abs(pcg.waveform)) * 0.5
    clean = pcg_quality(wave, 4000, pcg.segments)["usable_fraction"]
    damaged = wave.copy()
    damaged[: 6 * 4000] = 0.0  # half the recording silent, the segmentation unchanged
    q = pcg_quality(damaged, 4000, pcg.segments)
    assert q["method"] == "cycles"
    assert q["usable_fraction"] == pytest.approx(clean / 2, abs=0.06)
    assert "6 silent" in q["detail"]


def test_dc_offset_is_silence():
    q = pcg_quality(np.full(4000 * 5, 0.5, np.float32), 4000)
    assert q["flag"] == "poor" and "5 silent" in q["detail"]


# -- the noise check (the noise issue): heart sounds over the background of the average heartbeat


@pytest.mark.parametrize("kind", ["white", "pink", "hum"])
def test_noise_at_minus_10_db_makes_a_clean_recording_poor_and_says_why(kind):
    from murmurlm.signal.noise import pcg_add_noise

    pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=4)
    clean = pcg_quality(pcg.waveform, 4000, pcg.segments)
    assert clean["flag"] == "good" and clean["reason"] is None and clean["heart_contrast_db"] > NOISE_CONTRAST_DB
    noisy = pcg_quality(pcg_add_noise(pcg.waveform, 4000, kind, -10.0, seed=1), 4000, pcg.segments)
    assert noisy["flag"] == "poor" and noisy["heart_contrast_db"] < NOISE_CONTRAST_DB
    assert noisy["reason"].startswith("too noisy") and "dB above the background" in noisy["detail"]
    assert noisy["usable_fraction"] == clean["usable_fraction"]  # the cycles are all there: only noise decides


def test_the_contrast_falls_as_the_noise_rises():
    from murmurlm.signal.noise import pcg_add_noise

    pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=4)
    contrast = [pcg_quality(pcg_add_noise(pcg.waveform, 4000, "pink", snr, seed=2), 4000, pcg.segments)
                ["heart_contrast_db"] for snr in (30, 20, 10, 0, -10)]
    assert all(a > b for a, b in zip(contrast, contrast[1:])), contrast


def test_a_loud_systolic_murmur_is_not_taken_for_noise():
    from murmurlm.signal.synth import MurmurSpec

    for timing in ("Holosystolic", "Early-systolic"):
        pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=5,
                        murmurs=[MurmurSpec("systolic", timing, "Plateau", "III/VI", "Medium", "Harsh")])
        q = pcg_quality(pcg.waveform, 4000, pcg.segments)
        assert q["flag"] == "good" and q["heart_contrast_db"] > NOISE_CONTRAST_DB, (timing, q)


def test_without_a_reliable_heartbeat_there_is_no_contrast():
    pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=4)
    assert pcg_quality(pcg.waveform, 4000)["heart_contrast_db"] is None  # no segments: energy method
    assert heart_contrast_db(pcg_heartbeat(pcg.waveform, 4000, pcg.segments[:3])) is None
