"""Synthetic phonocardiograms with known segmentation and murmur labels, and a synthetic CirCor folder.

A heart cycle is S1 (two overlapping damped low-frequency bursts, mitral and tricuspid closure,
~30-100 Hz), systole, S2 (aortic and pulmonary closure, slightly higher pitch and shorter) and
diastole. Systole lasts about 0.3 of the cycle, clamped to 0.2-0.4 s; the cycle length varies from
beat to beat (``heart_rate_jitter``). A murmur is band-limited sound gated inside the systolic (or
diastolic) interval of every beat, described by the same vocabulary as CirCor's labels
(:mod:`murmurlm.data.labels`):

- timing: Early = first third of the interval, Mid = middle third, Late = last third, Holo = all of it;
- shape: the amplitude envelope inside that window (Crescendo rising, Decrescendo falling,
  Diamond rise-fall, Plateau flat);
- grade: amplitude, doubling (+6 dB) per grade step;
- pitch: frequency band, Low 25-150 Hz, Medium 100-300 Hz, High 200-600 Hz (capped below Nyquist);
- quality: Blowing = smooth band-limited noise, Harsh = broader noise with rough amplitude
  modulation, Musical = a tonal sound (fundamental in the pitch band and two harmonics).

:func:`write_synthetic_circor` writes a small dataset in CirCor 1.0.3's official layout (labels
table, patient headers, WAV audio, WFDB headers, segmentations), readable by
:func:`murmurlm.data.circor.load_circor`; tests and examples use it in place of the real data.

Examples
--------
>>> from murmurlm.signal.synth import MurmurSpec, synth_pcg, labels_for
>>> spec = MurmurSpec("systolic", "Holosystolic", "Plateau", "II/VI", "Medium", "Blowing")
>>> pcg = synth_pcg(5.0, sampling_rate=4000, heart_rate=72, murmurs=[spec], seed=1)
>>> pcg.waveform.shape, pcg.waveform.dtype.name
((20000,), 'float32')
>>> sorted({s.state for s in pcg.segments})
[1, 2, 3, 4]
>>> labels_for([spec])["Systolic murmur timing"]
'Holosystolic'
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
from scipy import signal as sps

from murmurlm.data import labels as L
from murmurlm.data.circor import Segment

log = logging.getLogger(__name__)

PITCH_BANDS: dict[str, tuple[float, float]] = {"Low": (25.0, 150.0), "Medium": (100.0, 300.0), "High": (200.0, 600.0)}
"""Frequency band (Hz) of a murmur of each pitch class."""

GRADE_AMPLITUDE = (0.15, 0.3, 0.6)
"""Peak murmur amplitude relative to the S1 peak for grade I, II, III (systolic /VI, diastolic /IV)."""

TIMING_WINDOWS: dict[str, tuple[float, float]] = {
    "Early": (0.0, 1 / 3), "Mid": (1 / 3, 2 / 3), "Late": (2 / 3, 1.0), "Holo": (0.0, 1.0),
}
"""Part of the systolic/diastolic interval a murmur of each timing occupies (fractions)."""

GAIN = 0.4
"""Output gain: the S1 peak sits near 0.4 full scale, so murmurs and noise keep well inside [-1, 1]."""

CSV_COLUMNS = (
    "Patient ID", "Recording locations:", "Age", "Sex", "Height", "Weight", "Pregnancy status",
    "Murmur", "Murmur locations", "Most audible location", *(f.name for f in (*L.SYSTOLIC, *L.DIASTOLIC)),
    "Outcome", "Campaign", "Additional ID",
)
"""The header of CirCor 1.0.3's ``training_data.csv``, in its order."""

# typical resting heart rate (bpm) per CirCor age group; "nan" are the (adult) pregnant women
_AGE_HEART_RATE = {"Neonate": 140.0, "Infant": 120.0, "Child": 95.0, "Adolescent": 78.0, "nan": 80.0}
_AGE_BODY = {  # height cm, weight kg: (mean, spread)
    "Neonate": ((50.0, 3.0), (3.4, 0.5)), "Infant": ((70.0, 8.0), (8.0, 2.0)),
    "Child": ((115.0, 18.0), (21.0, 6.0)), "Adolescent": ((160.0, 10.0), (50.0, 9.0)),
    "nan": ((162.0, 7.0), (65.0, 10.0)),
}


@dataclass(frozen=True)
class MurmurSpec:
    """One murmur, described with CirCor's class strings.

    Parameters
    ----------
    kind : "systolic" or "diastolic".
    timing : a class of ``Systolic murmur timing`` (``Diastolic murmur timing``), e.g. "Holosystolic".
    shape : Crescendo, Decrescendo, Diamond, Plateau (diastolic: Decrescendo, Plateau).
    grade : I/VI, II/VI, III/VI (diastolic: I/IV, II/IV, III/IV).
    pitch : Low, Medium, High.
    quality : Blowing, Harsh, Musical (diastolic: Blowing, Harsh).

    Examples
    --------
    >>> MurmurSpec("diastolic", "Early-diastolic", "Decrescendo", "I/IV", "High", "Blowing").kind
    'diastolic'
    >>> MurmurSpec(timing="Soon")
    Traceback (most recent call last):
    ...
    murmurlm.data.labels.LabelError: MurmurSpec.timing: 'Soon' is not a 'Systolic murmur timing' class; valid: Early-systolic, Holosystolic, Mid-systolic, Late-systolic
    """

    kind: str = "systolic"
    timing: str = "Holosystolic"
    shape: str = "Plateau"
    grade: str = "II/VI"
    pitch: str = "Medium"
    quality: str = "Harsh"

    def __post_init__(self) -> None:
        if self.kind not in ("systolic", "diastolic"):
            raise L.LabelError(f"MurmurSpec.kind: {self.kind!r} is not valid; valid: systolic, diastolic")
        for attr, feat in self._features().items():
            value = getattr(self, attr)
            if value not in feat.present_classes:
                raise L.LabelError(
                    f"MurmurSpec.{attr}: {value!r} is not a {feat.name!r} class; "
                    f"valid: {', '.join(feat.present_classes)}"
                )

    def _features(self) -> dict[str, L.Feature]:
        group = L.SYSTOLIC if self.kind == "systolic" else L.DIASTOLIC
        return dict(zip(("timing", "shape", "grade", "pitch", "quality"), group))

    def labels(self) -> dict[str, str]:
        """The five feature labels (column name -> class) this murmur gives."""
        return {feat.name: getattr(self, attr) for attr, feat in self._features().items()}

    @property
    def window(self) -> tuple[float, float]:
        """(start, end) fractions of the systolic/diastolic interval the murmur occupies."""
        return TIMING_WINDOWS[self.timing.split("-")[0].removesuffix("systolic").removesuffix("diastolic")]

    @property
    def amplitude(self) -> float:
        """Peak amplitude relative to the S1 peak (from the grade)."""
        return GRADE_AMPLITUDE[self._features()["grade"].present_classes.index(self.grade)]


@dataclass
class SyntheticPCG:
    """A synthetic recording: ``waveform`` (float32), its ``sampling_rate`` and its segmentation."""

    waveform: np.ndarray
    sampling_rate: int
    segments: list[Segment]


# --------------------------------------------------------------------------------------------
# signal generation


def _beat_times(duration: float, heart_rate: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Beats covering [0, duration]: rows (s1_start, s1_end, s2_start, s2_end, next_s1_start) in s.

    The first beat starts up to one cycle before 0, so a recording begins anywhere in the cycle.
    """
    mean_cycle = 60.0 / heart_rate
    count = int(math.ceil(duration / (mean_cycle * 0.7))) + 3
    factors = np.clip(1.0 + jitter * rng.standard_normal(count), 0.7, 1.3)
    cycles = mean_cycle * factors
    starts = np.concatenate([[0.0], np.cumsum(cycles)[:-1]]) - rng.uniform(0.0, cycles[0])
    scale = np.minimum(1.0, cycles / 0.75)  # S1/S2 shorten at fast rates
    d1 = 0.12 * scale * rng.uniform(0.9, 1.1, count)
    d2 = 0.10 * scale * rng.uniform(0.9, 1.1, count)
    systole = np.clip(0.3 * cycles, 0.2, 0.4)
    systole = np.minimum(systole, 0.7 * cycles - d1 - d2)  # diastole keeps at least 30 % of the cycle
    s1_end = starts + d1
    s2_start = s1_end + systole
    s2_end = s2_start + d2
    beats = np.stack([starts, s1_end, s2_start, s2_end, starts + cycles], axis=1)
    return beats[(beats[:, 4] > 0.0) & (beats[:, 0] < duration)]


def _heart_sound(length: int, sampling_rate: int, freqs: np.ndarray, split: int, rng: np.random.Generator) -> np.ndarray:
    """Two damped sinusoid bursts (valve closures) ``split`` samples apart, peak 1."""
    t = np.arange(length) / sampling_rate
    out = np.zeros(length)
    tau = length / sampling_rate / 6.0
    for f, offset, amp in zip(freqs, (0, min(split, length // 2)), (1.0, 0.7)):
        tt = t[: length - offset]
        env = (tt / tau) ** 2 * np.exp(-tt / tau)
        out[offset:] += amp * env * np.sin(2 * np.pi * f * tt + rng.uniform(0, 2 * np.pi))
    out *= sps.windows.tukey(length, 0.3)
    return out / max(np.max(np.abs(out)), 1e-12)


def _band(pitch: str, sampling_rate: int, widen: float = 1.0) -> tuple[float, float]:
    lo, hi = PITCH_BANDS[pitch]
    lo, hi = lo / widen, hi * widen
    hi = min(hi, 0.45 * sampling_rate)
    if hi <= lo * 1.2:
        raise ValueError(f"sampling_rate {sampling_rate} Hz is too low for a {pitch}-pitched murmur "
                         f"({PITCH_BANDS[pitch][0]:g}-{PITCH_BANDS[pitch][1]:g} Hz)")
    return lo, hi


@functools.lru_cache(maxsize=64)
def _bandpass(band: tuple[float, float], sampling_rate: int) -> np.ndarray:
    return sps.butter(4, band, btype="bandpass", fs=sampling_rate, output="sos")


def _bandpass_noise(n: int, sampling_rate: int, band: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    return sps.sosfiltfilt(_bandpass(band, sampling_rate), rng.standard_normal(n))


def _murmur_source(spec: MurmurSpec, n: int, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A continuous sound of the murmur's pitch and quality, peak ~1 (gated later)."""
    if spec.quality == "Blowing":
        src = _bandpass_noise(n, sampling_rate, _band(spec.pitch, sampling_rate), rng)
    elif spec.quality == "Harsh":
        src = _bandpass_noise(n, sampling_rate, _band(spec.pitch, sampling_rate, widen=1.5), rng)
        rough = _bandpass_noise(n, sampling_rate, (15.0, 60.0), rng)
        src *= np.clip(1.0 + 0.8 * rough / (rough.std() + 1e-12), 0.0, None)
    else:  # Musical: a fundamental in the band and two harmonics
        lo, hi = _band(spec.pitch, sampling_rate)
        f0 = math.sqrt(lo * hi) * rng.uniform(0.9, 1.1) if spec.pitch != "High" else lo * rng.uniform(1.2, 1.5)
        t = np.arange(n) / sampling_rate
        src = np.zeros(n)
        for h, amp in ((1, 1.0), (2, 0.5), (3, 0.25)):
            if h * f0 < 0.45 * sampling_rate:
                src += amp * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
        return src / 1.75
    return src / (3.0 * src.std() + 1e-12)  # noise: ~3 sigma at 1


def _shape(shape: str, u: np.ndarray) -> np.ndarray:
    if shape == "Crescendo":
        return u
    if shape == "Decrescendo":
        return 1.0 - u
    if shape == "Diamond":
        return 1.0 - np.abs(2.0 * u - 1.0)
    return np.ones_like(u)


def _murmur_envelope(spec: MurmurSpec, beats: np.ndarray, n: int, sampling_rate: int,
                     window: tuple[float, float] | None = None, exponent: float = 1.0,
                     beat_gains: np.ndarray | None = None) -> np.ndarray:
    """Gain over the whole recording: the shape inside the murmur window of every beat.
    ``window`` replaces ``spec.window``; ``exponent`` bends the shape (``g ** exponent``);
    ``beat_gains`` scales each beat (cycle-to-cycle loudness changes)."""
    env = np.zeros(n)
    if spec.kind == "systolic":
        a, b = beats[:, 1], beats[:, 2]
    else:
        a, b = beats[:, 3], beats[:, 4]
    w0, w1 = spec.window if window is None else window
    starts = np.round((a + w0 * (b - a)) * sampling_rate).astype(int)
    ends = np.round((a + w1 * (b - a)) * sampling_rate).astype(int)
    ramp = max(1, int(0.005 * sampling_rate))
    for k, (s, e) in enumerate(zip(starts, ends)):
        if e - s < 2:
            continue
        u = np.arange(e - s) / (e - s - 1)
        g = _shape(spec.shape, u) ** exponent
        r = min(ramp, (e - s) // 2)
        taper = np.ones(e - s)
        taper[:r] = np.sin(0.5 * np.pi * np.arange(r) / r) ** 2
        taper[e - s - r:] = taper[:r][::-1]
        lo, hi = max(s, 0), min(e, n)
        if lo < hi:
            env[lo:hi] = (g * taper)[lo - s: hi - s] * (1.0 if beat_gains is None else beat_gains[k])
    return env


VARIED_WINDOWS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "Early": ((0.0, 0.05), (0.3, 0.5)), "Mid": ((0.1, 0.3), (0.55, 0.8)),
    "Late": ((0.45, 0.65), (0.95, 1.0)), "Holo": ((0.0, 0.05), (0.95, 1.0)),
}
"""With ``variation``: the (start, end) ranges a murmur window of each timing is drawn from,
wider than :data:`TIMING_WINDOWS` and overlapping as murmurs heard in the clinic do (an ejection
murmur starts after S1 and stops before S2, but not at exact thirds)."""


def transplant_murmur(waveform: np.ndarray, sampling_rate: int, segments: Sequence, spec: MurmurSpec,
                      seed: int = 0, variation: bool = False) -> np.ndarray:
    """A real recording with a synthetic murmur added inside its own systoles (or diastoles).

    The "murmur transplant" of the long tail: ``segments`` (the recording's ``.tsv`` or a
    segmenter's states) give every complete cycle; the murmur of ``spec`` (timing window, shape,
    pitch band, quality) is laid into each cycle's systole (diastole), at ``spec.amplitude`` times
    the recording's median S1 peak. Rare classes (Crescendo, Mid- and Late-systolic, Musical,
    diastolic murmurs) can so be heard many times over real backgrounds. Cycles are found by
    :func:`murmurlm.signal.cycles.complete_cycles`; without one, the waveform comes back unchanged.

    ``variation``: draw the murmur from a class-consistent range instead of its one prototype,
    so that a model learns the class and not the generator: the window from
    :data:`VARIED_WINDOWS`, the shape bent by an exponent in [0.6, 1.6], the level x [0.7, 1.4] and
    x [0.8, 1.2] per cycle, and a Musical murmur's tone mixed with band noise at a tone-to-noise
    ratio of -3 to +9 dB (real musical murmurs are far less tonal than a pure tone:
    docs/characterization.md).

    >>> pcg = synth_pcg(6.0, 4000, heart_rate=75, seed=0)            # murmur-free
    >>> spec = MurmurSpec("systolic", "Mid-systolic", "Crescendo", "III/VI", "High", "Musical")
    >>> out = transplant_murmur(pcg.waveform, 4000, pcg.segments, spec, seed=1)
    >>> out.shape == pcg.waveform.shape, bool(np.abs(out - pcg.waveform).max() > 0)
    (True, True)
    >>> varied = transplant_murmur(pcg.waveform, 4000, pcg.segments, spec, seed=1, variation=True)
    >>> bool(np.abs(varied - out).max() > 0)
    True
    """
    from murmurlm.signal.cycles import complete_cycles

    wave = np.asarray(waveform, dtype=np.float64)
    segs = sorted(segments, key=lambda seg: seg.start)
    cycles = complete_cycles(segs)
    if not cycles:
        return wave.astype(np.float32)
    rows, s1_peaks = [], []
    for start, end in cycles:
        inside = [seg for seg in segs if seg.start >= start - 1e-6 and seg.end <= end + 1e-6 and seg.state in (1, 2, 3, 4)]
        by_state = {seg.state: seg for seg in inside}
        if len(by_state) < 4:
            continue
        s1, s2 = by_state[1], by_state[3]
        rows.append((s1.start, s1.end, s2.start, s2.end, end))
        a, b = int(s1.start * sampling_rate), max(int(s1.end * sampling_rate), int(s1.start * sampling_rate) + 1)
        s1_peaks.append(float(np.abs(wave[a:b]).max()) if b <= len(wave) else 0.0)
    if not rows:
        return wave.astype(np.float32)
    rng = np.random.default_rng(seed)
    beats = np.asarray(rows)
    level = spec.amplitude * float(np.median(s1_peaks) or np.abs(wave).max() or 1.0)
    if not variation:
        gain = _murmur_envelope(spec, beats, len(wave), sampling_rate)
        source = _murmur_source(spec, len(wave), sampling_rate, rng)
        return (wave + level * gain * source).astype(np.float32)
    (s0, s1_), (e0, e1) = VARIED_WINDOWS[spec.timing.split("-")[0].removesuffix("systolic").removesuffix("diastolic")]
    window = (rng.uniform(s0, s1_), rng.uniform(e0, e1))
    exponent = rng.uniform(0.6, 1.6) if spec.shape != "Plateau" else 1.0
    gain = _murmur_envelope(spec, beats, len(wave), sampling_rate, window, exponent,
                            beat_gains=rng.uniform(0.8, 1.2, len(beats)))
    source = _murmur_source(spec, len(wave), sampling_rate, rng)
    if spec.quality == "Musical":
        noise = _bandpass_noise(len(wave), sampling_rate, _band(spec.pitch, sampling_rate), rng)
        noise /= 3.0 * noise.std() + 1e-12
        tnr = 10.0 ** (rng.uniform(-3.0, 9.0) / 20.0)  # tone-to-noise amplitude ratio
        source = (tnr * source + noise) / (tnr + 1.0)
    return (wave + level * rng.uniform(0.7, 1.4) * gain * source).astype(np.float32)


def _segments(beats: np.ndarray, duration: float, unannotated: float) -> list[Segment]:
    rows: list[tuple[float, float, int]] = []
    for beat in beats:
        for k, state in enumerate((1, 2, 3, 4)):
            start, end = float(beat[k]), float(beat[k + 1])
            if end <= 0.0 or start >= duration:
                continue
            rows.append((max(start, 0.0), min(end, duration), state))
    if unannotated > 0.0:
        # a segment cut by an edge of the recording is never annotated, however small `unannotated`
        inner = [r for r in rows if 0.0 < r[0] and r[0] >= unannotated and r[1] < duration
                 and r[1] <= duration - unannotated]
        if not inner:
            return [Segment(0.0, round(duration, 6), 0)]
        out = []
        if inner[0][0] > 0.0:
            out.append((0.0, inner[0][0], 0))
        out += inner
        if inner[-1][1] < duration:
            out.append((inner[-1][1], duration, 0))
        rows = out
    return [Segment(round(s, 6), round(e, 6), st) for s, e, st in rows]


def synth_pcg(duration: float, sampling_rate: int, heart_rate: float = 80.0,
              murmurs: Sequence[MurmurSpec] = (), noise: float = 0.01,
              heart_rate_jitter: float = 0.03, unannotated: float = 0.0, seed: int | None = 0) -> SyntheticPCG:
    """Simulate a phonocardiogram with its S1/systole/S2/diastole segmentation.

    Parameters
    ----------
    duration : length in seconds (> 0).
    sampling_rate : Hz (required; CirCor is 4000). At least 1000 Hz.
    heart_rate : mean heart rate in beats per minute (30-220).
    murmurs : the murmurs to add (see :class:`MurmurSpec`); several may be combined.
    noise : standard deviation of additive white noise, in full-scale units (S1 peaks near 0.4).
    heart_rate_jitter : relative standard deviation of the cycle length from beat to beat.
    unannotated : seconds at each end labelled state 0 (unannotated), made noisier (3x the noise), as
        CirCor's annotators left the lead-in and lead-out of many recordings.
    seed : seed of the generator (None: fresh randomness).

    Returns
    -------
    SyntheticPCG
        float32 waveform (peak kept below 0.95), ``sampling_rate``, and the segments (states 1 S1,
        2 systole, 3 S2, 4 diastole, 0 unannotated) covering [0, duration]; the first and last may
        be cut by the recording's edges.

    Examples
    --------
    >>> pcg = synth_pcg(10.0, sampling_rate=4000, heart_rate=90, seed=0)
    >>> s1 = [s.start for s in pcg.segments if s.state == 1]
    >>> round(60 / float(np.median(np.diff(s1))))
    90
    """
    if not (isinstance(sampling_rate, (int, np.integer)) and sampling_rate >= 1000):
        raise ValueError(f"sampling_rate must be an integer >= 1000 Hz, got {sampling_rate!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be positive seconds, got {duration!r}")
    if not 30.0 <= heart_rate <= 220.0:
        raise ValueError(f"heart_rate must be within 30-220 bpm, got {heart_rate!r}")
    if not 0.0 <= heart_rate_jitter <= 0.2:
        raise ValueError(f"heart_rate_jitter must be within 0-0.2, got {heart_rate_jitter!r}")
    if not (math.isfinite(noise) and math.isfinite(unannotated)) or noise < 0 or unannotated < 0 \
            or 2 * unannotated >= duration:
        raise ValueError(f"noise must be >= 0 and unannotated within [0, duration/2), got {noise!r}, {unannotated!r}")
    murmurs = tuple(murmurs)
    for m in murmurs:
        if not isinstance(m, MurmurSpec):
            raise TypeError(f"murmurs must be MurmurSpec objects, got {type(m).__name__}")
    rng = np.random.default_rng(seed)
    n = int(round(duration * sampling_rate))
    beats = _beat_times(n / sampling_rate, heart_rate, heart_rate_jitter, rng)

    # heart sounds, one template per beat, added at their onsets (cut at the recording's edges)
    clean = np.zeros(n)
    for beat in beats:
        for start, end, freqs, split in (
            (beat[0], beat[1], rng.uniform([35, 50], [55, 90]), 0.015),
            (beat[2], beat[3], rng.uniform([55, 70], [80, 110]), 0.025),
        ):
            s, e = int(round(start * sampling_rate)), int(round(end * sampling_rate))
            sound = _heart_sound(e - s, sampling_rate, freqs, int(split * sampling_rate * rng.uniform(0.6, 1.2)), rng)
            sound *= rng.uniform(0.85, 1.0) if split < 0.02 else rng.uniform(0.6, 0.8)  # S2 softer than S1
            lo, hi = max(s, 0), min(e, n)
            if lo < hi:
                clean[lo:hi] += sound[lo - s: hi - s]

    for spec in murmurs:
        source = _murmur_source(spec, n, sampling_rate, rng)
        clean += spec.amplitude * _murmur_envelope(spec, beats, n, sampling_rate) * source

    wave = GAIN * clean
    noise_std = np.full(n, float(noise))
    if unannotated > 0:
        edge = int(round(unannotated * sampling_rate))
        noise_std[:edge] *= 3.0
        noise_std[n - edge:] *= 3.0
    wave += noise_std * rng.standard_normal(n)
    peak = float(np.max(np.abs(wave))) if n else 0.0
    if peak > 0.95:
        wave *= 0.95 / peak
    return SyntheticPCG(wave.astype(np.float32), int(sampling_rate), _segments(beats, n / sampling_rate, unannotated))


def labels_for(murmurs: Sequence[MurmurSpec]) -> dict[str, str]:
    """The 11 feature labels of a patient with these murmurs (at most one systolic, one diastolic).

    Examples
    --------
    >>> labels_for([])["Murmur"], labels_for([])["Systolic murmur grading"]
    ('Absent', 'nan')
    >>> labels_for([MurmurSpec(grade="III/VI")])["Systolic murmur grading"]
    'III/VI'
    """
    out = {f.name: L.NO_MURMUR for f in L.FEATURES}
    out[L.MURMUR.name] = "Present" if murmurs else "Absent"
    kinds = [m.kind for m in murmurs]
    for kind in ("systolic", "diastolic"):
        if kinds.count(kind) > 1:
            raise ValueError(f"labels_for: a patient has at most one {kind} murmur, got {kinds.count(kind)}")
    for m in murmurs:
        out.update(m.labels())
    return out


# --------------------------------------------------------------------------------------------
# a synthetic CirCor folder


def random_murmurs(rng: np.random.Generator, diastolic_probability: float = 0.25) -> list[MurmurSpec]:
    """A random systolic murmur, plus a diastolic one with ``diastolic_probability``.

    Examples
    --------
    >>> specs = random_murmurs(np.random.default_rng(0), diastolic_probability=1.0)
    >>> [m.kind for m in specs]
    ['systolic', 'diastolic']
    """
    def pick(feat: L.Feature) -> str:
        return str(rng.choice(feat.present_classes))

    out = [MurmurSpec("systolic", *(pick(f) for f in L.SYSTOLIC))]
    if rng.random() < diastolic_probability:
        out.append(MurmurSpec("diastolic", *(pick(f) for f in L.DIASTOLIC)))
    return out


def _format_time(x: float) -> str:
    """CirCor's .tsv number format: up to 6 decimals, no trailing zeros ('0', '1.14675')."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _recording_names(pid: str, locations: Sequence[str]) -> list[tuple[str, str]]:
    counts = {loc: locations.count(loc) for loc in locations}
    seen: dict[str, int] = {}
    names = []
    for loc in locations:
        seen[loc] = seen.get(loc, 0) + 1
        names.append((loc, f"{pid}_{loc}" if counts[loc] == 1 else f"{pid}_{loc}_{seen[loc]}"))
    return names


def write_synthetic_circor(root: str | Path, num_patients: int = 12, seed: int = 0,
                           locations: Sequence[str] = ("AV", "PV", "TV", "MV"),
                           duration: tuple[float, float] = (8.0, 12.0), sampling_rate: int = 4000,
                           murmur_fraction: float = 0.5,
                           specs: Sequence[Sequence[MurmurSpec]] | None = None) -> list[str]:
    """Write a synthetic dataset in CirCor 1.0.3's official layout under ``root``.

    Writes ``root/training_data.csv`` and, in ``root/training_data/``, per patient ``<id>.txt`` and
    per recording ``<id>_<loc>.wav`` (16-bit PCM), ``.hea`` (WFDB, CRLF) and ``.tsv``; nothing else.
    A location repeated in ``locations`` gives ``<id>_<loc>_1``, ``<id>_<loc>_2`` as in CirCor.

    Parameters
    ----------
    root : output folder (created; existing files of the same names are overwritten).
    num_patients : number of patients.
    seed : everything (ids, labels, audio) is a function of the arguments and this seed.
    locations : recording locations of every patient (from ``labels.LOCATIONS``).
    duration : (min, max) recording length in seconds, drawn per recording.
    sampling_rate : Hz.
    murmur_fraction : share of patients with murmurs ("Present") when ``specs`` is None.
    specs : murmurs per patient (``len(specs) == num_patients``; an empty list: no murmur),
        in place of random ones.

    With ``num_patients >= 6``, two patients without murmur get Murmur "Unknown" and noisy
    recordings. A murmur sounds at a random non-empty subset of the recording locations (the
    ``Murmur locations``), loudest at the ``Most audible location`` and one grade (6 dB) softer elsewhere.

    Returns
    -------
    list of str
        The patient ids, in the order of the rows of ``training_data.csv``.

    Examples
    --------
    >>> import tempfile
    >>> from murmurlm.data.circor import load_circor
    >>> root = tempfile.mkdtemp()
    >>> ids = write_synthetic_circor(root, num_patients=3, seed=0, duration=(3.0, 4.0))
    >>> [len(p.recordings) for p in load_circor(root).patients]
    [4, 4, 4]
    """
    root = Path(root)
    locations = tuple(locations)
    if num_patients < 1:
        raise ValueError(f"num_patients must be >= 1, got {num_patients}")
    if not locations:
        raise ValueError("locations must not be empty")
    for loc in locations:
        if loc not in L.LOCATIONS:
            raise L.LabelError(f"unknown location {loc!r}; valid: {', '.join(L.LOCATIONS)}")
    lo_d, hi_d = float(duration[0]), float(duration[1])
    if not 0.0 < lo_d <= hi_d:
        raise ValueError(f"duration must be (min, max) with 0 < min <= max, got {duration!r}")
    if not 0.0 <= murmur_fraction <= 1.0:
        raise ValueError(f"murmur_fraction must be within [0, 1], got {murmur_fraction!r}")
    if not (isinstance(sampling_rate, (int, np.integer)) and sampling_rate >= 1000):
        raise ValueError(f"sampling_rate must be an integer >= 1000 Hz, got {sampling_rate!r}")
    if specs is not None and len(specs) != num_patients:
        raise ValueError(f"specs has {len(specs)} entries, expected one per patient ({num_patients})")

    rng = np.random.default_rng(seed)
    ids = [str(i) for i in rng.choice(np.arange(10000, 90000), size=num_patients, replace=False)]
    if specs is None:
        with_murmur = set(rng.permutation(num_patients)[: int(round(murmur_fraction * num_patients))].tolist())
        murmurs = [random_murmurs(rng) if i in with_murmur else [] for i in range(num_patients)]
    else:
        murmurs = [list(s) for s in specs]
    silent = [i for i in range(num_patients) if not murmurs[i]]
    unknown = set(rng.permutation(silent)[:2].tolist()) if num_patients >= 6 else set()

    folder = root / "training_data"
    folder.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    unique_locs = sorted(set(locations))
    for i, pid in enumerate(ids):
        pm = murmurs[i]
        labels = labels_for(pm)
        if i in unknown:
            labels[L.MURMUR.name] = "Unknown"
        if pm:
            k = int(rng.integers(1, len(unique_locs) + 1))
            murmur_locs = sorted(rng.choice(unique_locs, size=k, replace=False).tolist())
            loudest = str(rng.choice(murmur_locs))
        else:
            murmur_locs, loudest = [], L.NO_MURMUR
        age = str(rng.choice(list(_AGE_HEART_RATE), p=[0.03, 0.2, 0.6, 0.12, 0.05]))
        sex = "Female" if age == "nan" else str(rng.choice(["Female", "Male"]))
        (h_mu, h_sd), (w_mu, w_sd) = _AGE_BODY[age]
        height = "nan" if rng.random() < 0.1 else f"{max(40.0, rng.normal(h_mu, h_sd)):.1f}"
        weight = "nan" if rng.random() < 0.1 else f"{max(2.0, rng.normal(w_mu, w_sd)):.1f}"
        outcome = "Abnormal" if rng.random() < (0.85 if pm or i in unknown else 0.4) else "Normal"
        row = {
            "Patient ID": pid, "Recording locations:": "+".join(locations), "Age": age, "Sex": sex,
            "Height": height, "Weight": weight, "Pregnancy status": str(age == "nan"),
            **labels, "Murmur locations": "+".join(murmur_locs) or L.NO_MURMUR,
            "Most audible location": loudest, "Outcome": outcome,
            "Campaign": str(rng.choice(["CC2014", "CC2015"])), "Additional ID": L.NO_MURMUR,
        }
        writer.writerow([row[c] for c in CSV_COLUMNS])

        names = _recording_names(pid, locations)
        txt = [f"{pid} {len(names)} {sampling_rate}"]
        txt += [f"{loc} {name}.hea {name}.wav {name}.tsv" for loc, name in names]
        txt += [f"#{c}: {row[c]}" for c in CSV_COLUMNS[2:]]
        (folder / f"{pid}.txt").write_text("\n".join(txt) + "\n")

        heart_rate = _AGE_HEART_RATE[age] * rng.uniform(0.85, 1.15)
        for loc, name in names:
            if loc not in murmur_locs:
                sounding: list[MurmurSpec] = []
            elif loc == loudest:
                sounding = pm
            else:
                sounding = [_softer(m) for m in pm]
            seconds = float(rng.uniform(lo_d, hi_d))
            pcg = synth_pcg(
                seconds, sampling_rate, heart_rate=heart_rate, murmurs=sounding,
                noise=float(rng.uniform(0.04, 0.08)) if i in unknown else float(rng.uniform(0.005, 0.02)),
                unannotated=min(float(rng.uniform(0.2, 1.0)), seconds / 4) if rng.random() < 0.7 else 0.0,
                seed=int(rng.integers(2**31)),
            )
            _write_recording(folder, name, loc, pcg)
    (root / "training_data.csv").write_text(table.getvalue())
    log.info("wrote %d synthetic patients (%d recordings each) to %s", num_patients, len(locations), root)
    return ids


def _softer(spec: MurmurSpec) -> MurmurSpec:
    """The same murmur one grade softer (how it sounds away from the most audible location)."""
    feat = spec._features()["grade"]
    index = feat.present_classes.index(spec.grade)
    grade = feat.present_classes[max(index - 1, 0)]
    return MurmurSpec(**{**{f.name: getattr(spec, f.name) for f in fields(spec)}, "grade": grade})


def _write_recording(folder: Path, name: str, location: str, pcg: SyntheticPCG) -> None:
    sf.write(str(folder / f"{name}.wav"), pcg.waveform, pcg.sampling_rate, subtype="PCM_16", format="WAV")
    header = (f"{name} 1 {pcg.sampling_rate} {len(pcg.waveform)}\r\n"
              f"{name}.wav 16+44 1 16 0 0 0 0 {location}\r\n")
    (folder / f"{name}.hea").write_bytes(header.encode("ascii"))
    tsv = "".join(f"{_format_time(s.start)}\t{_format_time(s.end)}\t{s.state}\n" for s in pcg.segments)
    (folder / f"{name}.tsv").write_text(tsv)
