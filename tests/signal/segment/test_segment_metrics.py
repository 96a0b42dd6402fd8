"""Segmentation metrics on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data.circor import Segment
from murmurlm.signal.segment.metrics import (
    SegmentationCounts, event_counts, match_events, score_segmentation,
)


def S(a, b, s):
    return Segment(a, b, s)


def test_sixty_millisecond_criterion():
    ref = [S(0.5, 1.0, 4), S(1.0, 1.1, 1), S(1.1, 1.4, 2)]  # S1 centre 1.05, inside annotated audio
    assert event_counts(ref, [S(1.06, 1.16, 1)], 1) == (1, 0, 0)   # centre 1.11: 60 ms, counts
    assert event_counts(ref, [S(1.07, 1.17, 1)], 1) == (0, 1, 1)   # centre 1.12: 70 ms, does not
    assert event_counts(ref, [S(0.94, 1.04, 1)], 1) == (1, 0, 0)   # 60 ms early counts too


def test_matching_is_one_to_one_and_maximal():
    # two detections near one sound: one hit, one false positive
    assert event_counts([S(1.0, 1.1, 1)], [S(0.98, 1.08, 1), S(1.02, 1.12, 1)], 1) == (1, 1, 0)
    # a greedy "nearest first" would pair 1.04 with 1.0 and lose 1.09; the sweep finds both
    assert match_events(np.array([1.0, 1.1]), np.array([1.04, 1.09])) == 2


def test_state_zero_stretches_of_the_reference_are_not_scored():
    ref = [S(0.0, 2.0, 0), S(2.0, 2.1, 1), S(2.1, 2.4, 2), S(2.4, 2.5, 3), S(2.5, 3.0, 4)]
    pred = [S(0.5, 0.6, 1), S(2.0, 2.1, 1), S(2.4, 2.5, 3)]
    assert event_counts(ref, pred, 1) == (1, 0, 0)
    assert event_counts(ref, pred, 1, annotated_only=False) == (1, 1, 0)


def test_s2_events_and_wrong_state():
    ref = [S(0.0, 0.1, 1), S(0.1, 0.3, 2), S(0.3, 0.4, 3), S(0.4, 0.8, 4)]
    swapped = [S(0.0, 0.1, 3), S(0.1, 0.3, 4), S(0.3, 0.4, 1), S(0.4, 0.8, 2)]
    assert event_counts(ref, swapped, 1) == (0, 1, 1)
    assert event_counts(ref, swapped, 3) == (0, 1, 1)
    with pytest.raises(ValueError, match="1-4"):
        event_counts(ref, ref, 0)


def test_frame_and_clean_figures_by_hand():
    # 1 s at 50 Hz = 50 frames; reference: 20 frames of 0, then 10 each of S1, systole, S2
    ref = [S(0.0, 0.4, 0), S(0.4, 0.6, 1), S(0.6, 0.8, 2), S(0.8, 1.0, 3)]
    # prediction: annotated from 0.3 s (5 frames of 0 wrongly annotated as 4), S1 late by 2 frames
    pred = [S(0.0, 0.3, 0), S(0.3, 0.44, 4), S(0.44, 0.6, 1), S(0.6, 0.8, 2), S(0.8, 1.0, 3)]
    c = score_segmentation(ref, pred, 1.0)
    assert c.confusion.sum() == 50
    s = c.summary()
    assert s["frame_accuracy_S1"] == 0.8            # 8 of 10 S1 frames
    assert s["frame_accuracy"] == pytest.approx(28 / 30, abs=1e-4)
    assert s["frame_accuracy_unannotated"] == 0.75  # 15 of 20
    assert s["clean_accuracy"] == 0.9               # 45 of 50 agree on 0 vs annotated
    assert s["clean_iou"] == pytest.approx(30 / 35, abs=1e-4)


def test_counts_add_across_recordings():
    ref = [S(0.0, 0.1, 1), S(0.1, 0.3, 2), S(0.3, 0.4, 3), S(0.4, 0.8, 4)]
    a = score_segmentation(ref, ref, 0.8)
    b = score_segmentation(ref, [S(0.0, 0.8, 0)], 0.8)
    total = a + b
    assert total.events[1] == [1, 0, 1]
    assert total.summary()["s1_f1"] == pytest.approx(2 / 3, abs=1e-4)
    empty = SegmentationCounts().summary()
    assert np.isnan(empty["s1_f1"])
