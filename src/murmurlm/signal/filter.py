"""Clean a phonocardiogram: band-pass filter, resample, normalise amplitude.

The three steps of the compact model's front end, each a plain function on a numpy waveform
(NeuroKit2 style: ``pcg_<verb>``). ``sampling_rate`` is always required: CirCor is 4 kHz, other
stethoscopes are not, and a silent default would be wrong for one of them.

- :func:`pcg_filter`: zero-phase Butterworth band-pass (``scipy.signal.sosfiltfilt``). Heart sounds
  and murmurs live between ~25 Hz and a few hundred Hz; below is motion and breathing, above is
  friction and hiss (Springer et al., IEEE TBME 2016 use 25-400 Hz).
- :func:`pcg_resample`: polyphase resampling (``scipy.signal.resample_poly``, anti-aliased).
- :func:`pcg_normalise`: divide by a robust amplitude (a high percentile of ``|x|``), so one click
  does not squash the rest of the recording.
- :func:`pcg_clean` chains the three.

Examples
--------
>>> import numpy as np
>>> fs = 4000
>>> t = np.arange(2 * fs) / fs
>>> x = np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 1500 * t)   # in band + out of band
>>> y = pcg_filter(x, fs, low=25, high=400)
>>> bool(np.std(y) < 0.8 * np.std(x))                                 # the 1.5 kHz tone is gone
True
>>> pcg_resample(x, fs, 2000).shape
(4000,)
>>> float(np.round(np.percentile(np.abs(pcg_normalise(x)), 99), 3))
1.0
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
from scipy import signal as sps

log = logging.getLogger(__name__)


def _check_rate(sampling_rate: float, name: str = "sampling_rate") -> None:
    if not np.isfinite(sampling_rate) or sampling_rate <= 0:
        raise ValueError(f"{name} must be a positive number of Hz, got {sampling_rate!r}")


def pcg_filter(waveform: np.ndarray, sampling_rate: float, low: float | None = 25.0,
               high: float | None = 400.0, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass (or high-/low-pass when one edge is None).

    Parameters
    ----------
    waveform : np.ndarray
        Signal, shape ``(..., num_samples)``; filtered along the last axis.
    sampling_rate : float
        Sampling rate of ``waveform`` in Hz.
    low, high : float or None
        Pass-band edges in Hz. ``high`` at or above Nyquist is dropped (a high-pass only).
    order : int
        Butterworth order of each direction (``sosfiltfilt`` doubles the effective order).

    Returns
    -------
    np.ndarray
        Filtered signal, float32 when the input is float32, else float64; same shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(8000)
    >>> pcg_filter(x, 4000).shape
    (8000,)
    """
    _check_rate(sampling_rate)
    x = np.asarray(waveform)
    nyquist = sampling_rate / 2
    if high is not None and high >= nyquist:
        high = None
    if low is not None and low <= 0:
        low = None
    if low is not None and high is not None and not low < high:
        raise ValueError(f"pcg_filter: low ({low} Hz) must be below high ({high} Hz)")
    if low is None and high is None:
        return x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=True)
    if low is not None and high is not None:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=sampling_rate, output="sos")
    elif low is not None:
        sos = sps.butter(order, low, btype="highpass", fs=sampling_rate, output="sos")
    else:
        sos = sps.butter(order, high, btype="lowpass", fs=sampling_rate, output="sos")
    # sosfiltfilt needs a few times the filter length of signal; shorter signals pad less.
    padlen = min(3 * (2 * len(sos) + 1), max(x.shape[-1] - 1, 0))
    y = sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen)
    return y.astype(np.float32) if x.dtype == np.float32 else y


def pcg_resample(waveform: np.ndarray, sampling_rate: int, target_rate: int) -> np.ndarray:
    """Resample with a polyphase anti-aliasing filter (``scipy.signal.resample_poly``).

    Parameters
    ----------
    waveform : np.ndarray
        Signal, shape ``(..., num_samples)``.
    sampling_rate, target_rate : int
        Rates in Hz; their ratio is reduced to the smallest up/down pair.

    Examples
    --------
    >>> import numpy as np
    >>> pcg_resample(np.zeros(44100), 44100, 2000).shape
    (2000,)
    """
    _check_rate(sampling_rate)
    _check_rate(target_rate, "target_rate")
    x = np.asarray(waveform)
    if int(sampling_rate) == int(target_rate):
        return x.copy()
    ratio = Fraction(int(round(target_rate)), int(round(sampling_rate)))
    y = sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
    return y.astype(np.float32) if x.dtype == np.float32 else y


def pcg_normalise(waveform: np.ndarray, percentile: float = 99.0, eps: float = 1e-8) -> np.ndarray:
    """Scale so that the ``percentile``-th percentile of ``|x|`` is 1 (after removing the mean).

    A silent (all-zero) signal is returned unchanged rather than divided by zero.

    Examples
    --------
    >>> import numpy as np
    >>> y = pcg_normalise(np.array([0.0, 0.1, -0.2, 0.2]), percentile=100)
    >>> float(np.abs(y).max())
    1.0
    """
    x = np.asarray(waveform)
    x = x - x.mean(axis=-1, keepdims=True)
    scale = np.percentile(np.abs(x), percentile, axis=-1, keepdims=True)
    scale = np.where(scale > eps, scale, 1.0)
    y = x / scale
    return y.astype(np.float32) if np.asarray(waveform).dtype == np.float32 else y


def pcg_clean(waveform: np.ndarray, sampling_rate: int, target_rate: int | None = None,
              low: float | None = 25.0, high: float | None = 400.0, order: int = 4,
              percentile: float = 99.0) -> np.ndarray:
    """Resample (when ``target_rate`` differs), band-pass and normalise: the front end's cleaning.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    >>> y = pcg_clean(x, 4000, target_rate=2000, high=800)
    >>> y.shape, y.dtype.name
    ((2000,), 'float32')
    """
    x = np.asarray(waveform, dtype=np.float32)
    rate = sampling_rate
    if target_rate is not None and int(target_rate) != int(sampling_rate):
        x = pcg_resample(x, sampling_rate, target_rate)
        rate = target_rate
    x = pcg_filter(x, rate, low=low, high=high, order=order)
    return pcg_normalise(x, percentile=percentile).astype(np.float32)
