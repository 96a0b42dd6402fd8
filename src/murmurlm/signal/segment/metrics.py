"""Segmentation metrics: S1/S2 event F1, frame accuracy per state, agreement on clean stretches.

- **Event F1** (Springer et al. 2016; Liu et al. 2016 use the same 60 ms criterion): each S1 (or S2)
  segment is an event at its centre. A predicted event is a true positive when its centre lies within
  ``tolerance`` (60 ms) of a reference event's centre not already matched (one-to-one; the two-pointer
  sweep over sorted centres finds a maximum matching on a line). By default only the reference's
  annotated stretches count: CirCor leaves noisy stretches unannotated (state 0), so a predicted
  sound whose centre falls where the reference says 0 is neither right nor wrong there.
  Whether the stretches are clean is scored separately, by the clean agreement.
- **Frame accuracy per state**: on 20 ms frames, the fraction of the reference's frames of each state
  that the prediction gives the same state (a per-state recall), and overall on annotated frames.
- **Clean agreement**: frame accuracy of "annotated (1-4) vs unannotated (0)", and the
  intersection over union of the annotated frames.

Counts add up across recordings (:class:`SegmentationCounts`); :meth:`SegmentationCounts.summary`
turns the totals into figures (micro-averaged over events and frames).

Examples
--------
>>> from murmurlm.data.circor import Segment
>>> ref = [Segment(0.0, 0.1, 1), Segment(0.1, 0.3, 2), Segment(0.3, 0.4, 3), Segment(0.4, 0.8, 4)]
>>> pred = [Segment(0.0, 0.14, 1), Segment(0.14, 0.3, 2), Segment(0.3, 0.4, 3), Segment(0.4, 0.8, 4)]
>>> event_counts(ref, pred, state=1)          # centres 0.05 and 0.07: 20 ms apart, a hit
(1, 0, 0)
>>> c = score_segmentation(ref, pred, duration=0.8)
>>> c.summary()["s1_f1"], c.summary()["frame_accuracy"]
(1.0, 0.95)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from murmurlm.data.circor import STATES, Segment
from murmurlm.signal.segment.frames import segments_to_frames

TOLERANCE = 0.06
"""Seconds between the centres of a detected and an annotated sound for a match."""


def _centres(segments: Sequence[Segment], state: int) -> np.ndarray:
    return np.sort(np.array([(s.start + s.end) / 2 for s in segments if s.state == state], dtype=np.float64))


def _annotated(segments: Sequence[Segment], t: np.ndarray) -> np.ndarray:
    """Whether each time in ``t`` lies inside a segment of state 1-4."""
    inside = np.zeros(len(t), dtype=bool)
    for s in segments:
        if s.state != 0:
            inside |= (t >= s.start) & (t < s.end)
    return inside


def match_events(reference: np.ndarray, predicted: np.ndarray, tolerance: float = TOLERANCE) -> int:
    """Size of a maximum one-to-one matching of sorted event times within ``tolerance`` seconds.

    >>> match_events(np.array([1.0, 2.0, 3.0]), np.array([1.05, 1.08, 2.2, 2.95]))
    2
    """
    i = j = hits = 0
    while i < len(reference) and j < len(predicted):
        diff = predicted[j] - reference[i]
        if abs(diff) <= tolerance + 1e-9:
            hits += 1
            i += 1
            j += 1
        elif diff < 0:
            j += 1
        else:
            i += 1
    return hits


def event_counts(reference: Sequence[Segment], predicted: Sequence[Segment], state: int,
                 tolerance: float = TOLERANCE, annotated_only: bool = True) -> tuple[int, int, int]:
    """``(true positives, false positives, false negatives)`` of the events of ``state`` (1 or 3).

    With ``annotated_only``, predicted events whose centre falls outside the reference's annotated
    stretches (state 0 or beyond its segments) are ignored.

    >>> from murmurlm.data.circor import Segment
    >>> ref = [Segment(0, 1, 0), Segment(1.0, 1.1, 1), Segment(1.1, 1.4, 2)]
    >>> pred = [Segment(0.4, 0.5, 1), Segment(1.1, 1.2, 1)]      # 0.45 lies in state 0: ignored
    >>> event_counts(ref, pred, 1)                                # 1.15 vs 1.05: 100 ms, a miss
    (0, 1, 1)
    """
    if state not in STATES or state == 0:
        raise ValueError(f"event_counts: state must be one of 1-4, got {state!r}")
    ref = _centres(reference, state)
    pred = _centres(predicted, state)
    if annotated_only:
        pred = pred[_annotated(reference, pred)]
    tp = match_events(ref, pred, tolerance)
    return tp, len(pred) - tp, len(ref) - tp


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else float("nan")


@dataclass
class SegmentationCounts:
    """Counts that add across recordings: events of S1 and S2, and frames (reference x predicted)."""

    events: dict[int, list[int]] = field(default_factory=lambda: {1: [0, 0, 0], 3: [0, 0, 0]})
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((5, 5), dtype=np.int64))

    def __add__(self, other: "SegmentationCounts") -> "SegmentationCounts":
        return SegmentationCounts(
            {s: [a + b for a, b in zip(self.events[s], other.events[s])] for s in self.events},
            self.confusion + other.confusion)

    def summary(self) -> dict[str, float]:
        """Figures: ``s1_f1``, ``s2_f1`` (with precision and recall), ``frame_accuracy`` (annotated
        reference frames), ``frame_accuracy_<state>``, ``clean_accuracy``, ``clean_iou``."""
        out: dict[str, float] = {}
        for state, name in ((1, "s1"), (3, "s2")):
            tp, fp, fn = self.events[state]
            out[f"{name}_f1"] = _f1(tp, fp, fn)
            out[f"{name}_precision"] = tp / (tp + fp) if tp + fp else float("nan")
            out[f"{name}_recall"] = tp / (tp + fn) if tp + fn else float("nan")
        c = self.confusion.astype(np.float64)
        annotated = c[1:].sum()
        out["frame_accuracy"] = float(np.trace(c[1:, 1:]) / annotated) if annotated else float("nan")
        for s, name in STATES.items():
            row = c[s].sum()
            out[f"frame_accuracy_{name}"] = float(c[s, s] / row) if row else float("nan")
        total = c.sum()
        both = c[1:, 1:].sum()
        out["clean_accuracy"] = float((both + c[0, 0]) / total) if total else float("nan")
        union = c[1:].sum() + c[0, 1:].sum()
        out["clean_iou"] = float(both / union) if union else float("nan")
        return {k: round(v, 4) if np.isfinite(v) else v for k, v in out.items()}


def score_segmentation(reference: Sequence[Segment], predicted: Sequence[Segment], duration: float,
                       frame_rate: float = 50.0, tolerance: float = TOLERANCE,
                       annotated_only: bool = True) -> SegmentationCounts:
    """Counts for one recording of ``duration`` seconds (frames of ``1 / frame_rate`` s)."""
    n = max(1, int(round(duration * frame_rate)))
    ref_f = segments_to_frames(reference, n, frame_rate)
    pred_f = segments_to_frames(predicted, n, frame_rate)
    confusion = np.zeros((5, 5), dtype=np.int64)
    np.add.at(confusion, (ref_f, pred_f), 1)
    events = {s: list(event_counts(reference, predicted, s, tolerance, annotated_only)) for s in (1, 3)}
    return SegmentationCounts(events, confusion)
