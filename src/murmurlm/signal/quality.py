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

The flag is ``good`` from 0.6, ``fair`` from 0.3, ``poor`` below.

A segmenter also finds "cycles" in a recording drowned in steady noise, which then passes the
energy checks too. So with a segmentation there is a **noise check** on the average heartbeat
(:func:`murmurlm.signal.heartbeat.pcg_heartbeat`, 25-800 Hz): ``heart_contrast_db`` is the power of
the heart sounds (the S1 and S2 bins) over the background, the quieter of the median systolic and
the median diastolic power. Heart sounds stand far above a clean background (median 15 dB on 70
circor-dev recordings, 10th percentile 9.8 dB); noise fills the background (pink noise at 0 dB of the
recording's RMS: median 5 dB). A murmur does not lower it: it raises one phase, and the quieter phase
is the background. Below :data:`NOISE_CONTRAST_DB` the recording is ``poor``, and ``reason`` says so
in plain words. The threshold was chosen on those 70 recordings (clean ones flagged no more often;
pink noise at 0 dB flagged in 73 %, white 80 %, mains hum 100 %; ``docs/robustness.md``).

Whether the energy repeats cycle after cycle (a murmur is locked to the cycle, noise is not) was
tried too: the correlation of each cycle's envelope with the median cycle hardly moved with noise
(median 0.77 clean, 0.73 with pink noise at 0 dB), because the segmenter aligns the cycles on
whatever peaks there are; it is not used.

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
from murmurlm.signal.heartbeat import Heartbeat, pcg_heartbeat

GOOD, FAIR = 0.6, 0.3
NOISE_CONTRAST_DB = 6.0  # heart sounds less than this above the background: too noisy to judge
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


def heart_contrast_db(heartbeat: Heartbeat) -> float | None:
    """Power of the heart sounds (S1 and S2 bins of the average heartbeat, 25-800 Hz) over the
    background (the quieter of the median systolic and median diastolic power), in dB; None
    without a reliable heartbeat (fewer than two kept cycles).

    >>> from murmurlm.signal.synth import synth_pcg
    >>> pcg = synth_pcg(10.0, 4000, heart_rate=80, seed=0)
    >>> heart_contrast_db(pcg_heartbeat(pcg.waveform, 4000, pcg.segments)) > NOISE_CONTRAST_DB
    True
    """
    if not heartbeat.reliable:
        return None
    power = heartbeat.image.astype(np.float64).sum(axis=0)  # per bin of the cycle
    sounds = np.concatenate([power[heartbeat.phase_slice("S1")], power[heartbeat.phase_slice("S2")]]).mean()
    background = min(np.median(power[heartbeat.phase_slice("systole")]),
                     np.median(power[heartbeat.phase_slice("diastole")]))
    if sounds <= 0:
        return 0.0
    return float(10.0 * np.log10(sounds / max(background, 1e-20)))


def pcg_quality(waveform: np.ndarray, sampling_rate: int, segments: Sequence | None = None,
                heartbeat: Heartbeat | None = None) -> dict:
    """The quality flag of a recording: ``{"usable_fraction", "flag", "method", "detail",
    "heart_contrast_db", "reason"}``.

    ``segments`` (objects with ``start``, ``end`` in seconds and ``state`` 0-4, e.g.
    ``pcg_segment(...).segments``) selects the ``cycles`` method and the noise check; without
    them, ``energy``. ``heartbeat``: the recording's :func:`~murmurlm.signal.heartbeat.pcg_heartbeat`
    on the same segments, when the caller has it (else it is computed). ``reason``: why the flag is
    ``poor``, in plain words (None otherwise).

    >>> from murmurlm.signal.noise import pcg_add_noise
    >>> from murmurlm.signal.synth import synth_pcg
    >>> pcg = synth_pcg(10.0, 4000, heart_rate=80, seed=0)
    >>> pcg_quality(pcg.waveform, 4000, pcg.segments)["flag"]
    'good'
    >>> drowned = pcg_add_noise(pcg.waveform, 4000, "white", -10.0, seed=0)
    >>> q = pcg_quality(drowned, 4000, pcg.segments)
    >>> q["flag"], q["reason"].startswith("too noisy")
    ('poor', True)
    """
    wave = np.asarray(waveform, dtype=np.float32)
    duration = len(wave) / sampling_rate if sampling_rate else 0.0
    if duration <= 0:
        return {"usable_fraction": 0.0, "flag": "poor", "method": "energy", "detail": "no samples",
                "heart_contrast_db": None, "reason": "the recording holds no samples"}
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
    reason = None if flag != "poor" else (
        "too little of it lies in complete heart cycles" if method == "cycles" else "too little of it is usable sound")
    contrast = None
    if segments:
        if heartbeat is None:
            heartbeat = pcg_heartbeat(wave, sampling_rate, segments)
        contrast = heart_contrast_db(heartbeat)
        if contrast is not None:
            detail += f"; heart sounds {contrast:.1f} dB above the background"
            if contrast < NOISE_CONTRAST_DB:
                flag = "poor"
                reason = (f"too noisy: the heart sounds stand only {contrast:.1f} dB above the background noise "
                          f"(at least {NOISE_CONTRAST_DB:g} dB are needed)")
    return {"usable_fraction": round(float(fraction), 4), "flag": flag, "method": method, "detail": detail,
            "heart_contrast_db": None if contrast is None else round(contrast, 2), "reason": reason}
