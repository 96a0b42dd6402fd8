"""Log-mel spectrograms for the compact model, batched in PyTorch, with an on-disk cache.

The front end (:class:`FrontEnd`) is: clean the waveform (:func:`murmurlm.signal.filter.pcg_clean`:
resample, band-pass, normalise), optionally crop to the annotated stretch, then a log-mel
spectrogram: ``log(mel_filterbank @ |STFT|^2 + eps)``.

The mel filterbank follows librosa's defaults (Slaney's mel scale and area normalisation,
``librosa.filters.mel(htk=False, norm="slaney")``); it is written out in :func:`mel_filterbank`
(a dozen lines) so that the front end does not import transformers or librosa. The STFT is
``torch.stft`` with a periodic Hann window and zero padding at the edges, as ``librosa.stft``
does, so :func:`log_mel` matches ``log(librosa.feature.melspectrogram(...) + eps)``.

:func:`compute_features` runs a list of waveforms through the front end in length-sorted batches
(one padded ``torch.stft`` per batch), and :class:`FeatureCache` keeps one ``.npy`` (float16) per
recording, keyed by a hash of the front-end config, the file path, its size and mtime; a second
epoch, run or fold reads no audio.

Examples
--------
>>> import numpy as np
>>> fe = FrontEnd()
>>> x = np.random.default_rng(0).standard_normal(4000 * 3).astype(np.float32)
>>> feats = fe(x, 4000)
>>> feats.shape == (fe.n_mels, fe.num_frames(3.0))
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from murmurlm.signal.crop import crop_annotated
from murmurlm.signal.filter import pcg_clean

log = logging.getLogger(__name__)

LOG_EPS = 1e-6
"""Added to mel power before the log; the waveform is normalised, so this floor is ~-60 dB."""


# ---------------------------------------------------------------------------------------------
# mel filterbank (librosa's Slaney variant)


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above."""
    f = np.asarray(freq, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    m = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, area-normalised (Slaney).

    Same as ``librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
    fmax=fmax)``.

    Examples
    --------
    >>> mel_filterbank(2000, 256, 64, 25, 800).shape
    (64, 129)
    """
    if not 0 <= fmin < fmax <= sampling_rate / 2:
        raise ValueError(f"mel_filterbank: need 0 <= fmin < fmax <= Nyquist ({sampling_rate / 2} Hz), "
                         f"got fmin={fmin}, fmax={fmax}")
    fft_freqs = np.linspace(0, sampling_rate / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the front end


PREPROCESS_OPTIONS = ("none", "annotated", "predicted")
"""Which stretch of a recording the model sees: all of it, the .tsv's annotated stretch (an oracle:
needs CirCor's segmentation), or the clean cycles found by :func:`murmurlm.signal.segment.pcg_segment`."""


@dataclass
class FrontEnd:
    """Front-end settings and the function that applies them (``front_end(waveform, rate)``).

    Defaults: 2 kHz, 25-800 Hz band, 64 mel bands, 50 ms window, 20 ms hop.
    """

    sample_rate: int = 2000  # rate the model sees; 2 kHz keeps murmurs (< 800 Hz), halves the cost
    low: float = 25.0  # band-pass low edge, Hz
    high: float = 800.0  # band-pass high edge, Hz
    filter_order: int = 4  # Butterworth order per direction
    n_fft: int = 256  # FFT size (zero-padded window), samples
    win_length: int = 100  # analysis window, samples (50 ms at 2 kHz)
    hop_length: int = 40  # frame step, samples (20 ms at 2 kHz)
    n_mels: int = 64  # mel bands
    fmin: float = 25.0  # lowest mel edge, Hz
    fmax: float = 800.0  # highest mel edge, Hz
    preprocess: str = "none"  # none | annotated (crop to the .tsv's annotated stretch) | predicted (segmenter's cycles)
    segmenter: str = "mamba"  # with preprocess: predicted, the packaged segmenter: mamba (better) | springer (faster)

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_OPTIONS:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS_OPTIONS)}, got {self.preprocess!r}")
        if self.segmenter not in ("mamba", "springer"):
            raise ValueError(f"segmenter must be 'mamba' or 'springer', got {self.segmenter!r}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("hop_length and n_mels must be positive")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin}, "
                             f"fmax={self.fmax}, sample_rate={self.sample_rate}")

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def num_frames(self, seconds: float) -> int:
        """Frames of a ``seconds``-long signal (centred STFT)."""
        return int(round(seconds * self.sample_rate)) // self.hop_length + 1

    def key(self) -> str:
        """Short hash of the settings (the cache's key prefix)."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def clean(self, waveform: np.ndarray, sampling_rate: int, segments: Sequence | None = None) -> np.ndarray:
        """Resampled, filtered, normalised waveform, cropped with ``preprocess: annotated`` (to the
        annotated stretch of ``segments``) or ``predicted`` (to the stretch the packaged segmenter
        marks as clean heart cycles; ``segments`` is not needed)."""
        x = np.asarray(waveform, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {x.shape}")
        if self.preprocess == "annotated" and segments:
            x = crop_annotated(x, sampling_rate, segments)
        elif self.preprocess == "predicted":
            # Imported here: the segmenter pulls in transformers' Mamba2, which "none" never needs.
            # The same crop rule as "annotated", so the two differ only in where the segments come from.
            from murmurlm.signal.segment import pcg_segment

            x = crop_annotated(x, sampling_rate, pcg_segment(x, sampling_rate, method=self.segmenter).segments)
        return pcg_clean(x, sampling_rate, self.sample_rate, self.low, self.high, self.filter_order)

    def __call__(self, waveform: np.ndarray, sampling_rate: int, segments: Sequence | None = None) -> np.ndarray:
        """Log-mel features of one recording, float32 ``(n_mels, frames)``."""
        return compute_features([waveform], [sampling_rate], self, [segments])[0]


_FILTERBANKS: dict[tuple, "object"] = {}


def log_mel(waveforms, front_end: FrontEnd):
    """Batched log-mel spectrogram of already-cleaned waveforms.

    Parameters
    ----------
    waveforms : torch.Tensor
        Shape ``(batch, samples)`` or ``(samples,)`` at ``front_end.sample_rate``.
    front_end : FrontEnd
        STFT and mel settings.

    Returns
    -------
    torch.Tensor
        ``(batch, n_mels, frames)`` (or ``(n_mels, frames)``), natural log of mel power + LOG_EPS.

    Examples
    --------
    >>> import torch
    >>> log_mel(torch.zeros(2, 2000), FrontEnd()).shape
    torch.Size([2, 64, 51])
    """
    import torch

    fe = front_end
    key = (fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax)
    if key not in _FILTERBANKS:
        _FILTERBANKS[key] = torch.from_numpy(mel_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax))
    fb = _FILTERBANKS[key]
    x = torch.as_tensor(waveforms, dtype=torch.float32)
    window = torch.hann_window(fe.win_length, periodic=True, dtype=torch.float32)
    spec = torch.stft(x, n_fft=fe.n_fft, hop_length=fe.hop_length, win_length=fe.win_length,
                      window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    return torch.log(torch.matmul(fb, power) + LOG_EPS)


def compute_features(waveforms: Sequence[np.ndarray], sampling_rates: Sequence[int], front_end: FrontEnd,
                     segments: Sequence[Sequence | None] | None = None, batch_size: int = 16) -> list[np.ndarray]:
    """Front end for many recordings: clean each, then log-mel in length-sorted padded batches.

    Returns one float32 ``(n_mels, frames)`` array per waveform, in input order; frames depend only
    on that waveform (padding is cut away), so batching does not change the result.
    """
    import torch

    segments = segments if segments is not None else [None] * len(waveforms)
    cleaned = [front_end.clean(w, r, s) for w, r, s in zip(waveforms, sampling_rates, segments)]
    order = np.argsort([len(c) for c in cleaned], kind="stable")
    out: list[np.ndarray | None] = [None] * len(cleaned)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        longest = max(len(cleaned[j]) for j in idx)
        batch = np.zeros((len(idx), longest), dtype=np.float32)
        for row, j in enumerate(idx):
            batch[row, :len(cleaned[j])] = cleaned[j]
        with torch.no_grad():
            feats = log_mel(torch.from_numpy(batch), front_end).numpy()
        for row, j in enumerate(idx):
            n = len(cleaned[j]) // front_end.hop_length + 1
            out[j] = np.ascontiguousarray(feats[row, :, :n])
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# the cache


def default_cache_dir() -> Path:
    """``$MURMURLM_CACHE`` or ``~/.cache/murmurlm``, plus ``features/``."""
    base = os.environ.get("MURMURLM_CACHE") or Path.home() / ".cache" / "murmurlm"
    return Path(base) / "features"


class FeatureCache:
    """One float16 ``.npy`` per (front-end config, audio file) under ``root/<config hash>/``.

    The file name carries a hash of the absolute path, size and mtime of the audio (and of its
    segmentation when ``preprocess: annotated``), so an edited file is recomputed, never reused.
    Writes are atomic (temporary file, then rename), so parallel runs can share a cache.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> cache = FeatureCache(tempfile.mkdtemp(), FrontEnd())
    >>> cache.get("nowhere.wav") is None
    True
    """

    def __init__(self, root: str | Path | None, front_end: FrontEnd):
        self.front_end = front_end
        self.root = (Path(root) if root is not None else default_cache_dir()) / front_end.key()

    def _path(self, audio_path: str | Path, extra: str | Path | None = None) -> Path | None:
        parts = []
        for p in (audio_path, extra):
            if p is None:
                continue
            p = Path(p).resolve()
            try:
                st = p.stat()
            except OSError:
                return None
            parts.append(f"{p}|{st.st_size}|{st.st_mtime_ns}")
        digest = hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]
        return self.root / f"{Path(audio_path).stem}-{digest}.npy"

    def get(self, audio_path: str | Path, extra: str | Path | None = None) -> np.ndarray | None:
        path = self._path(audio_path, extra)
        if path is None or not path.exists():
            return None
        try:
            return np.load(path)
        except (OSError, ValueError):
            log.warning("unreadable cache entry %s; recomputing", path)
            return None

    def put(self, audio_path: str | Path, features: np.ndarray, extra: str | Path | None = None) -> None:
        path = self._path(audio_path, extra)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, features.astype(np.float16))
        os.replace(tmp, path)


def recording_features(recordings: Sequence, front_end: FrontEnd, cache_dir: str | Path | None = None,
                       use_cache: bool = True, progress: bool = False, batch_size: int = 32,
                       on_error: Callable[[object, Exception], None] | None = None) -> list[np.ndarray | None]:
    """Features of CirCor recordings (:class:`murmurlm.data.circor.Recording`), cached.

    Returns float16 arrays ``(n_mels, frames)`` in input order. A recording whose audio cannot be
    read raises, unless ``on_error(recording, error)`` is given: then it is called and the entry
    is None.
    """
    from tqdm.auto import tqdm

    from murmurlm.errors import DataFormatError

    cache = FeatureCache(cache_dir, front_end) if use_cache else None
    annotated = front_end.preprocess == "annotated"
    out: list[np.ndarray | None] = [None] * len(recordings)
    todo = []
    for i, rec in enumerate(recordings):
        extra = rec.segmentation_path if annotated else None
        hit = cache.get(rec.audio_path, extra) if cache is not None else None
        if hit is not None:
            out[i] = hit
        else:
            todo.append(i)
    if todo:
        log.info("computing features of %d recording(s) (%d cached)", len(todo), len(recordings) - len(todo))
    bar = tqdm(total=len(todo), desc="features", unit="rec", disable=not progress or not todo)
    for start in range(0, len(todo), batch_size):
        chunk, waves, rates, segs = [], [], [], []
        for i in todo[start:start + batch_size]:
            rec = recordings[i]
            try:
                waves.append(rec.load_audio())
                segs.append(rec.load_segments() if annotated else None)
            except DataFormatError as err:
                if on_error is None:
                    raise
                on_error(rec, err)
                continue
            chunk.append(i)
            rates.append(rec.sampling_rate)
        feats = compute_features(waves, rates, front_end, segs, batch_size=16) if chunk else []
        for i, f in zip(chunk, feats):
            f16 = f.astype(np.float16)
            out[i] = f16
            if cache is not None:
                rec = recordings[i]
                cache.put(rec.audio_path, f16, rec.segmentation_path if annotated else None)
        bar.update(len(todo[start:start + batch_size]))
    bar.close()
    return out


def frame_windows(features: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Overlapping ``length``-frame windows of one ``(n_mels, frames)`` array -> ``(windows, n_mels,
    length)``. Windows start every ``hop`` frames and the last one ends at the last frame; a
    recording shorter than ``length`` gives one window that wraps around (as training crops do).

    Examples
    --------
    >>> import numpy as np
    >>> frame_windows(np.zeros((64, 500)), 200, 100).shape
    (4, 64, 200)
    >>> frame_windows(np.arange(3.0)[None, :], 5, 5)[0, 0].tolist()
    [0.0, 1.0, 2.0, 0.0, 1.0]
    """
    if length <= 0 or hop <= 0:
        raise ValueError(f"frame_windows: length and hop must be positive, got {length}, {hop}")
    n = features.shape[1]
    if n == 0:
        raise ValueError("frame_windows: no frames")
    starts = list(range(0, max(n - length, 0) + 1, hop))
    if n > length and starts[-1] != n - length:
        starts.append(n - length)
    pos = (np.asarray(starts)[:, None] + np.arange(length)[None, :]) % n
    return np.ascontiguousarray(np.moveaxis(features[:, pos], 1, 0))
