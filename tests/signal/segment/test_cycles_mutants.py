"""Clean-cycle edge cases that the mutation benchmark (benchmarks/mutation.py) showed untested:
zero-length segments, gaps inside and between cycles, stretches at the edges of the waveform,
multi-channel input, the defaults and the diagnostics."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from murmurlm.data.circor import Segment
from murmurlm.signal.segment import clean_stretches, crop_to_cycles, cycle_windows


def cycle(t, d=(0.1, 0.2, 0.1, 0.4)):
    """S1, systole, S2, diastole from ``t`` (seconds) with durations ``d``."""
    edges = np.cumsum([t, *d])
    return [Segment(round(edges[i], 6), round(edges[i + 1], 6), i + 1) for i in range(4)]


def test_a_zero_length_segment_does_not_break_a_run():
    # CirCor .tsv files hold the odd zero-length segment; it covers no time, so the two cycles
    # around it are still consecutive: one run of two cycles
    segs = cycle(0.0) + [Segment(0.8, 0.8, 0)] + cycle(0.8)
    assert clean_stretches(segs, 1000, min_cycles=2) == [(0, 1600)]
    assert cycle_windows(segs, 1000, cycles=2) == [(0, 1600)]


def test_a_gap_inside_a_cycle_makes_it_incomplete():
    # 50 ms missing between S1 and systole: the four states are there but not in a row
    segs = [Segment(0.0, 0.1, 1), Segment(0.15, 0.3, 2), Segment(0.3, 0.4, 3), Segment(0.4, 0.8, 4)]
    assert clean_stretches(segs, 1000) == []
    # the same gap between S2 and diastole (the last pair of the four)
    segs = [Segment(0.0, 0.1, 1), Segment(0.1, 0.3, 2), Segment(0.3, 0.4, 3), Segment(0.45, 0.8, 4)]
    assert clean_stretches(segs, 1000) == []


def test_a_one_millisecond_gap_is_a_gap():
    # CirCor's times have millisecond resolution: a 1 ms hole is a real hole (the tolerance only
    # absorbs rounding below that). 0.001 -> 0.002 is exactly 1e-3 apart in floating point.
    segs = [Segment(0.0, 0.001, 1), Segment(0.002, 0.3, 2), Segment(0.3, 0.4, 3), Segment(0.4, 0.8, 4)]
    assert clean_stretches(segs, 1000) == []
    # ... and between two cycles: two runs, not one
    tiny = [Segment(0.0, 0.0002, 1), Segment(0.0002, 0.0005, 2), Segment(0.0005, 0.0007, 3),
            Segment(0.0007, 0.001, 4)]
    segs = tiny + cycle(0.002)
    assert clean_stretches(segs, 1000, min_cycles=2) == []
    assert clean_stretches(segs, 1_000_000) == [(0, 1000), (2000, 802000)]


def test_cycles_with_a_gap_between_them_are_two_runs():
    # no segment covers 0.8-1.0 s: the cycles are not consecutive
    segs = cycle(0.0) + cycle(1.0)
    assert clean_stretches(segs, 1000) == [(0, 800), (1000, 1800)]
    assert clean_stretches(segs, 1000, min_cycles=2) == []
    assert cycle_windows(segs, 1000, cycles=1) == [(0, 800), (1000, 1800)]
    assert cycle_windows(segs, 1000, cycles=2) == []


def test_crop_keeps_a_stretch_that_starts_at_sample_zero():
    x = np.arange(3000.0)
    segs = cycle(0.0) + cycle(0.8) + [Segment(1.6, 3.0, 0)]
    cropped = crop_to_cycles(x, 1000, segs, min_seconds=1.0)
    assert np.array_equal(cropped, x[:1600])


def test_crop_clips_a_stretch_to_the_waveform():
    x = np.arange(1200.0)
    segs = cycle(0.0) + cycle(0.8)  # the segmentation runs past the end of the audio (1.2 s)
    assert np.array_equal(crop_to_cycles(x, 1000, segs, min_seconds=1.0), x)
    assert np.array_equal(crop_to_cycles(x, 1000, segs, min_seconds=0.5), x[:1200])
    # a stretch that starts where the audio ends holds no audio: nothing clean, the whole recording
    # comes back (even when any amount of clean audio would do)
    late = [Segment(0.0, 1.2, 0)] + cycle(1.2)
    assert crop_to_cycles(x, 1000, late, min_seconds=0.0) is x


def test_crop_threshold_is_inclusive_and_defaults_to_two_seconds():
    x = np.arange(5000.0)
    one_second = (0.1, 0.3, 0.1, 0.5)
    two = cycle(0.5, one_second) + cycle(1.5, one_second)  # exactly 2.0 s of clean cycles
    # "unchanged when the clean stretches total less than min_seconds": 2.0 s is not less than 2.0 s
    assert np.array_equal(crop_to_cycles(x, 1000, two, min_seconds=2.0), x[500:2500])
    assert np.array_equal(crop_to_cycles(x, 1000, two), x[500:2500])
    three = cycle(0.0) + cycle(0.8) + cycle(1.6)  # 2.4 s: enough under the default
    assert np.array_equal(crop_to_cycles(x, 1000, three), x[:2400])
    assert crop_to_cycles(x, 1000, three[:8]) is x  # 1.6 s: too little


def test_crop_cuts_the_last_axis_of_multichannel_input():
    x = np.arange(2 * 4000.0).reshape(2, 4000)
    segs = [Segment(0.0, 1.0, 0)] + cycle(1.0) + [Segment(1.8, 2.0, 0)] + cycle(2.0)
    cropped = crop_to_cycles(x, 1000, segs, min_seconds=1.0)
    assert cropped.shape == (2, 1600)
    assert np.array_equal(cropped, np.concatenate([x[:, 1000:1800], x[:, 2000:2800]], axis=1))


def test_crop_says_why_it_keeps_the_whole_recording(caplog):
    x = np.arange(3000.0)
    with caplog.at_level(logging.DEBUG, logger="murmurlm.signal.cycles"):
        assert crop_to_cycles(x, 1000, cycle(0.5), min_seconds=2.0) is x
    messages = [r.getMessage() for r in caplog.records if r.name == "murmurlm.signal.cycles"]
    assert messages == ["crop_to_cycles: 0.80 s of clean cycles (< 2.00 s); keeping the whole recording"]


def test_cycle_windows_default_to_four_cycles():
    segs = [c for k in range(9) for c in cycle(0.8 * k)]  # nine consecutive cycles
    assert cycle_windows(segs, 1000) == [(0, 3200), (3200, 6400)]


def test_cycle_windows_reject_bad_counts_by_name():
    segs = cycle(0.0)
    with pytest.raises(ValueError, match=r"cycles must be >= 1, got 0"):
        cycle_windows(segs, 1000, cycles=0)
    with pytest.raises(ValueError, match=r"hop must be >= 1, got 0"):
        cycle_windows(segs, 1000, cycles=1, hop=0)
