"""murmurlm.signal.cycles is the one cycle finder: its rules, and the report, the quality flag, the
audio-LM windows and the crop going through it (same results as the module on synthetic segment
lists, edge cases included: a hole over the tolerance, an incomplete last cycle, state 0)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from murmurlm.data import labels as L
from murmurlm.data.circor import Segment
from murmurlm.inference import report
from murmurlm.models import instructions
from murmurlm.models.instructions import AudioOptions, window_bounds
from murmurlm.signal import crop, cycles, segment
from murmurlm.signal.cycles import (
    CONTIGUOUS, S1_TO_S1, TOLERANT, CycleRule, annotated_span, complete_cycles, cycle_runs, fit_cycle_windows,
)


def beat(t, d=(0.1, 0.2, 0.1, 0.4), hole_after=None, hole=0.0):
    """S1, systole, S2, diastole from ``t``; ``hole`` seconds missing after state ``hole_after``."""
    out, now = [], t
    for state, length in zip((1, 2, 3, 4), d):
        out.append(Segment(round(now, 6), round(now + length, 6), state))
        now += length + (hole if state == hole_after else 0.0)
    return out


# 0-1 s unannotated, cycles A (1.0) and B (1.8, a 20 ms hole before S2), 1 s unannotated, cycle C
# (3.82), then an incomplete last cycle D (S1 and systole only)
SEGS = ([Segment(0.0, 1.0, 0)] + beat(1.0) + beat(1.8, hole_after=2, hole=0.02)
        + [Segment(2.62, 3.82, 0)] + beat(3.82) + [Segment(4.62, 4.72, 1), Segment(4.72, 4.92, 2)])


def test_the_rules_differ_as_documented():
    assert complete_cycles(SEGS) == [(1.0, 1.8), (3.82, 4.62)]  # CONTIGUOUS: B has a hole
    assert complete_cycles(SEGS, TOLERANT) == [(1.0, 1.8), (1.8, 2.62), (3.82, 4.62)]
    assert cycle_runs(SEGS, TOLERANT) == [[(1.0, 1.8), (1.8, 2.62)], [(3.82, 4.62)]]  # state 0 ends a run
    # S1 onset to S1 onset, over the hole and the unannotated stretch; D's S1 closes C, nothing after
    assert complete_cycles(SEGS, S1_TO_S1) == [(1.0, 1.8), (1.8, 3.82), (3.82, 4.62)]
    assert cycle_runs(SEGS, S1_TO_S1) == [[(1.0, 1.8), (1.8, 3.82), (3.82, 4.62)]]


def test_gap_tolerance_and_zero_length_segments_per_rule():
    assert not CONTIGUOUS.joins(1e-3) and CONTIGUOUS.joins(0.0009) and not CONTIGUOUS.joins(-0.002)
    assert TOLERANT.joins(0.05) and not TOLERANT.joins(0.0501) and TOLERANT.joins(-1.0)
    wide = beat(0.0, hole_after=1, hole=0.06)  # over the report's 50 ms as well
    assert complete_cycles(wide, TOLERANT) == [] and complete_cycles(wide) == []
    assert complete_cycles(beat(0.0, hole_after=3, hole=0.04), TOLERANT) == [(0.0, 0.84)]
    # a zero-length segment inside a cycle: skipped by CONTIGUOUS, a break for TOLERANT
    empty = beat(0.0)[:2] + [Segment(0.3, 0.3, 0)] + beat(0.0)[2:]
    assert complete_cycles(empty) == [(0.0, 0.8)] and complete_cycles(empty, TOLERANT) == []
    # ... and a zero-length S1 is an onset for S1_TO_S1
    assert complete_cycles([Segment(0.0, 0.0, 1), Segment(0.7, 0.8, 1)], S1_TO_S1) == [(0.0, 0.7)]


def test_a_cycle_rule_rejects_bad_fields():
    with pytest.raises(ValueError, match="bounds"):
        CycleRule(bounds="onsets")
    with pytest.raises(ValueError, match="max_gap"):
        CycleRule(max_gap=-0.01)
    with pytest.raises(ValueError, match="max_gap"):
        CycleRule(max_gap=float("nan"))


def test_unsorted_segments_are_sorted_first():
    assert complete_cycles(SEGS[::-1], TOLERANT) == complete_cycles(SEGS, TOLERANT)
    assert complete_cycles(SEGS[::-1], S1_TO_S1) == complete_cycles(SEGS, S1_TO_S1)


# --- the callers -------------------------------------------------------------------------------------
def test_no_private_copy_is_left():
    assert not hasattr(report, "complete_cycles") and not hasattr(report, "CYCLE_GAP_S")
    assert not hasattr(instructions, "_cycle_windows")
    assert importlib.util.find_spec("murmurlm.signal.segment.cycles") is None
    assert crop.annotated_span is cycles.annotated_span
    assert instructions.fit_cycle_windows is cycles.fit_cycle_windows
    for name in ("clean_stretches", "crop_to_cycles", "cycle_windows"):
        assert getattr(segment, name) is getattr(cycles, name)
    assert report.CYCLE_RULE is TOLERANT


def uniform_probs():
    return {f.name: np.full(f.num_classes, 1.0 / f.num_classes) for f in L.FEATURES}


@pytest.mark.parametrize("segs", [SEGS, beat(0.0) + beat(0.8) + beat(1.6, hole_after=2, hole=0.2) + beat(2.6),
                                  beat(0.0) + [Segment(0.8, 0.9, 1)]],
                         ids=["holes-and-state-0", "hole-over-tolerance", "incomplete-last"])
def test_the_report_counts_the_modules_cycles(segs, monkeypatch):
    found = complete_cycles(segs, TOLERANT)
    rng = np.random.default_rng(1)
    wave = (0.1 * rng.standard_normal(4000 * 6)).astype(np.float32)  # every 1-s window usable
    out = report.murmur_report(uniform_probs(), segs, wave, 4000)
    assert out["segmentation"]["cycles"] == len(found)
    expected_rate = round(60.0 / float(np.median([e - s for s, e in found])), 1) if len(found) >= 2 else None
    assert out["segmentation"]["heart_rate_bpm"] == expected_rate
    grid = np.arange(0.0, 6.0, 0.01) + 0.005
    covered = np.zeros(len(grid), bool)
    for s, e in found:
        covered |= (grid >= s) & (grid < e)
    assert out["quality"]["usable_fraction"] == pytest.approx(float(covered.mean()), abs=1e-4)
    # and the report asks the module, with its rule, for both the heart rate and the quality flag
    calls = []
    real = cycles.complete_cycles
    monkeypatch.setattr(cycles, "complete_cycles", lambda s, rule=CONTIGUOUS: calls.append(rule) or real(s, rule))
    report.murmur_report(uniform_probs(), segs, wave, 4000)
    assert calls == [TOLERANT, TOLERANT]


def test_report_segments_as_tuples_and_mappings_give_the_same_cycles():
    as_tuples = [(s.start, s.end, s.state) for s in SEGS]
    as_dicts = [{"start": s.start, "end": s.end, "state": s.state} for s in SEGS]
    counts = {report.murmur_report(uniform_probs(), segs)["segmentation"]["cycles"]
              for segs in (SEGS, as_tuples, as_dicts)}
    assert counts == {len(complete_cycles(SEGS, TOLERANT))}


@pytest.mark.parametrize("window", [1.0, 2.0, 5.0])
def test_instruction_windows_are_the_modules(window):
    rate = 16000
    n = 6 * rate
    opts = AudioOptions(mode="cycles", window_seconds=window, min_seconds=0.5)
    bounds = window_bounds(n, rate, opts, SEGS)
    fitted = fit_cycle_windows(SEGS, rate, window, n, rule=S1_TO_S1)
    assert bounds == [(a, b) for a, b in fitted if b - a >= 0.5 * rate]
    # whole S1-to-S1 cycles (the 1.2 s unannotated stretch is inside the cycle 1.8-3.82 s), a cycle
    # longer than the window cut to the window
    onsets = {int(round(s.start * rate)) for s in SEGS if s.state == 1}
    assert all(a in onsets and (b in onsets or b - a == window * rate) for a, b in bounds)
    if window < 2.02:
        assert (round(1.8 * rate), round((1.8 + window) * rate)) in bounds
    else:  # all three cycles in one window
        assert bounds == [(round(1.0 * rate), round(4.62 * rate))]


def test_instruction_windows_fall_back_without_two_onsets():
    rate = 16000
    opts = AudioOptions(mode="cycles", window_seconds=2.0)
    one_onset = [Segment(0.0, 1.0, 0), Segment(1.0, 1.1, 1), Segment(1.1, 6.0, 0)]
    assert fit_cycle_windows(one_onset, rate, 2.0, 6 * rate, rule=S1_TO_S1) == []
    sliding = window_bounds(6 * rate, rate, AudioOptions(window_seconds=2.0))
    assert window_bounds(6 * rate, rate, opts, one_onset) == sliding
    # the closing onset of the last cycle must lie inside the recording
    onset_at_end = beat(0.0) + [Segment(0.8, 0.8, 1)]
    assert fit_cycle_windows(onset_at_end, 1000, 2.0, 800, rule=S1_TO_S1) == []
    assert fit_cycle_windows(onset_at_end, 1000, 2.0, 801, rule=S1_TO_S1) == [(0, 800)]


def test_fitted_windows_of_full_cycles_stay_in_a_run():
    segs = beat(0.0) + beat(0.8) + beat(1.6) + [Segment(2.4, 3.0, 0)] + beat(3.0, d=(0.1, 0.5, 0.1, 1.3))
    assert fit_cycle_windows(segs, 1000, 1.7) == [(0, 1600), (1600, 2400), (3000, 4700)]  # a long cycle is cut
    assert fit_cycle_windows(segs, 1000, 10.0) == [(0, 2400), (3000, 5000)]
    assert fit_cycle_windows(segs, 1000, 10.0, num_samples=5000) == [(0, 2400), (3000, 5000)]  # ends at the end
    assert fit_cycle_windows(segs, 1000, 10.0, num_samples=4999) == [(0, 2400)]


@pytest.mark.parametrize("segs", [SEGS, [Segment(0.0, 10.0, 0)], [Segment(0.0, 0.5, 0), Segment(0.5, 0.5, 1)],
                                  [Segment(0.5, 1.0, 2), Segment(1.0, 9.0, 0), Segment(9.0, 9.5, 3)], []],
                         ids=["cycles", "state-0-only", "zero-length-only", "state-0-inside", "empty"])
def test_the_crop_is_the_modules_span(segs):
    fs = 1000
    x = np.arange(10 * fs, dtype=np.float32)
    span = annotated_span(segs, 2.0)
    y = crop.crop_annotated(x, fs, segs)
    if span is None:
        assert y is x
    else:
        assert np.array_equal(y, x[int(round(span[0] * fs)):int(round(span[1] * fs))])
