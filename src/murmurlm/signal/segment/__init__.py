"""Heart-cycle segmentation of phonocardiograms: ``pcg_segment`` and its parts.

CirCor's ``.tsv`` files mark S1 (1), systole (2), S2 (3) and diastole (4) in the clean stretches of each
recording and 0 elsewhere. :func:`pcg_segment` reproduces such labels on any recording with one of two
methods, both decoded by the same duration-dependent HSMM (:mod:`.hsmm`):

- ``"springer"``: Springer et al. (IEEE TBME 2016) envelope features and logistic-regression
  emissions (:mod:`.springer`); a model trained on circor-dev ships with the package.
- ``"mamba"``: an SSAMBA-style bidirectional Mamba2 network on log-mel patches (:mod:`.mamba`;
  Shams et al. 2024, arXiv 2405.11831); needs torch and a checkpoint.

Also here: metrics (:mod:`.metrics`), CirCor-format ``.tsv`` output (:mod:`.io`), and, re-exported
from :mod:`murmurlm.signal.cycles` (which reads segmentations, whoever made them), the clean-cycle
functions :func:`clean_stretches`, :func:`crop_to_cycles` and :func:`cycle_windows`.

Examples
--------
>>> from murmurlm.signal.synth import synth_pcg
>>> pcg = synth_pcg(15.0, sampling_rate=4000, heart_rate=80, seed=3)
>>> seg = pcg_segment(pcg.waveform, 4000, method="springer")
>>> 60 < seg.heart_rate < 100, seg.frame_rate
(True, 50)
>>> from murmurlm.signal.segment.metrics import score_segmentation
>>> score_segmentation(pcg.segments, seg.segments, 15.0).summary()["s1_f1"] > 0.9
True
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from murmurlm.data.circor import Segment
from murmurlm.errors import ConfigError
from murmurlm.signal.cycles import clean_stretches, crop_to_cycles, cycle_windows
from murmurlm.signal.segment.frames import frames_to_segments, segments_to_frames
from murmurlm.signal.segment.io import write_tsv

log = logging.getLogger(__name__)

METHODS = ("springer", "mamba")
DEFAULT_ASSETS = {"springer": "springer-default.npz", "mamba": "segmenter-mamba.pt"}

__all__ = [
    "METHODS", "Segmentation", "pcg_segment", "load_segmenter", "default_model_path",
    "clean_stretches", "crop_to_cycles", "cycle_windows", "write_tsv",
    "frames_to_segments", "segments_to_frames",
]


@dataclass
class Segmentation:
    """The result of :func:`pcg_segment`.

    Attributes
    ----------
    segments : list of Segment
        Contiguous stretches covering the recording (CirCor states 0-4, times in seconds).
    heart_rate : float
        Estimated heart rate in beats per minute.
    systolic_interval : float
        Estimated time from the start of S1 to the start of S2, in seconds.
    frame_states : np.ndarray
        The decoded state of every frame (int64).
    frame_rate : int
        Frames per second of ``frame_states`` (50: 20 ms frames).
    """

    segments: list[Segment]
    heart_rate: float
    systolic_interval: float
    frame_states: np.ndarray
    frame_rate: int


def default_model_path(method: str) -> Path:
    """The model shipped with the package for ``method`` (may not exist for ``"mamba"``)."""
    if method not in METHODS:
        raise ConfigError(f"unknown segmentation method {method!r}; valid: {', '.join(METHODS)}")
    return Path(str(resources.files("murmurlm") / "assets" / DEFAULT_ASSETS[method]))


def load_segmenter(path: str | Path) -> Any:
    """Load a segmenter from a file: ``.npz`` (Springer) or ``.pt`` (Mamba)."""
    path = Path(path)
    if path.suffix == ".npz":
        from murmurlm.signal.segment.springer import load_springer
        return load_springer(path)
    if path.suffix == ".pt":
        from murmurlm.signal.segment.mamba import load_mamba_segmenter
        return load_mamba_segmenter(path)
    raise ConfigError(f"{path}: unknown segmenter file type {path.suffix!r}; valid: .npz (springer), .pt (mamba)")


@functools.lru_cache(maxsize=4)
def _default_model(method: str) -> Any:
    path = default_model_path(method)
    if not path.exists():
        raise ConfigError(f"no default {method} segmenter shipped at {path}; train one with "
                          f"'murmurlm segment train --method {method}' and pass it as model=")
    return load_segmenter(path)


def _method_of(model: Any) -> str:
    from murmurlm.signal.segment.springer import SpringerModel
    return "springer" if isinstance(model, SpringerModel) else "mamba"


def pcg_segment(waveform: np.ndarray, sampling_rate: float, method: str = "springer",
                model: Any = None) -> Segmentation:
    """Segment a phonocardiogram into S1, systole, S2, diastole and unannotated (0) stretches.

    Parameters
    ----------
    waveform : np.ndarray
        1-D PCG (any amplitude scale), at least 1 s long.
    sampling_rate : float
        Its rate in Hz (required: CirCor is 4000 Hz).
    method : {"springer", "mamba"}
        The emission model; both decode with the duration-dependent HSMM.
    model : SpringerModel, MambaSegmenter, str or Path, optional
        A trained model or its file; default: the model shipped for ``method``.

    Returns
    -------
    Segmentation
        Segments covering the whole recording, heart rate, systolic interval, per-frame states.

    Examples
    --------
    >>> from murmurlm.signal.synth import synth_pcg
    >>> pcg = synth_pcg(10.0, sampling_rate=4000, heart_rate=100, seed=1)
    >>> seg = pcg_segment(pcg.waveform, 4000)
    >>> seg.segments[0].start, seg.segments[-1].end
    (0.0, 10.0)
    """
    if method not in METHODS:
        raise ConfigError(f"unknown segmentation method {method!r}; valid: {', '.join(METHODS)}")
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"pcg_segment: expected a 1-D waveform, got shape {x.shape}")
    if not np.isfinite(sampling_rate) or sampling_rate <= 0:
        raise ValueError(f"pcg_segment: sampling_rate must be positive Hz, got {sampling_rate!r}")
    if len(x) < sampling_rate:
        raise ValueError(f"pcg_segment: {len(x) / sampling_rate:.2f} s of audio; at least 1 s is needed")
    if not np.all(np.isfinite(x)):
        raise ValueError("pcg_segment: the waveform contains NaN or infinite samples")
    if model is None:
        model = _default_model(method)
    elif isinstance(model, (str, Path)):
        model = load_segmenter(model)
    if _method_of(model) != method:
        raise ConfigError(f"pcg_segment: method={method!r} but the model given is a {_method_of(model)} model")
    states, heart_rate, systolic = model.decode(x, sampling_rate)
    frame_rate = int(model.frame_rate)
    segments = frames_to_segments(states, frame_rate, duration=len(x) / sampling_rate)
    return Segmentation(segments, float(heart_rate), float(systolic), states, frame_rate)
