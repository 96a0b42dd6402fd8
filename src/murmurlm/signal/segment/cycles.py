"""Clean heart cycles: find them in a segmentation, crop a recording to them, cut cycle-aligned windows.

A *full cycle* is S1, systole, S2 and diastole in a row (states 1, 2, 3, 4). A *clean stretch* is a run
of consecutive full cycles, from the start of its first S1 to the end of its last diastole. These
functions back the models' ``preprocess: predicted`` option (segmentation from
:func:`murmurlm.signal.segment.pcg_segment`) and work as well on CirCor's own ``.tsv`` segments.

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
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

_CYCLE = (1, 2, 3, 4)


def _cycles(segments: Sequence) -> list[list[tuple[float, float]]]:
    """Runs of consecutive full cycles, each cycle as (start of S1, end of diastole) in seconds."""
    segs = sorted((s for s in segments if s.end > s.start), key=lambda s: s.start)
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    i = 0
    while i < len(segs):
        window = segs[i:i + 4]
        contiguous = all(abs(window[k + 1].start - window[k].end) < 1e-3 for k in range(len(window) - 1))
        if len(window) == 4 and tuple(int(s.state) for s in window) == _CYCLE and contiguous:
            if current and abs(window[0].start - current[-1][1]) >= 1e-3:
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


def clean_stretches(segments: Sequence, sampling_rate: float, min_cycles: int = 1) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the runs of at least ``min_cycles`` consecutive full cycles.

    Parameters
    ----------
    segments : sequence of objects with ``start``, ``end`` (seconds) and ``state``
        E.g. ``Recording.load_segments()`` or ``pcg_segment(...).segments``.
    sampling_rate : float
        Rate in Hz of the waveform the ranges index.
    min_cycles : int
        Shortest run kept.
    """
    out = []
    for run in _cycles(segments):
        if len(run) >= min_cycles:
            out.append((int(round(run[0][0] * sampling_rate)), int(round(run[-1][1] * sampling_rate))))
    return out


def crop_to_cycles(waveform: np.ndarray, sampling_rate: float, segments: Sequence,
                   min_seconds: float = 2.0) -> np.ndarray:
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
    """
    x = np.asarray(waveform)
    n = x.shape[-1]
    ranges = [(max(0, a), min(n, b)) for a, b in clean_stretches(segments, sampling_rate)]
    ranges = [(a, b) for a, b in ranges if b > a]
    total = sum(b - a for a, b in ranges)
    if not ranges or total < min_seconds * sampling_rate:
        log.debug("crop_to_cycles: %.2f s of clean cycles (< %.2f s); keeping the whole recording",
                  total / sampling_rate, min_seconds)
        return waveform
    return np.concatenate([x[..., a:b] for a, b in ranges], axis=-1)


def cycle_windows(segments: Sequence, sampling_rate: float, cycles: int = 4,
                  hop: int | None = None) -> list[tuple[int, int]]:
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
    for run in _cycles(segments):
        for k in range(0, len(run) - cycles + 1, hop):
            out.append((int(round(run[k][0] * sampling_rate)), int(round(run[k + cycles - 1][1] * sampling_rate))))
    return out
