"""A user's recording at a given rate: :func:`murmurlm.data.audio.read_pcg` (the one reader, with
every check and refusal), then, where the file's rate differs, the one resampler,
:func:`murmurlm.signal.filter.pcg_resample`.

Prediction itself does not need this: :meth:`murmurlm.inference.predict.Predictor.predict_waveform`
takes any rate and its front end resamples once, and
:func:`murmurlm.inference.report.analyse_recording` takes the file's own rate too.
:func:`read_recording` serves what wants the audio at one fixed rate (the audio LM's 16 kHz).

Examples
--------
>>> import tempfile, pathlib
>>> import soundfile as sf
>>> from murmurlm.signal.synth import synth_pcg
>>> path = pathlib.Path(tempfile.mkdtemp()) / "pcg.flac"
>>> sf.write(path, synth_pcg(3.0, 8000, seed=0).waveform, 8000)
>>> rec = read_recording(path, target_rate=4000)
>>> rec.sampling_rate, rec.waveform.shape, rec.info.sampling_rate, rec.notes
(4000, (12000,), 8000, ['resampled from 8000 Hz to 4000 Hz'])
>>> read_recording(path, target_rate=8000).notes      # already at the rate: read, not resampled
[]
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from murmurlm.data.audio import (MIN_SAMPLING_RATE, REFUSED_SUBTYPES, AudioInfo, PreparedRecording,  # noqa: F401
                                 RecordingError, audio_info, read_pcg)
from murmurlm.signal.filter import pcg_resample


def read_recording(path: str | Path, target_rate: int, max_duration_s: float | None = None,
                   min_duration_s: float = 0.0) -> PreparedRecording:
    """:func:`~murmurlm.data.audio.read_pcg`, resampled to ``target_rate`` (polyphase, computed in
    float64) when the file's rate differs, and said so in ``notes``."""
    rec = read_pcg(path, max_duration_s=max_duration_s, min_duration_s=min_duration_s)
    if rec.sampling_rate == target_rate:
        return rec
    wave = pcg_resample(rec.waveform.astype(np.float64), rec.sampling_rate, target_rate).astype(np.float32)
    return replace(rec, waveform=np.ascontiguousarray(wave), sampling_rate=int(target_rate),
                   notes=[*rec.notes, f"resampled from {rec.sampling_rate} Hz to {target_rate} Hz"])
