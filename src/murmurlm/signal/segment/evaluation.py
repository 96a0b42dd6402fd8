"""Run a segmenter over annotated recordings and score it against their ``.tsv`` files.

Examples
--------
>>> import tempfile, pathlib
>>> from murmurlm.data.circor import load_circor
>>> from murmurlm.signal.synth import write_synthetic_circor
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_synthetic_circor(root, num_patients=2, seed=0)
>>> recs = load_circor(root).recordings[:2]
>>> result = evaluate_segmenter("springer", recs, progress=False)
>>> result.summary()["s1_f1"] > 0.8
True
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from tqdm.auto import tqdm

from murmurlm.data.circor import Recording
from murmurlm.signal.segment.metrics import SegmentationCounts, score_segmentation

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Totals over the recordings, plus timing: ``seconds`` spent segmenting ``audio_seconds`` of audio."""

    counts: SegmentationCounts = field(default_factory=SegmentationCounts)
    recordings: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    heart_rate_errors: list[float] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (recording, error) not scored

    def summary(self) -> dict[str, float]:
        out = self.counts.summary()
        out["recordings"] = self.recordings
        out["failed_recordings"] = len(self.failed)
        out["audio_minutes"] = round(self.audio_seconds / 60, 2)
        out["seconds_per_audio_minute"] = round(60 * self.seconds / self.audio_seconds, 4) if self.audio_seconds else float("nan")
        if self.heart_rate_errors:
            errs = sorted(self.heart_rate_errors)
            out["heart_rate_median_abs_error_bpm"] = round(errs[len(errs) // 2], 2)
        return out


def _reference_heart_rate(segments) -> float | None:
    starts = [s.start for s in segments if s.state == 1]
    if len(starts) < 3:
        return None
    diffs = sorted(b - a for a, b in zip(starts, starts[1:]) if b - a < 2.0)
    return 60.0 / diffs[len(diffs) // 2] if diffs else None


def evaluate_segmenter(model: Any, recordings: Sequence[Recording], method: str | None = None,
                       progress: bool = True) -> EvaluationResult:
    """Segment every recording that has a ``.tsv`` and add up the scores.

    ``model`` is a trained segmenter, a model file, or a method name (``"springer"``/``"mamba"``)
    for the shipped default. Timing covers :func:`~murmurlm.signal.segment.pcg_segment` only
    (not reading audio).
    """
    from murmurlm.signal.segment import load_segmenter, pcg_segment, _method_of

    if isinstance(model, str) and model in ("springer", "mamba"):
        method, model = model, None
    elif model is not None and not hasattr(model, "decode"):
        model = load_segmenter(model)
    if method is None:
        method = _method_of(model)
    result = EvaluationResult()
    annotated = [r for r in recordings if r.segmentation_path is not None]
    for rec in tqdm(annotated, desc=f"segment ({method})", disable=not progress, leave=False):
        try:
            wave = rec.load_audio()
            reference = rec.load_segments()
            t0 = time.perf_counter()
            seg = pcg_segment(wave, rec.sampling_rate, method=method, model=model)
            elapsed = time.perf_counter() - t0
        except Exception as err:  # one bad recording must not lose the whole evaluation
            log.warning("%s: not scored: %s", rec.audio_path, err)
            result.failed.append((rec.name, f"{type(err).__name__}: {err}"))
            continue
        duration = len(wave) / rec.sampling_rate
        result.seconds += elapsed
        result.audio_seconds += duration
        result.recordings += 1
        result.counts = result.counts + score_segmentation(reference, seg.segments, duration, seg.frame_rate)
        ref_hr = _reference_heart_rate(reference)
        if ref_hr is not None:
            result.heart_rate_errors.append(abs(seg.heart_rate - ref_hr))
    return result
