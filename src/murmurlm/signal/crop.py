"""Crop a recording to the stretch its segmentation covers.

CirCor's ``.tsv`` files mark S1/systole/S2/diastole only where the annotators could follow the heart
cycle; state 0 (unannotated) at the edges is usually handling noise. ``preprocess: annotated`` in the
compact model's config keeps the annotated stretch only. The function takes plain segments so any
segmenter (CirCor's ``.tsv``, ``murmurlm.signal.segment``) can feed it; the span itself is
:func:`murmurlm.signal.cycles.annotated_span`.

Examples
--------
>>> import numpy as np
>>> from murmurlm.data.circor import Segment
>>> x = np.arange(4000 * 10, dtype=np.float32)
>>> segs = [Segment(0.0, 1.0, 0), Segment(1.0, 1.2, 1), Segment(1.2, 7.5, 4), Segment(7.5, 10.0, 0)]
>>> crop_annotated(x, 4000, segs).shape
(26000,)
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from murmurlm.signal.cycles import annotated_span


def crop_annotated(waveform: np.ndarray, sampling_rate: int, segments: Iterable,
                   min_seconds: float = 2.0) -> np.ndarray:
    """The part of ``waveform`` between the first and last annotated segment.

    Returns the waveform unchanged when the segmentation is empty, annotates nothing, or annotates
    less than ``min_seconds`` (too little to classify; the whole recording is better than that).

    Parameters
    ----------
    waveform : np.ndarray
        1-D signal.
    sampling_rate : int
        Its rate in Hz (segment times are in seconds).
    segments : iterable of objects with ``start``, ``end``, ``state``
        E.g. :meth:`murmurlm.data.circor.Recording.load_segments`.
    min_seconds : float
        Shortest annotated stretch worth cropping to.
    """
    span = annotated_span(segments, min_seconds)
    if span is None:
        return waveform
    n = waveform.shape[-1]
    a = max(0, min(n, int(round(span[0] * sampling_rate))))
    b = max(a, min(n, int(round(span[1] * sampling_rate))))
    if b - a < int(min_seconds * sampling_rate):
        return waveform
    return waveform[..., a:b]
