"""Edge cases of :mod:`murmurlm.signal.cycles` that the mutation benchmark (benchmarks/mutation.py,
module ``signal/cycles``) showed untested: the rule passed through by the sample-range helpers,
fewer than two S1 onsets, the window-length boundary of :func:`fit_cycle_windows`, runs outside the
recording, :func:`annotated_span`'s defaults and boundary, and :class:`CycleRule`'s validation."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data.circor import Segment
from murmurlm.signal.cycles import (
    S1_TO_S1,
    TOLERANT,
    CycleRule,
    annotated_span,
    clean_stretches,
    crop_to_cycles,
    cycle_runs,
    cycle_windows,
    fit_cycle_windows,
)


def beat(t, hole=0.0):
    """S1 0.1 s, systole 0.2 s, S2 0.1 s, diastole 0.4 s from ``t``; ``hole`` seconds between
    systole and S2 (the cycle still ends at t + 0.8)."""
    return [Segment(t, round(t + 0.1, 6), 1), Segment(round(t + 0.1, 6), round(t + 0.3, 6), 2),
            Segment(round(t + 0.3 + hole, 6), round(t + 0.4, 6), 3),
            Segment(round(t + 0.4, 6), round(t + 0.8, 6), 4)]


# two cycles with a 20 ms hole inside each: no complete cycle under CONTIGUOUS (1 ms), one run of
# two under TOLERANT (holes up to 50 ms)
HOLED = beat(0.0, hole=0.02) + beat(0.8, hole=0.02)


def test_the_sample_range_helpers_use_the_rule_they_are_given():
    assert clean_stretches(HOLED, 1000) == []
    assert clean_stretches(HOLED, 1000, rule=TOLERANT) == [(0, 1600)]
    assert cycle_windows(HOLED, 1000, cycles=1) == []
    assert cycle_windows(HOLED, 1000, cycles=1, rule=TOLERANT) == [(0, 800), (800, 1600)]
    x = np.arange(2000.0)
    assert crop_to_cycles(x, 1000, HOLED, min_seconds=1.0) is x  # nothing clean: unchanged
    out = crop_to_cycles(x, 1000, HOLED, min_seconds=1.0, rule=TOLERANT)
    np.testing.assert_array_equal(out, x[:1600])


def test_s1_to_s1_needs_two_onsets():
    # no onset, or a single one: no cycle and no run at all (not one empty run)
    assert cycle_runs([Segment(0.0, 1.0, 0)], S1_TO_S1) == []
    assert cycle_runs([], S1_TO_S1) == []
    assert cycle_runs([Segment(0.0, 1.0, 0), Segment(1.0, 1.1, 1), Segment(1.1, 3.0, 0)], S1_TO_S1) == []
    # two onsets: one run of one cycle
    assert cycle_runs([Segment(1.0, 1.1, 1), Segment(2.0, 2.1, 1)], S1_TO_S1) == [[(1.0, 2.0)]]


def test_fit_cycle_windows_takes_a_cycle_that_ends_exactly_at_the_window_length():
    s1 = lambda t: Segment(t, t + 0.1, 1)  # noqa: E731
    onsets = [s1(0.0), s1(1.0), s1(2.0), s1(3.0)]
    # cycles (0, 1000), (1000, 2000), (2000, 3000); a 2000-sample window holds exactly two
    assert fit_cycle_windows(onsets, 1000, 2.0, rule=S1_TO_S1) == [(0, 2000), (2000, 3000)]
    # one sample short of two cycles: one cycle a window
    assert fit_cycle_windows(onsets, 1000, 1.999, rule=S1_TO_S1) == [(0, 1000), (1000, 2000), (2000, 3000)]


def test_fit_cycle_windows_skips_a_run_before_the_recording_and_goes_on():
    # the first run lies before sample 0 (negative times): only its cycles are dropped, the later
    # run still gives its window
    segs = beat(-1.0) + [Segment(-0.2, 1.0, 0)] + beat(1.0) + beat(1.8)
    assert cycle_runs(segs) == [[(-1.0, -0.2)], [(1.0, 1.8), (1.8, 2.6)]]
    assert fit_cycle_windows(segs, 1000, 10.0, num_samples=3000) == [(1000, 2600)]
    assert fit_cycle_windows(segs, 1000, 10.0) == [(-1000, -200), (1000, 2600)]


def test_annotated_span_defaults_to_any_length():
    # min_seconds defaults to 0: a 0.1 s annotated span is kept
    assert annotated_span([Segment(0.0, 1.0, 0), Segment(1.0, 1.1, 1), Segment(1.1, 2.0, 0)]) == (1.0, 1.1)


def test_annotated_span_ignores_zero_length_segments():
    segs = [Segment(1.0, 1.2, 1), Segment(1.2, 2.0, 0), Segment(5.0, 5.0, 3)]
    assert annotated_span(segs) == (1.0, 1.2)
    assert annotated_span([Segment(0.0, 1.0, 0), Segment(2.0, 2.0, 1)]) is None


def test_annotated_span_min_seconds_is_the_length_of_the_span():
    # span 10.0 to 10.5 s: 0.5 s long, however late it starts
    segs = [Segment(0.0, 10.0, 0), Segment(10.0, 10.5, 2)]
    assert annotated_span(segs, min_seconds=1.0) is None
    assert annotated_span(segs, min_seconds=0.6) is None
    # exactly min_seconds long: kept (only a shorter span is dropped); 1.5 - 1.0 == 0.5 exactly
    assert annotated_span([Segment(1.0, 1.5, 1)], min_seconds=0.5) == (1.0, 1.5)
    assert annotated_span([Segment(1.0, 1.5, 1)], min_seconds=0.5000001) is None


def test_cycle_rule_accepts_both_bounds():
    rule = CycleRule(bounds="s1-to-s1")
    assert rule.bounds == "s1-to-s1"
    assert cycle_runs([Segment(0.0, 0.1, 1), Segment(0.5, 1.0, 0), Segment(1.0, 1.1, 1)], rule) == [[(0.0, 1.0)]]
    assert CycleRule(bounds="states").bounds == "states"
    with pytest.raises(ValueError, match=r"bounds must be 'states' or 's1-to-s1', got 'S1-TO-S1'"):
        CycleRule(bounds="S1-TO-S1")


def test_cycle_rule_accepts_any_max_gap_from_zero():
    # max_gap = 0 is allowed (>= 0): inclusive, only segments that meet exactly join
    exact = CycleRule(max_gap=0.0, gap_inclusive=True)
    assert exact.joins(0.0) and not exact.joins(1e-9)
    assert complete_cycles_under(exact) == [(0.0, 0.8)]
    # a gap below a second (TOLERANT's 50 ms) is valid too
    loose = CycleRule(max_gap=0.05, gap_inclusive=True, bound_overlap=False, skip_empty=False)
    assert loose == TOLERANT
    assert CycleRule(max_gap=0.5).max_gap == 0.5
    with pytest.raises(ValueError, match=r"max_gap must be >= 0 seconds, got -0\.001"):
        CycleRule(max_gap=-0.001)


def complete_cycles_under(rule):
    return [c for run in cycle_runs(beat(0.0), rule) for c in run]
