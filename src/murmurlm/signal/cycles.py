"""Heart cycles in a segmentation: the one module of murmurlm that finds them.

A segmentation is a sequence of segments: objects with ``start`` and ``end`` (seconds) and ``state``
in CirCor's numbering, 0 unannotated, 1 S1, 2 systole, 3 S2, 4 diastole (CirCor's ``.tsv`` through
:meth:`murmurlm.data.circor.Recording.load_segments`, :func:`murmurlm.signal.segment.pcg_segment`,
the report's segment views). Everything here reads them; nothing here segments.

- :func:`cycle_runs`, :func:`complete_cycles`: the complete cycles, in runs of consecutive ones or
  as one list, ``(start, end)`` in seconds, under a :class:`CycleRule`;
- :func:`clean_stretches`, :func:`crop_to_cycles`, :func:`cycle_windows`: sample ranges of the runs,
  the waveform cut to them, windows of a fixed number of cycles (re-exported by
  :mod:`murmurlm.signal.segment`);
- :func:`fit_cycle_windows`: windows of as many whole cycles as fit in a window length;
- :func:`annotated_span`: first to last annotated segment (state other than 0).

Rules
-----
What counts as a complete cycle differs between the users; each rule is a named :class:`CycleRule`:

- :data:`CONTIGUOUS` (the default; :func:`clean_stretches`, :func:`crop_to_cycles`,
  :func:`cycle_windows`): S1, systole, S2 and diastole as four consecutive segments that meet
  within 1 ms either way (below CirCor's time resolution: a 1 ms hole is a hole), zero-length
  segments skipped (they cover no time); a run ends where the next cycle does not meet the last.
- :data:`TOLERANT` (the report's heart rate and quality flag, :mod:`murmurlm.inference.report`):
  the same four states in a row with holes up to and including 50 ms and any overlap; a
  zero-length segment counts as a segment (and breaks the cycle it falls in).
- :data:`S1_TO_S1` (the audio LM's ``cycles`` windows, :mod:`murmurlm.models.instructions`): from
  one S1 onset to the next, whatever lies between (other states, state 0, holes); all of them make
  one run.

:func:`annotated_span` (``preprocess: annotated`` and ``predicted``, :mod:`murmurlm.signal.crop`)
asks for no cycle at all: every state other than 0 counts.

Examples
--------
>>> import numpy as np
>>> from murmurlm.data.circor import Segment
>>> cycle = lambda t: [Segment(t, t + .1, 1), Segment(t + .1, t + .3, 2), Segment(t + .3, t + .4, 3), Segment(t + .4, t + .8, 4)]
>>> segs = [Segment(0.0, 1.0, 0)] + cycle(1.0) + cycle(1.8) + [Segment(2.6, 4.0, 0)]
>>> clean_stretches(segs, 1000)
[(1000, 2600)]
>>> crop_to_cycles(np.arange(4000.0), 1000, segs, min_seconds=1.0).shape
(1600,)
>>> cycle_windows(segs, 1000, cycles=1)
[(1000, 1800), (1800, 2600)]
>>> annotated_span(segs)
(1.0, 2.6)

A 20 ms hole between systole and S2 breaks a cycle under the default rule, not under the report's:

>>> holed = [Segment(0.0, 0.1, 1), Segment(0.1, 0.3, 2), Segment(0.32, 0.4, 3), Segment(0.4, 0.8, 4)]
>>> complete_cycles(holed), complete_cycles(holed, TOLERANT)
([], [(0.0, 0.8)])
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import numpy as np

log = logging.getLogger(__name__)

UNANNOTATED, S1, SYSTOLE, S2, DIASTOLE = 0, 1, 2, 3, 4
"""CirCor's states (:data:`murmurlm.data.circor.STATES`)."""

FULL_CYCLE = (S1, SYSTOLE, S2, DIASTOLE)
"""The states of a complete cycle, in order."""


@dataclass(frozen=True)
class CycleRule:
    """What counts as a complete heart cycle (see the module docstring for the named rules).

    Attributes
    ----------
    bounds : {"states", "s1-to-s1"}
        ``"states"``: S1, systole, S2 and diastole as four consecutive segments, from the start of S1
        to the end of diastole. ``"s1-to-s1"``: from one S1 onset to the next, whatever lies between;
        the other fields do not apply (no states or holes are checked).
    max_gap : float
        Seconds: the largest hole (a segment's start minus the previous one's end) that still joins
        two segments into one cycle, and two cycles into one run.
    gap_inclusive : bool
        Whether a hole of exactly ``max_gap`` joins.
    bound_overlap : bool
        Whether ``max_gap`` bounds an overlap (a negative hole) too, or any overlap joins.
    skip_empty : bool
        Whether zero-length segments are dropped before matching, or count as a segment (and so
        break the cycle they fall in).
    """

    bounds: Literal["states", "s1-to-s1"] = "states"
    max_gap: float = 1e-3
    gap_inclusive: bool = False
    bound_overlap: bool = True
    skip_empty: bool = True

    def __post_init__(self) -> None:
        if self.bounds not in ("states", "s1-to-s1"):
            raise ValueError(f"CycleRule: bounds must be 'states' or 's1-to-s1', got {self.bounds!r}")
        if not self.max_gap >= 0:
            raise ValueError(f"CycleRule: max_gap must be >= 0 seconds, got {self.max_gap!r}")

    def joins(self, hole: float) -> bool:
        """Whether two stretches ``hole`` seconds apart (negative: overlapping) are consecutive."""
        size = abs(hole) if self.bound_overlap else hole
        return size <= self.max_gap if self.gap_inclusive else size < self.max_gap


CONTIGUOUS = CycleRule()
"""The four states meeting within 1 ms either way; zero-length segments skipped."""

TOLERANT = CycleRule(max_gap=0.05, gap_inclusive=True, bound_overlap=False, skip_empty=False)
"""The four states in a row, holes up to and including 50 ms, any overlap; zero-length segments count."""

S1_TO_S1 = CycleRule(bounds="s1-to-s1", max_gap=math.inf, gap_inclusive=True, bound_overlap=False,
                     skip_empty=False)
"""From one S1 onset to the next, whatever lies between."""


def cycle_runs(segments: Iterable, rule: CycleRule = CONTIGUOUS) -> list[list[tuple[float, float]]]:
    """Runs of consecutive complete cycles, each cycle ``(start, end)`` in seconds, in time order.

    The segments are sorted by start first (a stable sort: segments that start together keep their
    order).

    >>> from murmurlm.data.circor import Segment
    >>> beat = lambda t: [Segment(t, t + .1, 1), Segment(t + .1, t + .3, 2), Segment(t + .3, t + .4, 3),
    ...                   Segment(t + .4, t + .8, 4)]
    >>> cycle_runs(beat(0.0) + beat(0.8) + [Segment(1.6, 2.0, 0)] + beat(2.0))
    [[(0.0, 0.8), (0.8, 1.6)], [(2.0, 2.8)]]
    >>> cycle_runs(beat(0.0) + [Segment(0.8, 2.0, 0)] + beat(2.0), S1_TO_S1)  # the state-0 stretch inside
    [[(0.0, 2.0)]]
    """
    segs = sorted((s for s in segments if not rule.skip_empty or s.end > s.start), key=lambda s: s.start)
    if rule.bounds == "s1-to-s1":
        onsets = [float(s.start) for s in segs if int(s.state) == S1]
        return [list(zip(onsets[:-1], onsets[1:]))] if len(onsets) > 1 else []
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    i = 0
    while i < len(segs):
        window = segs[i:i + 4]
        if (len(window) == 4 and tuple(int(s.state) for s in window) == FULL_CYCLE
                and all(rule.joins(window[k + 1].start - window[k].end) for k in range(3))):
            if current and not rule.joins(window[0].start - current[-1][1]):
                runs.append(current)
                current = []
            current.append((float(window[0].start), float(window[3].end)))
            i += 4
        else:
            if current:
                runs.append(current)
                current = []
            i += 1
    if current:
        runs.append(current)
    return runs


def complete_cycles(segments: Iterable, rule: CycleRule = CONTIGUOUS) -> list[tuple[float, float]]:
    """``(start, end)`` in seconds of every complete cycle, in time order (:func:`cycle_runs`, flat).

    >>> from murmurlm.data.circor import Segment
    >>> segs = [Segment(0.0, 0.1, 1), Segment(0.1, 0.4, 2), Segment(0.4, 0.5, 3), Segment(0.5, 0.9, 4),
    ...         Segment(0.9, 1.0, 1), Segment(1.0, 1.3, 2)]      # the second cycle is incomplete
    >>> complete_cycles(segs)
    [(0.0, 0.9)]
    """
    return [c for run in cycle_runs(segments, rule) for c in run]


def clean_stretches(segments: Sequence, sampling_rate: float, min_cycles: int = 1, *,
                    rule: CycleRule = CONTIGUOUS) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the runs of at least ``min_cycles`` consecutive full cycles.

    Parameters
    ----------
    segments : sequence of objects with ``start``, ``end`` (seconds) and ``state``
        E.g. ``Recording.load_segments()`` or ``pcg_segment(...).segments``.
    sampling_rate : float
        Rate in Hz of the waveform the ranges index.
    min_cycles : int
        Shortest run kept.
    rule : CycleRule
        What counts as a complete cycle.
    """
    out = []
    for run in cycle_runs(segments, rule):
        if len(run) >= min_cycles:
            out.append((int(round(run[0][0] * sampling_rate)), int(round(run[-1][1] * sampling_rate))))
    return out


def crop_to_cycles(waveform: np.ndarray, sampling_rate: float, segments: Sequence,
                   min_seconds: float = 2.0, *, rule: CycleRule = CONTIGUOUS) -> np.ndarray:
    """The clean stretches of ``waveform``, concatenated in time order.

    Returns ``waveform`` unchanged when the clean stretches total less than ``min_seconds`` (too
    little to classify; the whole recording is then the better input), as
    :func:`murmurlm.signal.crop.crop_annotated` does.

    Parameters
    ----------
    waveform : np.ndarray
        1-D signal (or ``(..., samples)``; cropped along the last axis).
    sampling_rate : float
        Its rate in Hz.
    segments : sequence of objects with ``start``, ``end``, ``state``
        The segmentation (CirCor ``.tsv`` or :func:`~murmurlm.signal.segment.pcg_segment`).
    min_seconds : float
        Least clean audio worth cropping to.
    rule : CycleRule
        What counts as a complete cycle.
    """
    x = np.asarray(waveform)
    n = x.shape[-1]
    ranges = [(max(0, a), min(n, b)) for a, b in clean_stretches(segments, sampling_rate, rule=rule)]
    ranges = [(a, b) for a, b in ranges if b > a]
    total = sum(b - a for a, b in ranges)
    if not ranges or total < min_seconds * sampling_rate:
        log.debug("crop_to_cycles: %.2f s of clean cycles (< %.2f s); keeping the whole recording",
                  total / sampling_rate, min_seconds)
        return waveform
    return np.concatenate([x[..., a:b] for a, b in ranges], axis=-1)


def cycle_windows(segments: Sequence, sampling_rate: float, cycles: int = 4,
                  hop: int | None = None, *, rule: CycleRule = CONTIGUOUS) -> list[tuple[int, int]]:
    """Sample ranges of windows of ``cycles`` consecutive full cycles, each starting at an S1 onset.

    ``hop`` (default: ``cycles``, no overlap) is the number of cycles between window starts. Windows
    never span two clean stretches.
    """
    if cycles < 1:
        raise ValueError(f"cycle_windows: cycles must be >= 1, got {cycles!r}")
    hop = cycles if hop is None else hop
    if hop < 1:
        raise ValueError(f"cycle_windows: hop must be >= 1, got {hop!r}")
    out = []
    for run in cycle_runs(segments, rule):
        for k in range(0, len(run) - cycles + 1, hop):
            out.append((int(round(run[k][0] * sampling_rate)), int(round(run[k + cycles - 1][1] * sampling_rate))))
    return out


def fit_cycle_windows(segments: Sequence, sampling_rate: float, window_seconds: float,
                      num_samples: int | None = None, *, rule: CycleRule = CONTIGUOUS) -> list[tuple[int, int]]:
    """Sample ranges of windows of as many consecutive whole cycles as fit in ``window_seconds``.

    Each window starts at a cycle's start and takes the cycles after it while the window stays
    within ``round(window_seconds * sampling_rate)`` samples; it never spans two runs. A single
    cycle longer than the window is cut to the window's length. With ``num_samples``, only cycles
    inside the recording count: starting at sample 0 or later and ending at ``num_samples`` or
    earlier, or, under ``"s1-to-s1"`` bounds, with the closing S1 onset inside the recording
    (before ``num_samples``). Empty when there is no complete cycle.

    >>> from murmurlm.data.circor import Segment
    >>> s1 = lambda t: Segment(t, t + .1, 1)
    >>> fit_cycle_windows([s1(0.0), s1(1.0), s1(2.0), s1(3.5), s1(4.0)], 1000, 2.5, rule=S1_TO_S1)
    [(0, 2000), (2000, 4000)]
    >>> fit_cycle_windows([s1(0.0), s1(1.0), s1(2.0)], 1000, 2.5, num_samples=2000, rule=S1_TO_S1)
    [(0, 1000)]
    """
    size = int(round(window_seconds * sampling_rate))
    last = None if num_samples is None else num_samples - 1 if rule.bounds == "s1-to-s1" else num_samples
    out: list[tuple[int, int]] = []
    for run in cycle_runs(segments, rule):
        cycles = [(int(round(a * sampling_rate)), int(round(b * sampling_rate))) for a, b in run]
        if last is not None:
            cycles = [(a, b) for a, b in cycles if 0 <= a and b <= last]
        if not cycles:
            continue
        start, end = cycles[0]
        for a, b in cycles[1:]:
            if b - start <= size:
                end = b
            else:
                out.append((start, min(end, start + size)))
                start, end = a, b
        out.append((start, min(end, start + size)))
    return out


def annotated_span(segments: Iterable, min_seconds: float = 0.0) -> tuple[float, float] | None:
    """(start, end) in seconds from the first to the last segment with a state other than 0, or
    None when nothing is annotated or the span is shorter than ``min_seconds``.

    Zero-length segments do not count; what lies between the first and the last annotated segment
    (state 0 included) is inside the span.

    >>> from murmurlm.data.circor import Segment
    >>> annotated_span([Segment(0.0, 1.0, 0), Segment(1.0, 1.2, 1), Segment(1.2, 3.0, 0), Segment(3.0, 3.5, 4)])
    (1.0, 3.5)
    >>> annotated_span([Segment(0.0, 1.0, 0)]) is None
    True
    """
    marked = [(s.start, s.end) for s in segments if int(s.state) != UNANNOTATED and s.end > s.start]
    if not marked:
        return None
    start, end = min(a for a, _ in marked), max(b for _, b in marked)
    if end - start < min_seconds:
        return None
    return start, end
