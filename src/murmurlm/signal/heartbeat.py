"""The average heartbeat: a phase-normalised time-frequency image of a recording's cycles.

:func:`pcg_heartbeat` turns a recording and its segmentation (CirCor ``.tsv`` or
:func:`~murmurlm.signal.segment.pcg_segment`) into one :class:`Heartbeat`:

1. band-pass 25-800 Hz (:func:`~murmurlm.signal.filter.pcg_filter`), then a power spectrogram
   (a Hann window of 32 ms, hop 8 ms, zero-padded to 2x the window: ``scipy.signal.stft``'s, written
   out to keep only the bins below 800 Hz);
2. the spectrogram summed into ``n_bands`` (default 32) **log-spaced** bands between 25 and 800 Hz.
   Log spacing (about 1/6 octave per band) because the pitch classes are octave-sized (Low 25-150,
   Medium 100-300, High 200-600 Hz) and harmonics sit at ratios, not offsets. Each FFT bin enters a
   band in proportion to the overlap of its width with the band (the lowest bands, narrower than the
   32 ms window resolves, share bins: they are smooth interpolations, not extra detail). A band holds
   **power** (mean square, full scale²): the bands of a frame add up to the power of the signal
   between 25 and 800 Hz;
3. every complete cycle (S1, systole, S2, diastole in a row: :func:`murmurlm.signal.cycles.cycle_runs`
   under a :class:`~murmurlm.signal.cycles.CycleRule`, :data:`~murmurlm.signal.cycles.CONTIGUOUS` by
   default) is resampled **phase by phase** to a fixed number of bins (default 8, 24, 8, 32): bin
   ``j`` of a phase of ``n`` bins averages the spectrogram over ``[j/n, (j+1)/n)`` of that phase's
   time (an exact average of the frames it overlaps, so long diastoles are not aliased). Cycles of
   different lengths, and phases of different proportions, line up bin for bin;
4. implausible cycles are rejected, each under its first failing reason (:data:`REASONS`, limits in
   :class:`CycleLimits`), and the kept cycles combined robustly: the median image and the
   inter-quartile range of every bin over cycles.

With fewer than two kept cycles (silence, noise without segments, a very short file, no segments)
nothing is raised: the :class:`Heartbeat` is marked ``reliable=False`` with a ``fallback`` reason,
its image is the single kept cycle or, with none, the recording's mean band spectrum repeated over
all bins, so that :func:`murmurlm.signal.descriptors.pcg_descriptors` always has something finite to
describe. A waveform with NaN or infinite samples raises :class:`NonFiniteSignalError`.

About 10 ms for a 20 s recording at 4 kHz on a loaded 2-core machine (filter and STFT dominate;
the cycles are resampled in one vectorised step).

Examples
--------
>>> from murmurlm.signal.synth import MurmurSpec, synth_pcg
>>> pcg = synth_pcg(10.0, 4000, heart_rate=80, murmurs=[MurmurSpec(timing="Holosystolic")], seed=0)
>>> hb = pcg_heartbeat(pcg.waveform, 4000, pcg.segments)
>>> hb.reliable, hb.image.shape, hb.phase_edges
(True, (32, 72), (0, 8, 32, 40, 72))
>>> len(hb.kept) == hb.cycles.shape[0] >= 10, hb.phase("systole").shape
(True, (32, 24))
>>> silent = pcg_heartbeat(np.zeros(2000, np.float32), 4000, [])
>>> silent.reliable, silent.fallback
(False, 'no segments')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal as sps

from murmurlm.errors import MurmurlmError
from murmurlm.signal.cycles import CONTIGUOUS, FULL_CYCLE, S1, CycleRule, cycle_runs
from murmurlm.signal.filter import pcg_filter

log = logging.getLogger(__name__)

PHASES = ("S1", "systole", "S2", "diastole")
"""The phases of a cycle, in order (CirCor states 1-4)."""

DEFAULT_BINS = (8, 24, 8, 32)
"""Bins per phase: S1, systole, S2, diastole (~12 ms each at 80 bpm)."""

REASONS = ("outside_recording", "cycle_length", "short_phase", "phase_ratio", "energy", "silent")
"""Why a complete cycle is rejected, checked in this order (see :class:`CycleLimits`)."""

SILENT_POWER = 1e-9
"""Mean power (full scale², 25-800 Hz) below which a cycle is silent (RMS ~3e-5, -90 dBFS)."""


class NonFiniteSignalError(MurmurlmError, ValueError):
    """A waveform holds NaN or infinite samples (a decoding or upstream processing fault)."""


@dataclass(frozen=True)
class CycleLimits:
    """What a plausible cycle is; a complete cycle failing one of these is rejected.

    Attributes
    ----------
    min_cycle_s, max_cycle_s : float
        Cycle length in seconds (``"cycle_length"``): 0.25-2.0 s is 30-240 bpm.
    min_phase_frames : float
        Shortest phase, in STFT hops (``"short_phase"``): a phase of 2 hops (16 ms) or fewer
        frames has no time resolution left to resample.
    max_systole_ratio : float
        Systole longer than this many diastoles (``"phase_ratio"``): even at 200 bpm diastole is
        over half of systole; beyond 2x the annotation or segmentation slipped.
    energy_factor : float
        A cycle whose mean power is above ``energy_factor`` times, or below its inverse times, the
        median of the plausible cycles (``"energy"``): clipping, bumps, friction. Applied from 3
        plausible cycles (with two, neither can be told the outlier).
    """

    min_cycle_s: float = 0.25
    max_cycle_s: float = 2.0
    min_phase_frames: float = 2.0
    max_systole_ratio: float = 2.0
    energy_factor: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.min_cycle_s < self.max_cycle_s:
            raise ValueError(f"CycleLimits: need 0 < min_cycle_s < max_cycle_s, got "
                             f"{self.min_cycle_s!r}, {self.max_cycle_s!r}")
        if not self.min_phase_frames >= 0:
            raise ValueError(f"CycleLimits: min_phase_frames must be >= 0, got {self.min_phase_frames!r}")
        if not self.max_systole_ratio > 0:
            raise ValueError(f"CycleLimits: max_systole_ratio must be > 0, got {self.max_systole_ratio!r}")
        if not self.energy_factor > 1:
            raise ValueError(f"CycleLimits: energy_factor must be > 1, got {self.energy_factor!r}")


@dataclass
class Heartbeat:
    """The average heartbeat of a recording (see :func:`pcg_heartbeat`).

    Attributes
    ----------
    image : np.ndarray
        ``(n_freq, n_bins)`` float32: median band power (full scale²) over the kept cycles.
    spread : np.ndarray
        ``(n_freq, n_bins)`` float32: inter-quartile range of the band power over the kept cycles
        (zeros with fewer than two).
    cycles : np.ndarray
        ``(n_kept, n_freq, n_bins)`` float32: the image of every kept cycle.
    frequencies : np.ndarray
        ``(n_freq,)`` band centres in Hz (geometric means of ``band_edges``).
    band_edges : np.ndarray
        ``(n_freq + 1,)`` band edges in Hz.
    bins : tuple of int
        Bins of S1, systole, S2, diastole.
    kept : np.ndarray
        ``(n_kept, 2)`` start and end in seconds of the kept cycles.
    boundaries : np.ndarray
        ``(n_kept, 5)`` phase boundaries in seconds of the kept cycles: S1 onset, systole, S2,
        diastole onsets, cycle end.
    rejected : dict
        Reason (each of :data:`REASONS`) -> number of complete cycles rejected for it.
    incomplete : int
        S1 segments that start no complete cycle (a state missing, a hole, cut by the recording's edge).
    reliable : bool
        At least two kept cycles.
    fallback : str or None
        Why the image is not a median of cycles (None when it is).
    sampling_rate, hop_seconds : float
        The recording's rate and the STFT hop.
    """

    image: np.ndarray
    spread: np.ndarray
    cycles: np.ndarray
    frequencies: np.ndarray
    band_edges: np.ndarray
    bins: tuple[int, int, int, int]
    kept: np.ndarray
    boundaries: np.ndarray
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    incomplete: int = 0
    reliable: bool = False
    fallback: str | None = None
    sampling_rate: float = 4000.0
    hop_seconds: float = 0.008

    @property
    def phase_edges(self) -> tuple[int, int, int, int, int]:
        """Bin indices where S1, systole, S2, diastole start, and the end (``n_bins``)."""
        edges = np.concatenate([[0], np.cumsum(self.bins)])
        return tuple(int(e) for e in edges)  # type: ignore[return-value]

    @property
    def n_kept(self) -> int:
        return int(self.cycles.shape[0])

    @property
    def found(self) -> int:
        """Complete cycles found in the segmentation (kept plus rejected)."""
        return self.n_kept + int(sum(self.rejected.values()))

    @property
    def heart_rate(self) -> float | None:
        """Beats per minute from the median kept cycle length (None without kept cycles)."""
        if not len(self.kept):
            return None
        return 60.0 / float(np.median(self.kept[:, 1] - self.kept[:, 0]))

    def phase_slice(self, name: str) -> slice:
        """The bins of phase ``name`` (one of :data:`PHASES`)."""
        if name not in PHASES:
            raise ValueError(f"Heartbeat.phase: unknown phase {name!r}; valid: {', '.join(PHASES)}")
        k = PHASES.index(name)
        edges = self.phase_edges
        return slice(edges[k], edges[k + 1])

    def phase(self, name: str, of: str = "image") -> np.ndarray:
        """The bins of phase ``name`` of ``image``, ``spread`` (``(n_freq, n)``) or ``cycles``
        (``(n_kept, n_freq, n)``).

        >>> from murmurlm.signal.synth import synth_pcg
        >>> pcg = synth_pcg(6.0, 4000, seed=0)
        >>> pcg_heartbeat(pcg.waveform, 4000, pcg.segments).phase("S2", of="cycles").shape[1:]
        (32, 8)
        """
        if of not in ("image", "spread", "cycles"):
            raise ValueError(f"Heartbeat.phase: of must be 'image', 'spread' or 'cycles', got {of!r}")
        return getattr(self, of)[..., self.phase_slice(name)]


# ---------------------------------------------------------------------------------------------
# spectrogram


def band_power(power: np.ndarray, fft_freqs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Sum ``power`` (``(..., n_fft_bins)``, bins at ``fft_freqs``, evenly spaced) into the bands
    between ``edges``; ``(..., n_bands)``.

    Each bin counts as a constant density over its width (centre ± half the spacing) and enters a
    band in proportion to the part of that width inside the band: the difference of the cumulative
    power at the band edges, interpolated linearly (no matrix product, so no BLAS threads).

    >>> p = np.ones(10)                                 # bins at 0, 10, ..., 90 Hz
    >>> band_power(p, np.arange(0.0, 100.0, 10.0), np.array([20.0, 40.0, 45.0])).round(2).tolist()
    [2.0, 0.5]
    """
    df = float(fft_freqs[1] - fft_freqs[0])
    cumulative = np.zeros(power.shape[:-1] + (power.shape[-1] + 1,), dtype=power.dtype)
    np.cumsum(power, axis=-1, out=cumulative[..., 1:])
    pos = np.clip((np.asarray(edges, dtype=np.float64) - fft_freqs[0]) / df + 0.5, 0.0, power.shape[-1])
    idx = np.minimum(pos.astype(int), power.shape[-1] - 1)
    frac = (pos - idx).astype(power.dtype)
    at = cumulative[..., idx] + frac * (cumulative[..., idx + 1] - cumulative[..., idx])
    return np.diff(at, axis=-1)


def _band_power(x: np.ndarray, sampling_rate: float, edges: np.ndarray, hop: int,
                window: int) -> np.ndarray:
    """``(n_bands, n_frames)`` band power (full scale²), frame ``k`` centred on sample ``k * hop``.

    The STFT of ``scipy.signal.stft(..., window="hann", boundary="zeros", scaling="psd")``, written
    out (frames as a strided view, one real FFT) to keep only the bins up to ``edges[-1]``.
    """
    nfft = 1 << int(np.ceil(np.log2(2 * window)))
    xp = np.pad(x.astype(np.float32, copy=False), (window // 2, window // 2 + hop))
    frames = sliding_window_view(xp, window)[::hop][: len(x) // hop + 1]
    w = sps.get_window("hann", window).astype(np.float32)
    df = sampling_rate / nfft
    first = max(0, int(np.floor(edges[0] / df - 0.5)))
    last = min(nfft // 2, int(np.ceil(edges[-1] / df + 0.5)))
    z = scipy.fft.rfft(frames * w, n=nfft, axis=1)[:, first: last + 1]
    # one-sided (x2), Parseval over nfft bins: the bands add up to the (windowed) mean square
    scale = np.float32(2.0 / (nfft * float(np.sum(w.astype(np.float64) ** 2))))
    psd = (z.real ** 2 + z.imag ** 2) * scale
    bands = band_power(psd, np.arange(first, last + 1) * df, edges)
    return bands.T.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# cycles


def _cycle_boundaries(segments: Sequence, rule: CycleRule) -> tuple[np.ndarray, int]:
    """``(n, 5)`` phase boundaries in seconds of the complete cycles, and the number of S1
    segments that start none. A boundary between two phases is the midpoint of the hole (or overlap)
    between their segments."""
    segs = sorted((s for s in segments if not rule.skip_empty or s.end > s.start), key=lambda s: s.start)
    cycles = [c for run in cycle_runs(segs, rule) for c in run]
    starts: dict[float, list[int]] = {}
    for i, s in enumerate(segs):
        if int(s.state) == S1:
            starts.setdefault(float(s.start), []).append(i)
    rows = []
    for a, b in cycles:
        for i in starts.get(a, []):
            w = segs[i:i + 4]
            if len(w) == 4 and tuple(int(s.state) for s in w) == FULL_CYCLE and float(w[3].end) == b:
                rows.append([float(w[0].start), *((float(w[k - 1].end) + float(w[k].start)) / 2 for k in (1, 2, 3)),
                             float(w[3].end)])
                break
    n_s1 = sum(len(v) for v in starts.values())
    out = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return out, n_s1 - len(out)


def _phase_grid(bins: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """For the ``sum(bins) + 1`` bin edges: the phase each lies in and the fraction of it."""
    phase = np.concatenate([np.full(n, k) for k, n in enumerate(bins)] + [[3]]).astype(int)
    frac = np.concatenate([np.arange(n) / n for n in bins] + [[1.0]])
    return phase, frac


def _resample(power: np.ndarray, hop_s: float, edges_s: np.ndarray) -> np.ndarray:
    """Mean of the (piecewise constant) band power over each interval of ``edges_s``.

    ``power`` is ``(n_freq, n_frames)``, frame ``k`` covering ``[(k - 0.5) hop, (k + 0.5) hop)``;
    ``edges_s`` is ``(n_cycles, n_bins + 1)`` seconds. Returns ``(n_cycles, n_freq, n_bins)``.
    """
    n_freq, n_frames = power.shape
    integral = np.zeros((n_freq, n_frames + 1))
    np.cumsum(power * hop_s, axis=1, out=integral[:, 1:])
    pos = np.clip(edges_s / hop_s + 0.5, 0.0, float(n_frames))
    idx = np.minimum(pos.astype(int), n_frames - 1)
    frac = pos - idx
    at = integral[:, idx] + frac * (integral[:, idx + 1] - integral[:, idx])   # (n_freq, n_cycles, n_bins + 1)
    width = np.maximum(np.diff(edges_s, axis=1), 1e-12)
    return (np.diff(at, axis=2) / width).transpose(1, 0, 2)


def _check(waveform: np.ndarray, sampling_rate: float, bins: Sequence[int], band: Sequence[float],
           n_bands: int, hop_seconds: float, window_seconds: float) -> tuple[np.ndarray, tuple[float, float]]:
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"pcg_heartbeat: expected a 1-D waveform, got shape {x.shape}")
    if not (np.isfinite(sampling_rate) and sampling_rate > 0):
        raise ValueError(f"pcg_heartbeat: sampling_rate must be positive Hz, got {sampling_rate!r}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"pcg_heartbeat: expected real samples, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise NonFiniteSignalError(f"pcg_heartbeat: the waveform has {bad} NaN or infinite sample(s) of {len(x)}; "
                                   "check the audio decoding or the step before")
    if len(bins) != 4 or any(int(b) != b or b < 1 for b in bins):
        raise ValueError(f"pcg_heartbeat: bins must be 4 positive integers (S1, systole, S2, diastole), got {bins!r}")
    if not (isinstance(n_bands, (int, np.integer)) and n_bands >= 2):
        raise ValueError(f"pcg_heartbeat: n_bands must be an integer >= 2, got {n_bands!r}")
    if not (0 < hop_seconds <= window_seconds):
        raise ValueError(f"pcg_heartbeat: need 0 < hop_seconds <= window_seconds, got {hop_seconds!r}, "
                         f"{window_seconds!r}")
    lo, hi = float(band[0]), min(float(band[1]), 0.49 * sampling_rate)
    if not 0 < lo < hi:
        raise ValueError(f"pcg_heartbeat: band must be (low, high) Hz with 0 < low < high < Nyquist "
                         f"({sampling_rate / 2:g} Hz), got {tuple(band)!r}")
    return x.astype(np.float32, copy=False), (lo, hi)


def pcg_heartbeat(waveform: np.ndarray, sampling_rate: float, segments: Iterable | None, *,
                  bins: Sequence[int] = DEFAULT_BINS, band: Sequence[float] = (25.0, 800.0), n_bands: int = 32,
                  hop_seconds: float = 0.008, window_seconds: float = 0.032, rule: CycleRule = CONTIGUOUS,
                  limits: CycleLimits = CycleLimits()) -> Heartbeat:
    """The average heartbeat of a recording: median phase-normalised band spectrogram of its cycles.

    Parameters
    ----------
    waveform : np.ndarray
        1-D signal (any real dtype; computed in float32).
    sampling_rate : float
        Its rate in Hz (required: CirCor is 4 kHz).
    segments : iterable of objects with ``start``, ``end`` (s) and ``state`` (0-4), or None
        The segmentation: ``Recording.load_segments()`` or ``pcg_segment(...).segments``.
    bins : 4 ints
        Bins of S1, systole, S2 and diastole.
    band : (low, high)
        Hz; band-pass and band range (``high`` capped just under Nyquist).
    n_bands : int
        Log-spaced bands between ``low`` and ``high``.
    hop_seconds, window_seconds : float
        STFT hop and Hann window length.
    rule : CycleRule
        What counts as a complete cycle (:mod:`murmurlm.signal.cycles`).
    limits : CycleLimits
        What counts as a plausible one.

    Returns
    -------
    Heartbeat
        ``reliable`` when at least two cycles were kept; otherwise a fallback (see the module).

    Raises
    ------
    NonFiniteSignalError
        NaN or infinite samples. ``ValueError`` for the other bad arguments.

    Examples
    --------
    >>> from murmurlm.data.circor import Segment
    >>> from murmurlm.signal.synth import synth_pcg
    >>> pcg = synth_pcg(8.0, 4000, heart_rate=75, seed=1)
    >>> long = [Segment(0.0, 0.5, 1), Segment(0.5, 1.5, 2), Segment(1.5, 2.0, 3), Segment(2.0, 3.5, 4)]
    >>> hb = pcg_heartbeat(pcg.waveform, 4000, long + [s for s in pcg.segments if s.start >= 3.5])
    >>> hb.rejected["cycle_length"], hb.reliable
    (1, True)
    >>> pcg_heartbeat(np.array([0.0, np.nan]), 4000, [])
    Traceback (most recent call last):
    ...
    murmurlm.signal.heartbeat.NonFiniteSignalError: pcg_heartbeat: the waveform has 1 NaN or infinite sample(s) of 2; ...
    """
    bins = tuple(int(b) for b in bins)
    x, (lo, hi) = _check(waveform, sampling_rate, bins, band, n_bands, hop_seconds, window_seconds)
    sr = float(sampling_rate)
    hop = max(1, int(round(hop_seconds * sr)))
    window = max(hop, int(round(window_seconds * sr)))
    hop_s = hop / sr
    duration = len(x) / sr
    edges = np.geomspace(lo, hi, n_bands + 1)
    freqs = np.sqrt(edges[:-1] * edges[1:])
    n_bins = sum(bins)

    if len(x) > 16:
        x = pcg_filter(x, sr, low=lo, high=hi)
    power = _band_power(x, sr, edges, hop, window)

    segments = [] if segments is None else list(segments)
    bounds, incomplete = _cycle_boundaries(segments, rule)
    rejected = dict.fromkeys(REASONS, 0)
    length = bounds[:, 4] - bounds[:, 0]
    phases = np.diff(bounds, axis=1)
    checks = [
        ("outside_recording", (bounds[:, 0] < -1e-3) | (bounds[:, 4] > duration + 1e-3)),
        ("cycle_length", (length < limits.min_cycle_s) | (length > limits.max_cycle_s)),
        ("short_phase", np.any(phases < limits.min_phase_frames * hop_s, axis=1)),
        ("phase_ratio", phases[:, 1] > limits.max_systole_ratio * phases[:, 3]),
    ]
    ok = np.ones(len(bounds), bool)
    for reason, bad in checks:
        rejected[reason] = int(np.count_nonzero(ok & bad))
        ok &= ~bad
    bounds = bounds[ok]

    phase, frac = _phase_grid(bins)
    edges_s = bounds[:, phase] + frac * (bounds[:, phase + 1] - bounds[:, phase])
    images = _resample(power, hop_s, edges_s) if len(bounds) else np.zeros((0, n_bands, n_bins))
    energy = images.sum(axis=1).mean(axis=1)   # mean power over the cycle, 25-800 Hz
    if len(energy):
        reference = float(np.median(energy))
        if reference < SILENT_POWER:
            bad = np.ones(len(energy), bool)
            rejected["silent"] = len(energy)
        elif len(energy) >= 3:
            bad = (energy > limits.energy_factor * reference) | (energy < reference / limits.energy_factor)
            rejected["energy"] = int(np.count_nonzero(bad))
        else:
            bad = np.zeros(len(energy), bool)
        images, bounds = images[~bad], bounds[~bad]

    images = images.astype(np.float32)
    n_kept = len(images)
    fallback = None
    if n_kept >= 2:
        q25, median, q75 = np.percentile(images, [25, 50, 75], axis=0)
        image, spread = median.astype(np.float32), (q75 - q25).astype(np.float32)
    else:
        spread = np.zeros((n_bands, n_bins), np.float32)
        if n_kept == 1:
            image = images[0].copy()
            fallback = "only 1 usable cycle"
        else:
            image = np.repeat(power.mean(axis=1, keepdims=True), n_bins, axis=1).astype(np.float32)
            found = len(ok)
            fallback = ("no segments" if not segments else "no complete cycle" if found == 0
                        else f"all {found} complete cycle(s) rejected")
        log.debug("pcg_heartbeat: unreliable (%s); rejected %s", fallback, rejected)
    return Heartbeat(image=image, spread=spread, cycles=images, frequencies=freqs, band_edges=edges, bins=bins,
                     kept=bounds[:, [0, 4]].copy(), boundaries=bounds, rejected=rejected, incomplete=int(incomplete),
                     reliable=n_kept >= 2, fallback=fallback, sampling_rate=sr, hop_seconds=hop_s)
