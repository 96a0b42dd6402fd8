"""``pcg_process``: the signal steps of one recording chained, in the manner of NeuroKit2's
``ecg_process``: clean (:func:`~murmurlm.signal.filter.pcg_clean`) → segment
(:func:`~murmurlm.signal.segment.pcg_segment`) → complete cycles
(:func:`~murmurlm.signal.cycles.complete_cycles`, the quality rule) → quality
(:func:`~murmurlm.signal.quality.pcg_quality`). It only chains them; each step is usable alone.

Examples
--------
>>> from murmurlm.signal.synth import synth_pcg
>>> pcg = synth_pcg(10.0, 4000, heart_rate=80, seed=0)
>>> out = pcg_process(pcg.waveform, 4000)
>>> out.cleaned.shape == pcg.waveform.shape, 60 < out.segmentation.heart_rate < 100
(True, True)
>>> len(out.cycles) >= 8, out.quality["method"]
(True, 'cycles')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from murmurlm.signal.cycles import complete_cycles
from murmurlm.signal.filter import pcg_clean
from murmurlm.signal.quality import CYCLE_RULE, pcg_quality


@dataclass
class PCGProcess:
    """What :func:`pcg_process` found: the cleaned signal (band-passed, normalised, at the input
    rate), the segmentation, the complete cycles ``(start, end)`` in seconds and the quality dict."""

    cleaned: np.ndarray
    sampling_rate: int
    segmentation: Any
    cycles: list[tuple[float, float]]
    quality: dict


def pcg_process(waveform: np.ndarray, sampling_rate: int, method: str = "springer", model: Any = None,
                low: float = 25.0, high: float = 400.0) -> PCGProcess:
    """Clean, segment, find the complete cycles and rate the quality of one recording.

    ``method`` / ``model`` go to :func:`~murmurlm.signal.segment.pcg_segment` (which filters the raw
    waveform its own way); ``low`` / ``high`` are the band of the cleaned signal returned. Quality is
    rated on the raw waveform (clipping and silence are properties of the recording).
    """
    from murmurlm.signal.segment import pcg_segment

    wave = np.asarray(waveform, dtype=np.float32)
    cleaned = pcg_clean(wave, sampling_rate, low=low, high=high)
    segmentation = pcg_segment(wave, sampling_rate, method=method, model=model)
    cycles = complete_cycles(segmentation.segments, CYCLE_RULE)
    quality = pcg_quality(wave, sampling_rate, segmentation.segments)
    return PCGProcess(cleaned, int(sampling_rate), segmentation, cycles, quality)
