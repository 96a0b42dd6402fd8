"""Conversions between CirCor segment lists and per-frame state sequences.

Frame ``k`` covers ``[k / frame_rate, (k + 1) / frame_rate)`` and takes the state at its centre.

Examples
--------
>>> from murmurlm.data.circor import Segment
>>> segs = [Segment(0.0, 0.1, 1), Segment(0.1, 0.2, 2)]
>>> segments_to_frames(segs, 10, frame_rate=50).tolist()
[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
>>> frames_to_segments([0, 0, 1, 1, 2], frame_rate=50)
[Segment(start=0.0, end=0.04, state=0), Segment(start=0.04, end=0.08, state=1), Segment(start=0.08, end=0.1, state=2)]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from murmurlm.data.circor import STATES, Segment


def segments_to_frames(segments: Sequence[Segment], num_frames: int, frame_rate: float) -> np.ndarray:
    """Per-frame states (int64, ``num_frames`` long); frames no segment covers are 0 (unannotated)."""
    states = np.zeros(num_frames, dtype=np.int64)
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    for seg in segments:
        lo = int(np.searchsorted(centres, seg.start, side="left"))
        hi = int(np.searchsorted(centres, seg.end, side="left"))
        states[lo:hi] = seg.state
    return states


def frames_to_segments(frame_states: Sequence[int] | np.ndarray, frame_rate: float,
                       duration: float | None = None) -> list[Segment]:
    """Run-length encode per-frame states into segments (times rounded to microseconds).

    ``duration`` (seconds), when given, becomes the end of the last segment instead of
    ``len(frame_states) / frame_rate`` (the last frame is usually partial).
    """
    s = np.asarray(frame_states, dtype=np.int64)
    if s.ndim != 1:
        raise ValueError(f"frames_to_segments: expected 1-D states, got shape {s.shape}")
    if s.size == 0:
        return []
    bad = sorted(set(np.unique(s).tolist()) - set(STATES))
    if bad:
        raise ValueError(f"frames_to_segments: unknown state(s) {bad}; valid: {sorted(STATES)}")
    change = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(s)]])
    total = len(s) / frame_rate if duration is None else float(duration)
    out = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        start = round(a / frame_rate, 6)
        end = round(total if b == len(s) else b / frame_rate, 6)
        if end > start:
            out.append(Segment(start, end, int(s[a])))
    return out
