"""How much of a PCG recording analysis can rely on: :func:`pcg_quality`.

``usable_fraction`` is the share of the recording that analysis can rely on:

- with a segmentation (``method="cycles"``): the time covered by complete heart cycles, i.e. runs
  S1 -> systole -> S2 -> diastole whose consecutive segments are at most 50 ms apart (rule
  :data:`murmurlm.signal.cycles.TOLERANT`, which the heart rate uses too), and by usable 1-second
  windows (below), divided by the duration;
- without one (``method="energy"``): the share of 1-second windows that are neither silent (RMS
  about the window mean below -60 dBFS), clipped (more than 0.5 % of samples at full scale) nor a burst (RMS above 4
  times the median RMS of the windows that are neither silent nor clipped: stethoscope friction,
  speech, movement).

The flag is ``good`` from 0.6, ``fair`` from 0.3, ``poor`` below. It measures how much of the
signal is analysable, not whether it is a heart sound: a segmenter may find "cycles" in steady
noise, which then passes the energy checks too.

Examples
--------
>>> import numpy as np
>>> from murmurlm.signal.synth import synth_pcg
>>> pcg = synth_pcg(10.0, 4000, heart_rate=80, seed=0)
>>> pcg_quality(pcg.waveform, 4000, pcg.segments)["method"], pcg_quality(pcg.waveform, 4000)["method"]
('cycles', 'energy')
>>> pcg_quality(np.zeros(8000, np.float32), 4000)["flag"]
'poor'
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from murmurlm.signal import cycles as heart_cycles

GOOD, FAIR = 0.6, 0.3
CYCLE_RULE = heart_cycles.TOLERANT  # what counts as a complete cycle (the report's heart rate uses it too)
WINDOW_S = 1.0
SILENCE_RMS = 1e-3  # -60 dBFS
CLIP_LEVEL, CLIP_SHARE = 0.999, 0.005
BURST_FACTOR = 4.0


def _energy_windows(wave: np.ndarray, sampling_rate: int) -> tuple[np.ndarray, str]:
    """Per 1-s window: usable (not silent, clipped or a burst); and a sentence counting them."""
    n = max(1, int(len(wave) / sampling_rate // WINDOW_S))
    size = len(wave) // n
    frames = wave[: n * size].reshape(n, size)
    rms = frames.astype(np.float64).std(axis=1)  # RMS around the window's mean: a DC offset is not sound
    clipped = np.mean(np.abs(frames) >= CLIP_LEVEL, axis=1) > CLIP_SHARE
    silent = rms < SILENCE_RMS
    audible = rms[~silent & ~clipped]
    reference = float(np.median(audible)) if audible.size else 0.0
    burst = (rms > BURST_FACTOR * reference) & ~silent & ~clipped if reference > 0 else np.zeros(n, bool)
    usable = ~(silent | clipped | burst)
    detail = (f"{int(usable.sum())} of {n} one-second windows usable "
              f"({int(silent.sum())} silent, {int(clipped.sum())} clipped, {int(burst.sum())} bursts)")
    return usable, detail


def pcg_quality(waveform: np.ndarray, sampling_rate: int, segments: Sequence | None = None) -> dict:
    """The quality flag of a recording: ``{"usable_fraction", "flag", "method", "detail"}``.

    ``segments`` (objects with ``start``, ``end`` in seconds and ``state`` 0-4, e.g.
    ``pcg_segment(...).segments``) selects the ``cycles`` method; without them, ``energy``.
    """
    wave = np.asarray(waveform, dtype=np.float32)
    duration = len(wave) / sampling_rate if sampling_rate else 0.0
    if duration <= 0:
        return {"usable_fraction": 0.0, "flag": "poor", "method": "energy", "detail": "no samples"}
    usable, window_detail = _energy_windows(wave, sampling_rate)
    n = len(usable)
    segments = sorted(segments or (), key=lambda seg: seg.start)
    if segments:
        # time inside complete cycles AND inside usable windows, on a 10 ms grid
        grid = np.arange(0.0, duration, 0.01) + 0.005
        in_cycle = np.zeros(len(grid), bool)
        cycles = heart_cycles.complete_cycles(segments, CYCLE_RULE)
        for start, end in cycles:
            in_cycle |= (grid >= start) & (grid < end)
        window = np.minimum((grid / duration * n).astype(int), n - 1)
        fraction = float(np.mean(in_cycle & usable[window])) if len(grid) else 0.0
        detail = (f"{fraction:.0%} of the recording lies inside {len(cycles)} complete heart cycle(s) "
                  f"and usable windows; {window_detail}")
        method = "cycles"
    else:
        fraction = float(np.mean(usable))
        detail = window_detail
        method = "energy"
    flag = "good" if fraction >= GOOD else "fair" if fraction >= FAIR else "poor"
    return {"usable_fraction": round(float(fraction), 4), "flag": flag, "method": method, "detail": detail}
