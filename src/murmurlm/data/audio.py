"""Reading one PCG file, for the dataset and for prediction: the one reader of the package.

CirCor recordings are 4 kHz 16-bit mono; a user's file may be 44.1 kHz stereo FLAC, 8-bit WAV, or
not audio at all. :func:`read_pcg` checks the file, reads at most ``max_duration_s`` of it (so a
small FLAC that decodes to hours of audio cannot exhaust memory), mixes channels down, and says in
``notes`` what it changed. It keeps the file's own sampling rate: the model's front end (or the
segmenter) resamples once, to the rate it needs. :func:`decode_audio` is the one call of the
decoder; ``murmurlm.data.circor.read_audio`` uses it with the dataset's own checks. Every refusal
is an :class:`~murmurlm.errors.AudioError` naming the file and the reason, with a ``reason`` code
that the service maps to an HTTP status.

Refused: files libsndfile cannot decode, empty files, WAV files shorter than their ``data`` chunk
announces (truncated), FLAC files that end before their STREAMINFO sample count or do not give it,
8-bit PCM (48 dB of dynamic range buries soft murmurs under quantisation noise), non-finite samples,
sampling rates below :data:`MIN_SAMPLING_RATE`, and durations outside the given limits.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np, soundfile as sf
>>> path = pathlib.Path(tempfile.mkdtemp()) / "stereo.wav"
>>> t = np.arange(44100 * 2) / 44100
>>> sf.write(path, np.stack([np.sin(2 * np.pi * 50 * t)] * 2, axis=1) * 0.3, 44100)
>>> rec = read_pcg(path)
>>> rec.sampling_rate, rec.waveform.shape, rec.info.channels
(44100, (88200,), 2)
>>> rec.notes
['mixed 2 channels down to mono']
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from murmurlm.errors import AudioError

log = logging.getLogger(__name__)

MIN_SAMPLING_RATE = 1000
"""Lowest accepted input rate (Hz): below it, the 20-500 Hz band of heart sounds is cut."""

REFUSED_SUBTYPES = {"PCM_U8": "8-bit", "PCM_S8": "8-bit", "ULAW": "8-bit mu-law", "ALAW": "8-bit A-law"}


class RecordingError(AudioError):
    """A recording that cannot be used, with a machine-readable ``reason``.

    Reasons: ``not_audio``, ``empty``, ``truncated``, ``unsupported`` (8-bit, too low a rate),
    ``non_finite``, ``too_long``, ``too_short``, ``not_found``.
    """

    def __init__(self, path: str | Path, message: str, reason: str):
        super().__init__(path, message)
        self.reason = reason


SF_COUNT_MAX = 2**63 - 1
"""libsndfile's frame count of a stream whose header does not give its length."""


@dataclass(frozen=True)
class AudioInfo:
    """What the file itself holds, before any conversion."""

    sampling_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sampling_rate


@dataclass
class PreparedRecording:
    """A mono float32 waveform at ``sampling_rate``, the file's own ``info``, and what was changed."""

    waveform: np.ndarray
    sampling_rate: int
    info: AudioInfo
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sampling_rate


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, a message when the ``data`` chunk announces more bytes than the file
    holds (libsndfile silently reads what is there). None when complete or not a plain RIFF file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            fh.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streaming writers leave the size unknown
                    return None
                available = size - offset - 8
                if available < chunk_size:
                    return (f"truncated WAV: the data chunk announces {chunk_size} bytes, "
                            f"the file holds {available}")
                return None
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def audio_info(path: str | Path) -> AudioInfo:
    """Header information of an audio file, or RecordingError when it is not readable audio."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(path, "audio file not found", "not_found")
    if path.stat().st_size == 0:
        raise RecordingError(path, "the file is empty", "empty")
    try:
        info = sf.info(str(path))
    except Exception as err:  # LibsndfileError, RuntimeError, TypeError ...
        raise RecordingError(path, f"not a readable audio file (WAV, FLAC, OGG...): {_short(err)}",
                             "not_audio") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise RecordingError(path, f"impossible header: {info.samplerate} Hz, {info.channels} channels",
                             "not_audio")
    frames = int(info.frames)
    if frames < 0 or frames >= SF_COUNT_MAX:  # a streamed FLAC whose header does not give its length
        # libsndfile (1.2) reports SF_COUNT_MAX frames for it and then fails to seek near the end
        # ("Internal psf_fseek() failed"), losing the last blocks: refuse it with the cure.
        raise RecordingError(path, f"{info.format} file without its length in the header (a streamed "
                             "encoding): it cannot be decoded reliably; re-encode it (e.g. `flac -f -o "
                             "out.flac in.flac`) or export WAV", "unsupported")
    return AudioInfo(int(info.samplerate), int(info.channels), frames, str(info.format), str(info.subtype))


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    # libsndfile repeats the (temporary) path in its message; keep only the reason.
    if ": " in text and text.startswith("Error opening"):
        text = text.split(": ", 1)[1]
    return text[:200]


def decode_audio(path: str | Path, frames: int = -1) -> tuple[np.ndarray, int]:
    """Decode a WAV/FLAC file (at most ``frames`` frames; -1: all) to float32 ``(samples, channels)``
    and its rate, unchecked: the one place that calls the decoder.

    Raises AudioError for a missing or undecodable file (the decoder's error is its ``__cause__``).
    :func:`read_pcg` checks the result for prediction; ``murmurlm.data.circor.read_audio`` for the
    dataset (rate and length as its header announces).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "audio file not found")
    try:
        data, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(path, f"cannot decode audio: {err}") from err
    return data, int(rate)


def read_pcg(path: str | Path, max_duration_s: float | None = None, min_duration_s: float = 0.0) -> PreparedRecording:
    """Read, check and mix down one recording, at the file's own sampling rate.

    Parameters
    ----------
    path
        WAV, FLAC or any format libsndfile decodes.
    max_duration_s, min_duration_s
        Limits on the duration; longer files are refused before they are decoded.

    Returns
    -------
    PreparedRecording
        At the file's rate; ``notes`` lists the conversions made ("mixed 2 channels down to mono",
        "scaled down ..."). Resampling is the front end's job (one resampler, applied once).

    Raises
    ------
    RecordingError
        With ``reason`` one of those listed in :class:`RecordingError`.
    """
    path = Path(path)
    info = audio_info(path)
    if info.subtype in REFUSED_SUBTYPES:
        raise RecordingError(path, f"{REFUSED_SUBTYPES[info.subtype]} audio ({info.subtype}) is not "
                             "supported: its quantisation noise buries soft murmurs; record or export "
                             "16-bit PCM or better", "unsupported")
    if info.sampling_rate < MIN_SAMPLING_RATE:
        raise RecordingError(path, f"sampling rate {info.sampling_rate} Hz is below the minimum "
                             f"{MIN_SAMPLING_RATE} Hz (heart sounds reach 500 Hz and more)", "unsupported")
    if max_duration_s is not None and info.frames > max_duration_s * info.sampling_rate:
        raise RecordingError(path, f"recording lasts {info.duration:.1f} s, the limit is "
                             f"{max_duration_s:g} s; cut it into shorter files", "too_long")
    if info.format == "WAV" or path.suffix.lower() == ".wav":
        message = _wav_truncation(path)
        if message:
            raise RecordingError(path, message, "truncated")
    # Never decode more than the limit allows, whatever the header says (FLAC may not know).
    cap = -1 if max_duration_s is None else int(max_duration_s * info.sampling_rate) + 1
    try:
        data, rate = decode_audio(path, frames=cap)
    except AudioError as err:
        reason = "truncated" if info.format == "FLAC" else "not_audio"
        raise RecordingError(path, f"cannot decode the audio ({'truncated or corrupt ' if reason == 'truncated' else ''}"
                             f"{info.format}): {_short(err.__cause__ or err)}", reason) from None
    if data.shape[0] == 0:
        raise RecordingError(path, "the audio holds no samples", "empty")
    if max_duration_s is not None and data.shape[0] > max_duration_s * rate:
        raise RecordingError(path, f"recording lasts more than the limit of {max_duration_s:g} s; "
                             "cut it into shorter files", "too_long")
    expected = info.frames if cap < 0 else min(info.frames, cap)
    if info.frames and data.shape[0] < expected:
        raise RecordingError(path, f"truncated {info.format}: {data.shape[0]} samples decoded, the "
                             f"header announces {info.frames}", "truncated")
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise RecordingError(path, f"the audio contains {bad} NaN or infinite sample(s)", "non_finite")
    duration = data.shape[0] / rate
    if duration < min_duration_s:
        raise RecordingError(path, f"recording lasts {duration:.2f} s, at least {min_duration_s:g} s "
                             "are needed (two heart cycles or more)", "too_short")
    notes: list[str] = []
    if data.shape[1] > 1:
        notes.append(f"mixed {data.shape[1]} channels down to mono")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak > 1.0:  # float files may exceed full scale; models expect about [-1, 1]
        notes.append(f"scaled down from a peak of {peak:.3g} to 1")
        wave = wave / peak
    info = AudioInfo(info.sampling_rate, info.channels, data.shape[0], info.format, info.subtype)
    return PreparedRecording(np.ascontiguousarray(wave, dtype=np.float32), rate, info, notes)
