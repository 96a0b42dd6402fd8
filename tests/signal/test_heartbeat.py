"""The average heartbeat (:func:`murmurlm.signal.heartbeat.pcg_heartbeat`): its calibration and
phase alignment, the cycles it keeps, skips and rejects (with the reason counted), the fallback on
recordings without usable cycles, and its errors. Physical properties on seeded synthetic PCG
(:func:`murmurlm.signal.synth.synth_pcg`), whose segments are the ground truth."""

from __future__ import annotations


import numpy as np
import pytest

from murmurlm.data.circor import Segment
from murmurlm.errors import MurmurlmError
from murmurlm.signal.cycles import TOLERANT, complete_cycles
from murmurlm.signal.heartbeat import (
    DEFAULT_BINS, PHASES, REASONS, CycleLimits, Heartbeat, NonFiniteSignalError, band_power, pcg_heartbeat,
)
from murmurlm.signal.synth import MurmurSpec, synth_pcg

FS = 4000


def beat(t, d=(0.1, 0.2, 0.1, 0.4)):
    """S1, systole, S2, diastole from ``t`` with the durations ``d``."""
    out, now = [], t
    for state, length in zip((1, 2, 3, 4), d):
        out.append(Segment(round(now, 6), round(now + length, 6), state))
        now += length
    return out


def beats(n, t0=0.0, d=(0.1, 0.2, 0.1, 0.4)):
    return [s for k in range(n) for s in beat(t0 + k * sum(d), d)]


def inner(pcg):
    """The synthetic segments without the (possibly cut) first and last cycles' pieces."""
    return [s for s in pcg.segments if 0.0 < s.start and s.end < len(pcg.waveform) / pcg.sampling_rate]


# ---------------------------------------------------------------------------------------------
# the representation


def test_shapes_bands_and_the_robust_combination():
    pcg = synth_pcg(12.0, FS, heart_rate=75, murmurs=[MurmurSpec()], seed=0)
    hb = pcg_heartbeat(pcg.waveform, FS, pcg.segments)
    n_freq, n_bins = 32, sum(DEFAULT_BINS)
    assert isinstance(hb, Heartbeat) and hb.reliable and hb.fallback is None
    assert hb.image.shape == hb.spread.shape == (n_freq, n_bins)
    assert hb.cycles.shape == (hb.n_kept, n_freq, n_bins) and hb.cycles.dtype == np.float32
    assert hb.phase_edges == (0, 8, 32, 40, 72)
    assert hb.band_edges[0] == pytest.approx(25.0) and hb.band_edges[-1] == pytest.approx(800.0)
    ratios = hb.band_edges[1:] / hb.band_edges[:-1]
    assert np.allclose(ratios, ratios[0])                       # log-spaced
    assert np.all((hb.frequencies > hb.band_edges[:-1]) & (hb.frequencies < hb.band_edges[1:]))
    np.testing.assert_allclose(hb.image, np.median(hb.cycles, axis=0), rtol=1e-5, atol=1e-12)
    q75, q25 = np.percentile(hb.cycles, [75, 25], axis=0)
    np.testing.assert_allclose(hb.spread, q75 - q25, rtol=1e-4, atol=1e-12)
    assert hb.kept.shape == (hb.n_kept, 2) and hb.boundaries.shape == (hb.n_kept, 5)
    assert np.all(np.diff(hb.boundaries, axis=1) > 0)
    np.testing.assert_allclose(hb.kept, hb.boundaries[:, [0, 4]])
    assert set(hb.rejected) == set(REASONS)
    for name, n in zip(PHASES, DEFAULT_BINS):
        assert hb.phase(name).shape == (n_freq, n) and hb.phase(name, of="cycles").shape == (hb.n_kept, n_freq, n)


def test_every_complete_cycle_is_kept_or_rejected():
    pcg = synth_pcg(15.0, FS, heart_rate=90, seed=4)
    hb = pcg_heartbeat(pcg.waveform, FS, pcg.segments)
    truth = complete_cycles(pcg.segments)
    assert hb.found == len(truth) and hb.n_kept == len(truth)   # all plausible on clean synthetic audio
    np.testing.assert_allclose(hb.kept, np.array(truth))
    assert 60 / 90 * 0.85 < 60 / hb.heart_rate < 60 / 90 * 1.15


def test_band_power_is_calibrated_to_the_mean_square():
    """A 200 Hz sine of amplitude 0.5: every bin of every phase holds 0.5²/2 = 0.125 full scale²,
    all of it in the band containing 200 Hz."""
    t = np.arange(8 * FS) / FS
    x = (0.5 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    hb = pcg_heartbeat(x, FS, beats(9, t0=0.4))
    total = hb.image.sum(axis=0)
    np.testing.assert_allclose(total, 0.125, rtol=0.02)
    peak = int(np.argmax(hb.image[:, 30]))
    assert hb.band_edges[peak] <= 200.0 < hb.band_edges[peak + 1]
    neighbourhood = hb.image[max(peak - 2, 0): peak + 3].sum(axis=0)
    assert np.all(neighbourhood > 0.97 * total)


def test_band_power_splits_bins_by_overlap():
    """Bins at 0, 10, 20, 30 Hz, each 10 Hz wide: a band takes the share of each bin inside it."""
    p = np.array([1.0, 2.0, 3.0, 4.0])
    out = band_power(p, np.array([0.0, 10.0, 20.0, 30.0]), np.array([5.0, 15.0, 22.5, 35.0]))
    np.testing.assert_allclose(out, [2.0, 0.75 * 3.0, 0.25 * 3.0 + 4.0])
    frames = np.stack([p, 2 * p])                                      # (..., bins): frame by frame
    np.testing.assert_allclose(band_power(frames, np.arange(4) * 10.0, np.array([5.0, 35.0]))[:, 0], [9.0, 18.0])


def test_resampling_averages_the_frames_a_bin_overlaps():
    """Frame k covers [(k - 0.5) hop, (k + 0.5) hop): a bin over exactly frame 10 reads frame 10, a bin
    over half of frames 10 and 11 their mean, a bin over frames 8-11 their mean."""
    from murmurlm.signal.heartbeat import _resample

    hop = 0.008
    power = np.zeros((1, 40))
    power[0, 10], power[0, 11] = 4.0, 2.0
    edges = np.array([[9.5, 10.5, 11.5, 12.5], [10.0, 11.0, 12.0, 13.0], [7.5, 11.5, 12.5, 13.5]]) * hop
    out = _resample(power, hop, edges)
    assert out.shape == (3, 1, 3)
    np.testing.assert_allclose(out[:, 0], [[4.0, 2.0, 0.0], [3.0, 1.0, 0.0], [1.5, 0.0, 0.0]], atol=1e-9)


def test_phases_line_up_whatever_their_durations():
    """A tone only inside each systole, with systoles of 0.15-0.35 s: the systolic bins hold it, the
    S1 and diastole bins do not (20 dB and more below), cycle by cycle."""
    rng = np.random.default_rng(0)
    segs, t = [], 0.3
    for _ in range(10):
        d = (0.1, float(rng.uniform(0.15, 0.35)), 0.09, float(rng.uniform(0.3, 0.7)))
        segs += beat(t, d)
        t += sum(d)
    n = int((t + 0.3) * FS)
    x = 1e-4 * rng.standard_normal(n)
    time_s = np.arange(n) / FS
    for s in segs:
        if s.state == 2:
            inside = (time_s >= s.start) & (time_s < s.end)
            x[inside] += 0.3 * np.sin(2 * np.pi * 150.0 * time_s[inside])
    hb = pcg_heartbeat(x.astype(np.float32), FS, segs)
    assert hb.n_kept == 10
    lengths = np.diff(hb.boundaries, axis=1)
    assert np.ptp(lengths[:, 1]) > 0.1 and np.ptp(lengths[:, 3]) > 0.2     # irregular cycles indeed
    energy = hb.cycles.sum(axis=1)                                      # (cycles, bins)
    core = energy[:, 10:30].mean(axis=1)                                # systole minus its edge bins
    for name in ("S1", "diastole"):
        sl = hb.phase_slice(name)
        away = energy[:, sl][:, 2:-2].mean(axis=1)                       # away from the phase edges
        assert np.all(10 * np.log10(core / away) > 20), name


def test_other_sampling_rates_give_the_same_picture():
    spec = [MurmurSpec(timing="Early-systolic", grade="III/VI", pitch="Low")]
    images = []
    for fs in (2000, 4000, 8000):
        pcg = synth_pcg(10.0, fs, heart_rate=80, murmurs=spec, seed=3)
        hb = pcg_heartbeat(pcg.waveform, fs, pcg.segments)
        assert hb.reliable and hb.image.shape == (32, 72)
        images.append(10 * np.log10(hb.image.sum(axis=0) + 1e-12))
    for other in images[1:]:
        assert np.corrcoef(images[0], other)[0, 1] > 0.95


# ---------------------------------------------------------------------------------------------
# cycles skipped and rejected


def test_a_missing_s2_and_a_state_0_stretch_skip_only_their_cycles():
    pcg = synth_pcg(12.0, FS, heart_rate=80, seed=1)
    segs = inner(pcg)
    full = pcg_heartbeat(pcg.waveform, FS, segs)
    s2 = [i for i, s in enumerate(segs) if s.state == 3]
    sys = [i for i, s in enumerate(segs) if s.state == 2]
    broken = list(segs)
    broken[sys[7]] = Segment(segs[sys[7]].start, segs[sys[7]].end, 0)   # a systole unannotated
    del broken[s2[3]]                                                   # a cycle without S2
    hb = pcg_heartbeat(pcg.waveform, FS, broken)
    assert full.reliable and hb.reliable
    assert hb.found == full.found - 2 and hb.n_kept == full.n_kept - 2
    assert hb.incomplete == full.incomplete + 2
    gone = {round(a, 6) for a, _ in full.kept} - {round(a, 6) for a, _ in hb.kept}
    assert gone == {round(float(segs[s2[3] - 2].start), 6), round(float(segs[sys[7] - 1].start), 6)}


def test_irregular_heart_rate_keeps_every_cycle():
    pcg = synth_pcg(15.0, FS, heart_rate=70, heart_rate_jitter=0.15, seed=2)
    hb = pcg_heartbeat(pcg.waveform, FS, pcg.segments)
    lengths = hb.kept[:, 1] - hb.kept[:, 0]
    assert hb.n_kept == len(complete_cycles(pcg.segments)) and lengths.std() / lengths.mean() > 0.05
    assert sum(hb.rejected.values()) == 0


def test_zero_length_segments():
    x = (0.01 * np.random.default_rng(0).standard_normal(6 * FS)).astype(np.float32)
    segs = beats(6, t0=0.2)
    with_empty = segs[:5] + [Segment(segs[5].start, segs[5].start, 2)] + segs[5:]   # skipped: covers no time
    assert pcg_heartbeat(x, FS, with_empty).n_kept == 6
    empty_systole = list(segs)
    empty_systole[5] = Segment(segs[5].start, segs[5].start, 2)        # cycle 2's systole has no length
    hb = pcg_heartbeat(x, FS, empty_systole)
    assert hb.n_kept == 5 and hb.found == 5


def test_the_tolerant_rule_bridges_holes():
    x = (0.01 * np.random.default_rng(0).standard_normal(6 * FS)).astype(np.float32)
    segs = beats(6, t0=0.2)
    holed = [Segment(s.start + 0.02, s.end, s.state) if s.state == 3 else s for s in segs]
    assert pcg_heartbeat(x, FS, holed).n_kept == 0
    hb = pcg_heartbeat(x, FS, holed, rule=TOLERANT)
    assert hb.n_kept == 6
    assert np.allclose(hb.boundaries[:, 2] - hb.boundaries[:, 0], 0.31)   # the boundary mid-hole


def test_a_cycle_failing_several_checks_counts_once_under_the_first():
    x = (0.01 * np.random.default_rng(0).standard_normal(12 * FS)).astype(np.float32)
    bad = (0.1, 2.0, 0.1, 0.3)                      # too long (2.5 s) and systole > 2 diastoles
    hb = pcg_heartbeat(x, FS, beats(4, t0=0.2) + beat(3.4, bad) + beats(4, t0=3.4 + sum(bad)))
    assert hb.rejected["cycle_length"] == 1 and hb.rejected["phase_ratio"] == 0 and hb.found == 9


@pytest.mark.parametrize("reason, bad", [
    ("cycle_length", (0.4, 1.2, 0.3, 1.0)),      # 2.9 s
    ("cycle_length", (0.05, 0.06, 0.05, 0.06)),  # 0.22 s
    ("short_phase", (0.005, 0.3, 0.1, 0.4)),     # S1 of 5 ms
    ("phase_ratio", (0.1, 0.45, 0.1, 0.15)),     # systole 3x diastole
])
def test_implausible_cycles_are_rejected_with_their_reason(reason, bad):
    x = (0.01 * np.random.default_rng(0).standard_normal(12 * FS)).astype(np.float32)
    segs = beats(4, t0=0.2) + beat(3.4, bad) + beats(4, t0=3.4 + sum(bad))
    hb = pcg_heartbeat(x, FS, segs)
    assert hb.rejected[reason] == 1 and sum(hb.rejected.values()) == 1
    assert hb.n_kept == 8 and hb.found == 9 and hb.reliable


def test_energy_outliers_and_cycles_outside_the_recording():
    pcg = synth_pcg(12.0, FS, heart_rate=80, seed=5)
    segs = inner(pcg)
    cycles = complete_cycles(segs)
    x = pcg.waveform.copy()
    for (a, b), gain in ((cycles[2], 30.0), (cycles[6], 0.01)):          # a bump, a drop-out
        x[int(a * FS): int(b * FS)] *= gain
    outside = segs + beats(2, t0=12.0)
    hb = pcg_heartbeat(x, FS, outside)
    assert hb.rejected["energy"] == 2 and hb.rejected["outside_recording"] == 2
    assert hb.n_kept == len(cycles) - 2
    kept = {round(a, 6) for a, _ in hb.kept}
    assert round(cycles[2][0], 6) not in kept and round(cycles[6][0], 6) not in kept


def test_two_cycles_are_not_energy_checked():
    x = (0.01 * np.random.default_rng(0).standard_normal(3 * FS)).astype(np.float32)
    x[int(1.0 * FS):] *= 100.0
    hb = pcg_heartbeat(x, FS, beats(2, t0=0.2))
    assert hb.n_kept == 2 and hb.reliable


def test_limits_are_validated_and_can_be_changed():
    with pytest.raises(ValueError, match="min_cycle_s"):
        CycleLimits(min_cycle_s=2.0, max_cycle_s=1.0)
    with pytest.raises(ValueError, match="energy_factor"):
        CycleLimits(energy_factor=1.0)
    x = (0.01 * np.random.default_rng(0).standard_normal(12 * FS)).astype(np.float32)
    segs = beats(4, t0=0.2, d=(0.1, 0.3, 0.1, 0.2))
    assert pcg_heartbeat(x, FS, segs).n_kept == 4
    assert pcg_heartbeat(x, FS, segs, limits=CycleLimits(max_systole_ratio=1.0)).rejected["phase_ratio"] == 4


# ---------------------------------------------------------------------------------------------
# fallback


def fallback_cases():
    rng = np.random.default_rng(0)
    short = synth_pcg(0.5, FS, heart_rate=80, seed=0)
    one = beats(1, t0=0.5)
    return {
        "silence with segments": (np.zeros(10 * FS, np.float32), beats(10, t0=0.5),
                                  "all 10 complete cycle(s) rejected"),
        "silence without": (np.zeros(10 * FS, np.float32), [], "no segments"),
        "white noise without segments": (rng.standard_normal(10 * FS).astype(np.float32) * 0.1, None, "no segments"),
        "0.5 s file": (short.waveform, short.segments, None),
        "empty segment list": (synth_pcg(5.0, FS, seed=1).waveform, [], "no segments"),
        "only state 0": (synth_pcg(5.0, FS, seed=1).waveform, [Segment(0.0, 5.0, 0)], "no complete cycle"),
        "one cycle": (synth_pcg(3.0, FS, seed=2).waveform, one, "only 1 usable cycle"),
        "a few samples": (np.ones(10, np.float32), [], "no segments"),
        "no samples": (np.zeros(0, np.float32), [], "no segments"),
    }


@pytest.mark.parametrize("case", list(fallback_cases()))
def test_fallback_never_raises(case):
    x, segs, reason = fallback_cases()[case]
    hb = pcg_heartbeat(x, FS, segs)
    assert not hb.reliable and hb.n_kept <= 1 and hb.fallback
    if reason is not None:
        assert hb.fallback == reason
    assert hb.image.shape == (32, 72) and np.all(np.isfinite(hb.image)) and np.all(hb.image >= 0)
    assert np.all(hb.spread == 0)
    if hb.n_kept == 0:
        assert np.allclose(hb.image, hb.image[:, :1])                    # the mean spectrum, repeated
    if case == "silence with segments":
        assert hb.rejected["silent"] == 10
    if case == "one cycle":
        np.testing.assert_array_equal(hb.image, hb.cycles[0])


def test_fallback_image_is_the_recordings_mean_spectrum():
    rng = np.random.default_rng(1)
    t = np.arange(6 * FS) / FS
    x = (0.2 * np.sin(2 * np.pi * 300 * t) + 0.001 * rng.standard_normal(len(t))).astype(np.float32)
    hb = pcg_heartbeat(x, FS, [])
    band = int(np.argmax(hb.image[:, 0]))
    assert hb.band_edges[band] <= 300 < hb.band_edges[band + 1]
    assert hb.image.sum(axis=0)[0] == pytest.approx(0.02, rel=0.05)


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise_a_clear_error(bad):
    x = np.zeros(4 * FS, np.float32)
    x[100] = bad
    with pytest.raises(NonFiniteSignalError, match="1 NaN or infinite") as err:
        pcg_heartbeat(x, FS, beats(3))
    assert isinstance(err.value, ValueError) and isinstance(err.value, MurmurlmError)


@pytest.mark.parametrize("kwargs, message", [
    ({"bins": (8, 24, 8)}, "bins must be 4"),
    ({"bins": (8, 0, 8, 32)}, "bins must be 4"),
    ({"band": (900.0, 800.0)}, "band must be"),
    ({"n_bands": 1}, "n_bands"),
    ({"hop_seconds": 0.05}, "hop_seconds"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pcg_heartbeat(np.zeros(FS, np.float32), FS, [], **kwargs)


def test_bad_waveform_rate_and_phase():
    with pytest.raises(ValueError, match="1-D"):
        pcg_heartbeat(np.zeros((2, FS)), FS, [])
    with pytest.raises(ValueError, match="sampling_rate"):
        pcg_heartbeat(np.zeros(FS), 0, [])
    hb = pcg_heartbeat(np.zeros(FS), FS, [])
    with pytest.raises(ValueError, match="valid: S1, systole, S2, diastole"):
        hb.phase("S3")
    with pytest.raises(ValueError, match="of must be"):
        hb.phase("S1", of="median")


def test_segments_may_be_any_iterable():
    pcg = synth_pcg(6.0, FS, seed=0)
    a = pcg_heartbeat(pcg.waveform, FS, pcg.segments)
    b = pcg_heartbeat(pcg.waveform, FS, iter(pcg.segments))
    assert a.n_kept == b.n_kept > 2
    np.testing.assert_array_equal(a.image, b.image)
