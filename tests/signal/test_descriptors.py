"""The murmur descriptors (:func:`murmurlm.signal.descriptors.pcg_descriptors`) read what a murmur
is: on seeded synthetic PCG with known labels (:class:`murmurlm.signal.synth.MurmurSpec`), timing
moves the energy between the thirds of systole, shape the envelope's slope and curvature, pitch the
centroid, quality the tonality, grade the loudness; and every value is finite, on the fallback too."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from murmurlm.data.circor import Segment
from murmurlm.signal.descriptors import (
    DESCRIPTOR_GROUPS, DESCRIPTOR_NAMES, a_weighting_db, descriptor_vector, pcg_descriptors,
)
from murmurlm.signal.heartbeat import pcg_heartbeat
from murmurlm.signal.synth import MurmurSpec, synth_pcg

FS = 4000
SEEDS = (0, 1)


@functools.lru_cache(maxsize=None)
def describe(seed: int = 0, heart_rate: float = 80.0, **spec) -> dict[str, float]:
    """Descriptors of a 10 s synthetic recording with one murmur (``spec``: MurmurSpec fields; an
    empty spec: no murmur), from its true segments."""
    murmurs = [MurmurSpec(**spec)] if spec else []
    pcg = synth_pcg(10.0, FS, heart_rate=heart_rate, murmurs=murmurs, seed=seed)
    return pcg_descriptors(pcg_heartbeat(pcg.waveform, FS, pcg.segments))


def mean(key: str, **spec) -> float:
    return float(np.mean([describe(seed, **spec)[key] for seed in SEEDS]))


# ---------------------------------------------------------------------------------------------
# the names


def test_names_groups_and_vector_agree():
    assert len(set(DESCRIPTOR_NAMES)) == len(DESCRIPTOR_NAMES)
    grouped = [n for names in DESCRIPTOR_GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(DESCRIPTOR_NAMES)            # every name in exactly one group
    d = describe()
    assert list(d) == list(DESCRIPTOR_NAMES)
    pcg = synth_pcg(6.0, FS, seed=3)
    hb = pcg_heartbeat(pcg.waveform, FS, pcg.segments)
    v = descriptor_vector(hb)
    assert v.dtype == np.float64 and v.shape == (len(DESCRIPTOR_NAMES),)
    np.testing.assert_array_equal(v, [pcg_descriptors(hb)[n] for n in DESCRIPTOR_NAMES])


def test_envelopes_have_their_mean_removed_and_fractions_add_up():
    d = describe(timing="Early-systolic")
    assert abs(sum(d[f"sys_env_{i:02d}"] for i in range(12))) < 1e-9
    assert abs(sum(d[f"dia_env_{i:02d}"] for i in range(16))) < 1e-9
    assert abs(sum(d[f"sys_spec_{i:02d}"] for i in range(16))) < 1e-9
    for phase in ("sys", "dia"):
        assert sum(d[f"{phase}_frac_{t}"] for t in ("early", "mid", "late")) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# timing and shape


def test_timing_moves_the_energy_between_the_thirds_of_systole():
    early = {k: mean(f"sys_frac_{k}", timing="Early-systolic") for k in ("early", "mid", "late")}
    mid = {k: mean(f"sys_frac_{k}", timing="Mid-systolic") for k in ("early", "mid", "late")}
    late = {k: mean(f"sys_frac_{k}", timing="Late-systolic") for k in ("early", "mid", "late")}
    holo = {k: mean(f"sys_frac_{k}", timing="Holosystolic") for k in ("early", "mid", "late")}
    assert early["early"] > 0.6 and early["early"] > 3 * early["late"]
    assert late["late"] > 0.6 and late["late"] > 3 * late["early"]
    assert mid["mid"] > 0.6
    assert all(0.2 < v < 0.45 for v in holo.values())
    peaks = [mean("sys_peak_pos", timing=t) for t in ("Early-systolic", "Mid-systolic", "Late-systolic")]
    centres = [mean("sys_centre_time", timing=t) for t in ("Early-systolic", "Mid-systolic", "Late-systolic")]
    assert peaks == sorted(peaks) and centres == sorted(centres)
    assert centres[0] < 0.3 < 0.7 < centres[2]


def test_a_murmur_free_systole_reads_flat():
    """The heart sounds' tails spill into the first and last bins of systole; without the guard bins
    they would read as an Early + Late murmur."""
    thirds = [mean(f"sys_frac_{k}") for k in ("early", "mid", "late")]
    assert all(0.25 < v < 0.42 for v in thirds), thirds


def test_shape_sets_the_slope_and_curvature_of_the_envelope():
    cresc, decresc = mean("sys_slope_db", shape="Crescendo"), mean("sys_slope_db", shape="Decrescendo")
    plateau = mean("sys_slope_db", shape="Plateau")
    assert cresc > 5.0 and decresc < -5.0 and abs(plateau) < 0.5 * min(cresc, -decresc)
    assert mean("sys_curvature_db", shape="Diamond") < mean("sys_curvature_db", shape="Plateau") - 10.0
    assert mean("sys_peak_pos", shape="Crescendo") > 0.7 > 0.3 > mean("sys_peak_pos", shape="Decrescendo")


def test_a_diastolic_murmur_shows_in_diastole():
    none = describe()
    dia = describe(kind="diastolic", timing="Early-diastolic", shape="Decrescendo", grade="III/IV",
                   pitch="Medium", quality="Blowing")
    assert dia["dia_to_s1_db"] > none["dia_to_s1_db"] + 6.0
    assert dia["dia_snr_db"] > none["dia_snr_db"] + 6.0
    assert dia["sys_to_dia_db"] < none["sys_to_dia_db"] - 6.0
    assert dia["dia_frac_early"] > 0.6 and dia["dia_slope_db"] < 0


# ---------------------------------------------------------------------------------------------
# loudness


def test_a_louder_grade_raises_systole_against_the_heart_sounds():
    grades = [mean("sys_to_s1_db", grade=g) for g in ("I/VI", "II/VI", "III/VI")]
    assert grades[0] + 3.0 < grades[1] and grades[1] + 3.0 < grades[2]   # +6 dB per grade in synth
    excess = [mean("sys_excess_dba", grade=g) for g in ("I/VI", "II/VI", "III/VI")]
    assert excess == sorted(excess)


def test_systole_against_diastole_tells_a_murmur_from_none():
    assert abs(mean("sys_to_dia_db")) < 3.0
    assert mean("sys_to_dia_db", timing="Holosystolic", grade="II/VI") > 8.0
    assert mean("sys_snr_db", timing="Holosystolic") > mean("sys_snr_db") + 6.0


def test_gain_moves_the_levels_not_the_ratios():
    pcg = synth_pcg(8.0, FS, murmurs=[MurmurSpec(timing="Early-systolic")], seed=0)
    a = pcg_descriptors(pcg_heartbeat(pcg.waveform, FS, pcg.segments))
    b = pcg_descriptors(pcg_heartbeat(pcg.waveform * np.float32(0.1), FS, pcg.segments))
    for key in ("sys_level_dbfs", "s1_level_dbfs", "floor_dbfs", "sys_level_dba"):
        assert b[key] == pytest.approx(a[key] - 20.0, abs=0.01), key
    for key in ("sys_to_s1_db", "sys_to_dia_db", "sys_frac_early", "sys_slope_db", "sys_centroid_hz",
                "sys_flatness", "sys_env_03", "sys_spec_05"):
        assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-3), key


# ---------------------------------------------------------------------------------------------
# pitch and quality


def test_a_higher_pitch_has_a_higher_centroid():
    for key in ("sys_centroid_hz", "sys_excess_centroid_hz", "centroid_diff_hz"):
        values = [mean(key, pitch=p, grade="III/VI") for p in ("Low", "Medium", "High")]
        assert values[0] + 50 < values[1] and values[1] + 50 < values[2], (key, values)


@pytest.mark.parametrize("pitch", ["Medium", "High"])
def test_a_musical_murmur_is_tonal(pitch):
    musical = {k: mean(k, quality="Musical", pitch=pitch) for k in
               ("sys_tonal_prominence_db", "sys_harmonicity_db", "sys_flatness")}
    for other in ("Blowing", "Harsh"):
        d = {k: mean(k, quality=other, pitch=pitch) for k in musical}
        assert musical["sys_tonal_prominence_db"] > d["sys_tonal_prominence_db"] + 5.0, other
        assert musical["sys_harmonicity_db"] > d["sys_harmonicity_db"] + 3.0, other
        assert musical["sys_flatness"] < 0.5 * d["sys_flatness"], other


def test_a_musical_murmur_is_steady_and_a_harsh_one_rough():
    assert mean("sys_variability", quality="Musical") < 0.5 * mean("sys_variability", quality="Blowing")
    assert mean("sys_roughness_db", quality="Harsh") > mean("sys_roughness_db", quality="Blowing")


def test_a_weighting():
    a = a_weighting_db(np.array([31.5, 63.0, 125.0, 250.0, 500.0, 1000.0]))
    np.testing.assert_allclose(a, [-39.4, -26.2, -16.1, -8.6, -3.2, 0.0], atol=0.15)   # IEC 61672 table


# ---------------------------------------------------------------------------------------------
# reliability and fallback


def test_cycles_reliability_and_heart_rate():
    d = describe(heart_rate=72.0)
    assert d["reliable"] == 1.0 and d["cycles_kept"] >= 10
    assert abs(d["heart_rate_bpm"] - 72.0) < 5.0


def fallback_heartbeats():
    rng = np.random.default_rng(0)
    short = synth_pcg(0.5, FS, seed=0)
    one = synth_pcg(3.0, FS, seed=2)
    cycle = [Segment(0.5, 0.6, 1), Segment(0.6, 0.8, 2), Segment(0.8, 0.9, 3), Segment(0.9, 1.3, 4)]
    return {
        "silence": pcg_heartbeat(np.zeros(10 * FS, np.float32), FS, []),
        "silence with segments": pcg_heartbeat(np.zeros(10 * FS, np.float32), FS, cycle),
        "white noise without segments": pcg_heartbeat(0.1 * rng.standard_normal(10 * FS), FS, None),
        "0.5 s file": pcg_heartbeat(short.waveform, FS, short.segments),
        "empty segment list": pcg_heartbeat(synth_pcg(5.0, FS, seed=1).waveform, FS, []),
        "one cycle": pcg_heartbeat(one.waveform, FS, cycle),
        "no samples": pcg_heartbeat(np.zeros(0, np.float32), FS, []),
    }


@pytest.mark.parametrize("case", list(fallback_heartbeats()))
def test_fallback_descriptors_are_finite(case):
    hb = fallback_heartbeats()[case]
    d = pcg_descriptors(hb)
    bad = [k for k, v in d.items() if not np.isfinite(v)]
    assert bad == []
    assert d["reliable"] == 0.0 and d["cycles_kept"] == hb.n_kept <= 1
    assert np.all(np.isfinite(descriptor_vector(hb)))
    if hb.n_kept == 0:                     # a flat image: nothing in time to describe
        assert d["sys_frac_early"] == d["sys_frac_mid"] == pytest.approx(1 / 3)
        assert d["sys_slope_db"] == 0.0 and d["sys_to_dia_db"] == pytest.approx(0.0, abs=1e-9)
        assert all(abs(d[f"sys_env_{i:02d}"]) < 1e-9 for i in range(12))
        assert d["heart_rate_bpm"] == 0.0


def test_the_white_noise_fallback_reads_its_spectrum():
    rng = np.random.default_rng(0)
    low = pcg_descriptors(pcg_heartbeat(np.cumsum(rng.standard_normal(10 * FS)) * 1e-3, FS, []))
    white = pcg_descriptors(pcg_heartbeat(0.1 * rng.standard_normal(10 * FS), FS, []))
    assert white["sys_centroid_hz"] > low["sys_centroid_hz"] + 100
    assert white["sys_flatness"] > 0.9 > low["sys_flatness"]
    assert low["sys_tonal_prominence_db"] < 3.0          # a steep spectral tilt is not a tone
