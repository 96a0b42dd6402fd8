"""Springer's envelope features of a phonocardiogram, at a fixed frame rate (50 Hz by default).

Springer, Tarassenko and Clifford (IEEE TBME 63(4), 2016, "Logistic regression-HSMM-based heart sound
segmentation") describe each 20 ms frame of a PCG by four envelopes of the 25-400 Hz band-passed,
spike-removed signal at 1 kHz:

1. the homomorphic envelope (``exp`` of the low-passed log of the Hilbert magnitude),
2. the Hilbert envelope,
3. the power spectral density in 40-60 Hz (spectrogram, 50 ms windows),
4. the wavelet envelope (magnitude of the level-3 detail of a Daubechies-7 decomposition).

Each is downsampled to the frame rate and standardised. :func:`spike_removal` is Schmidt et al.'s
(Physiol. Meas. 31, 2010) removal of friction spikes, which Springer applies first.

Examples
--------
>>> import numpy as np
>>> fs = 4000
>>> x = np.random.default_rng(0).standard_normal(3 * fs).astype("float32")
>>> feats = springer_features(x, fs)
>>> feats.shape                      # 3 s at 50 frames per second, 4 envelopes
(150, 4)
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pywt
from scipy import signal as sps

from murmurlm.signal.filter import pcg_filter, pcg_resample

log = logging.getLogger(__name__)

FEATURE_NAMES = ("homomorphic", "hilbert", "psd", "wavelet")
WORK_RATE = 1000
"""Sampling rate (Hz) at which the envelopes are computed, as in Springer's code."""
FRAME_RATE = 50
"""Default frame rate of the features (Hz): one frame per 20 ms."""


def num_frames(num_samples: int, sampling_rate: float, frame_rate: float = FRAME_RATE) -> int:
    """Number of frames covering ``num_samples`` samples: ``ceil(duration * frame_rate)``."""
    return max(1, int(math.ceil(num_samples / sampling_rate * frame_rate - 1e-9)))


def spike_removal(waveform: np.ndarray, sampling_rate: float, window: float = 0.5,
                  max_iterations: int = 50) -> np.ndarray:
    """Schmidt et al. (2010) spike removal: while a 500 ms window's maximum absolute amplitude
    exceeds three times the median of those maxima, zero the largest spike in that window (from the
    zero crossing before it to the one after it).

    Parameters
    ----------
    waveform : np.ndarray
        1-D signal.
    sampling_rate : float
        Its rate in Hz.
    window : float
        Window length in seconds.
    max_iterations : int
        Bound on the number of spikes removed.

    Returns
    -------
    np.ndarray
        A copy with the spikes set to zero.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(4000) * 0.1
    >>> x[2000] = 50.0
    >>> float(np.abs(spike_removal(x, 1000)).max()) < 1.0
    True
    """
    x = np.array(waveform, dtype=np.float64, copy=True)
    size = int(round(window * sampling_rate))
    n_windows = len(x) // size
    if n_windows < 2:
        return x
    frames = x[: n_windows * size].reshape(n_windows, size)  # a view: edits reach x
    for _ in range(max_iterations):
        maa = np.abs(frames).max(axis=1)
        threshold = 3 * np.median(maa)
        if not np.any(maa > threshold) or threshold <= 0:
            break
        w = int(np.argmax(maa))
        row = frames[w]
        peak = int(np.argmax(np.abs(row)))
        signs = np.signbit(row)
        crossings = np.flatnonzero(signs[1:] != signs[:-1])  # a sign change between i and i + 1
        before = crossings[crossings < peak]
        after = crossings[crossings >= peak]
        start = int(before[-1]) + 1 if len(before) else 0
        end = int(after[0]) + 1 if len(after) else size
        row[start:end] = 0.0
    return x


def _to_frames(envelope: np.ndarray, work_rate: int, frame_rate: int, n: int) -> np.ndarray:
    y = sps.resample_poly(envelope, frame_rate, work_rate) if frame_rate != work_rate else envelope
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)), mode="edge")
    return y[:n]


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 1e-12 else 1.0)


def homomorphic_envelope(waveform: np.ndarray, sampling_rate: float, cutoff: float = 8.0) -> np.ndarray:
    """``exp(lowpass(log |hilbert(x)|))`` with a first-order zero-phase Butterworth at ``cutoff`` Hz."""
    analytic = np.abs(sps.hilbert(waveform))
    sos = sps.butter(1, cutoff, btype="low", fs=sampling_rate, output="sos")
    return np.exp(sps.sosfiltfilt(sos, np.log(analytic + 1e-10)))


def psd_envelope(waveform: np.ndarray, sampling_rate: float, low: float = 40.0, high: float = 60.0,
                 window: float = 0.05) -> np.ndarray:
    """Mean spectrogram power between ``low`` and ``high`` Hz, one value per sample (interpolated)."""
    nperseg = max(8, int(round(window * sampling_rate)))
    nfft = max(nperseg, 256)
    freqs, times, power = sps.spectrogram(waveform, fs=sampling_rate, nperseg=nperseg,
                                          noverlap=nperseg // 2, nfft=nfft, mode="psd")
    band = (freqs >= low) & (freqs <= high)
    values = power[band].mean(axis=0) if band.any() else power.mean(axis=0)
    sample_times = np.arange(len(waveform)) / sampling_rate
    return np.interp(sample_times, times, values)


def wavelet_envelope(waveform: np.ndarray, wavelet: str = "db7", level: int = 3) -> np.ndarray:
    """Magnitude of the signal reconstructed from the level-``level`` detail coefficients only."""
    max_level = pywt.dwt_max_level(len(waveform), pywt.Wavelet(wavelet).dec_len)
    level = max(1, min(level, max_level))
    coeffs = pywt.wavedec(waveform, wavelet, level=level)
    kept = [np.zeros_like(c) for c in coeffs]
    kept[1] = coeffs[1]  # coeffs = [cA_level, cD_level, cD_level-1, ...]
    return np.abs(pywt.waverec(kept, wavelet)[: len(waveform)])


def springer_features(waveform: np.ndarray, sampling_rate: float, frame_rate: int = FRAME_RATE,
                      remove_spikes: bool = True) -> np.ndarray:
    """The four standardised Springer envelopes, one row per frame.

    Parameters
    ----------
    waveform : np.ndarray
        1-D PCG.
    sampling_rate : float
        Its rate in Hz (CirCor: 4000). Resampled to 1 kHz first.
    frame_rate : int
        Output frames per second (50: 20 ms frames).
    remove_spikes : bool
        Apply :func:`spike_removal` before the envelopes.

    Returns
    -------
    np.ndarray
        float32 array of shape ``(num_frames(len(waveform), sampling_rate, frame_rate), 4)``, columns
        in :data:`FEATURE_NAMES` order.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(1).standard_normal(8000)
    >>> springer_features(x, 4000, frame_rate=50).shape
    (100, 4)
    """
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"springer_features: expected a 1-D waveform, got shape {x.shape}")
    n = num_frames(len(x), sampling_rate, frame_rate)
    if len(x) < 0.5 * sampling_rate:
        raise ValueError(f"springer_features: recording of {len(x) / sampling_rate:.2f} s is too short "
                         "(at least 0.5 s is needed)")
    if int(sampling_rate) != WORK_RATE:
        x = pcg_resample(x, int(sampling_rate), WORK_RATE)
    x = pcg_filter(x, WORK_RATE, low=25.0, high=400.0, order=2)
    if remove_spikes:
        x = spike_removal(x, WORK_RATE)
    envelopes = (
        homomorphic_envelope(x, WORK_RATE),
        np.abs(sps.hilbert(x)),
        psd_envelope(x, WORK_RATE),
        wavelet_envelope(x),
    )
    feats = np.stack([_standardise(_to_frames(e, WORK_RATE, frame_rate, n)) for e in envelopes], axis=1)
    return feats.astype(np.float32)
