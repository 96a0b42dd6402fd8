"""signal.synth.transplant_murmur: a synthetic murmur laid into a recording's own cycles carries
its class into the descriptors (the long-tail augmentation of the characterization benchmark)."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data.circor import Segment
from murmurlm.signal.descriptors import pcg_descriptors
from murmurlm.signal.heartbeat import pcg_heartbeat
from murmurlm.signal.synth import MurmurSpec, synth_pcg, transplant_murmur

FS = 4000


@pytest.fixture(scope="module")
def clean():
    return synth_pcg(12.0, FS, heart_rate=70, seed=2)


def described(wave, segments):
    return pcg_descriptors(pcg_heartbeat(wave, FS, segments))


def test_the_murmur_sits_in_systole_with_its_timing_and_shape(clean):
    base = described(clean.waveform, clean.segments)
    early = described(transplant_murmur(clean.waveform, FS, clean.segments,
                                        MurmurSpec("systolic", "Early-systolic", "Decrescendo", "III/VI"), seed=0),
                      clean.segments)
    late = described(transplant_murmur(clean.waveform, FS, clean.segments,
                                       MurmurSpec("systolic", "Late-systolic", "Crescendo", "III/VI"), seed=0),
                     clean.segments)
    assert early["sys_to_dia_db"] > base["sys_to_dia_db"] + 6  # energy added to systole, not diastole
    assert early["sys_frac_early"] > late["sys_frac_early"] and late["sys_frac_late"] > early["sys_frac_late"]
    assert late["sys_slope_db"] > early["sys_slope_db"]        # a rising envelope against a falling one


def test_a_diastolic_murmur_goes_into_diastole(clean):
    base = described(clean.waveform, clean.segments)
    dia = described(transplant_murmur(clean.waveform, FS, clean.segments,
                                      MurmurSpec("diastolic", "Early-diastolic", "Decrescendo", "III/IV"), seed=0),
                    clean.segments)
    assert dia["dia_to_s2_db"] > base["dia_to_s2_db"] + 6
    assert abs(dia["sys_to_s1_db"] - base["sys_to_s1_db"]) < 3


def test_louder_grades_add_more_and_musical_is_tonal(clean):
    soft, loud = (described(transplant_murmur(clean.waveform, FS, clean.segments,
                                              MurmurSpec(grade=g, quality="Blowing"), seed=0), clean.segments)
                  for g in ("I/VI", "III/VI"))
    assert loud["sys_to_s1_db"] > soft["sys_to_s1_db"] + 3
    musical = described(transplant_murmur(clean.waveform, FS, clean.segments,
                                          MurmurSpec(grade="III/VI", quality="Musical"), seed=0), clean.segments)
    assert musical["sys_tonal_prominence_db"] > loud["sys_tonal_prominence_db"]


def test_no_cycle_leaves_the_recording_unchanged():
    wave = np.random.default_rng(0).standard_normal(FS * 3).astype(np.float32)
    assert np.array_equal(transplant_murmur(wave, FS, [], MurmurSpec()), wave)
    partial = [Segment(0.0, 0.1, 1), Segment(0.1, 0.4, 2)]  # no S2, no diastole: not a cycle
    assert np.array_equal(transplant_murmur(wave, FS, partial, MurmurSpec()), wave)


def test_varied_transplants_keep_their_class_and_differ_between_draws(clean):
    """variation=True draws every murmur from its class's range: two seeds differ, yet an Early murmur
    stays earlier than a Late one, and a varied Musical murmur is still more tonal than a Blowing one
    but less than the pure-tone prototype (real musical murmurs are far less tonal)."""
    def varied(spec, seed):
        return described(transplant_murmur(clean.waveform, FS, clean.segments, spec, seed=seed, variation=True),
                         clean.segments)

    early = [varied(MurmurSpec("systolic", "Early-systolic", "Plateau", "III/VI"), k) for k in range(4)]
    late = [varied(MurmurSpec("systolic", "Late-systolic", "Plateau", "III/VI"), k) for k in range(4)]
    assert len({round(d["sys_centre_time"], 4) for d in early}) == 4  # no two draws alike
    assert max(d["sys_centre_time"] for d in early) < min(d["sys_centre_time"] for d in late)
    blowing = [varied(MurmurSpec(grade="III/VI", quality="Blowing"), k) for k in range(4)]
    musical = [varied(MurmurSpec(grade="III/VI", quality="Musical"), k) for k in range(4)]
    prototype = described(transplant_murmur(clean.waveform, FS, clean.segments,
                                            MurmurSpec(grade="III/VI", quality="Musical"), seed=0), clean.segments)
    tonal = [d["sys_tonal_prominence_db"] for d in musical]
    assert np.median(tonal) > np.median([d["sys_tonal_prominence_db"] for d in blowing])
    assert np.median(tonal) < prototype["sys_tonal_prominence_db"]
