"""Springer's segmenter: envelope features, logistic-regression emissions, duration-dependent HSMM.

D. B. Springer, L. Tarassenko, G. D. Clifford, "Logistic Regression-HSMM-Based Heart Sound
Segmentation", IEEE Trans. Biomed. Eng. 63(4):822-832, 2016. Per 20 ms frame, the four envelopes
of :mod:`.envelopes` are standardised and a multinomial logistic regression (scikit-learn) gives
``P(state | frame)``; divided by the state priors these become emission likelihoods for
:func:`~.hsmm.hsmm_decode`. Springer estimates the heart rate from the homomorphic envelope's
autocorrelation (:func:`~.hsmm.estimate_heart_rate`); on CirCor's children that picks the S1-S2
half cycle in about a quarter of the recordings, so here the rate comes from the autocorrelation of
the regression's P(S1) and the best-scoring of three candidate rates (:func:`~.hsmm.decode_posteriors`),
as for the Mamba model. Springer's model has the four cardiac states; here the regression also learns
CirCor's state 0 (unannotated), so the baseline predicts clean stretches too.

A trained model is a few numbers (scaler, coefficients, priors, duration parameters) saved as
``.npz``; :func:`load_springer` reads one and the package ships ``assets/springer-default.npz``.

Examples
--------
>>> from murmurlm.signal.synth import synth_pcg
>>> train = [synth_pcg(20.0, 4000, heart_rate=hr, seed=i) for i, hr in enumerate((70, 90, 110))]
>>> model = train_springer([(p.waveform, p.sampling_rate, p.segments) for p in train])
>>> test = synth_pcg(20.0, 4000, heart_rate=85, seed=9)
>>> states, hr, systole = model.decode(test.waveform, test.sampling_rate)
>>> bool(abs(hr - 85) < 10)
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from murmurlm.data.circor import Segment
from murmurlm.errors import ConfigError
from murmurlm.signal.segment.envelopes import FEATURE_NAMES, FRAME_RATE, springer_features
from murmurlm.signal.segment.frames import segments_to_frames
from murmurlm.signal.segment.hsmm import NUM_STATES, HSMMParams, decode_posteriors, fit_hsmm_params

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class SpringerModel:
    """A trained Springer segmenter. ``coef`` is ``(5, 4)``, one row per state 0-4."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    priors: np.ndarray
    hsmm: HSMMParams = field(default_factory=HSMMParams)
    frame_rate: int = FRAME_RATE
    use_unannotated: bool = True  # False: decode the four cardiac states only (Springer's original)

    def posteriors(self, features: np.ndarray) -> np.ndarray:
        """``P(state | frame)``, ``(T, 5)``, from standardised envelope features ``(T, 4)``."""
        z = (features - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def decode(self, waveform: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, float, float]:
        """Per-frame states, heart rate (bpm) and systolic interval (s) of one recording."""
        feats = springer_features(waveform, sampling_rate, self.frame_rate)
        post = self.posteriors(feats)
        return decode_posteriors(post, self.priors, self.frame_rate, self.hsmm,
                                 allow_unannotated=self.use_unannotated)

    def save(self, path: str | Path) -> None:
        """Write the model as a small ``.npz`` (numbers only, no pickles)."""
        hsmm = self.hsmm.to_dict()
        np.savez(Path(path), format_version=FORMAT_VERSION, mean=self.mean, scale=self.scale,
                 coef=self.coef, intercept=self.intercept, priors=self.priors,
                 frame_rate=self.frame_rate, use_unannotated=self.use_unannotated,
                 feature_names=np.array(FEATURE_NAMES),
                 hsmm_names=np.array(list(hsmm)), hsmm_values=np.array(list(hsmm.values())))


def load_springer(path: str | Path) -> SpringerModel:
    """Read a model written by :meth:`SpringerModel.save`; a wrong file is a ConfigError."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ConfigError(f"Springer model not found: {path}") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a Springer model .npz ({err})") from None
    needed = ("format_version", "mean", "scale", "coef", "intercept", "priors", "hsmm_names", "hsmm_values")
    missing = [k for k in needed if k not in data]
    if missing:
        raise ConfigError(f"{path}: not a Springer model (missing {', '.join(missing)})")
    if int(data["format_version"]) != FORMAT_VERSION:
        raise ConfigError(f"{path}: format version {int(data['format_version'])}, this murmurlm reads {FORMAT_VERSION}")
    valid = {f.name for f in fields(HSMMParams)}
    hsmm = HSMMParams(**{str(k): float(v) for k, v in zip(data["hsmm_names"], data["hsmm_values"]) if str(k) in valid})
    coef = np.asarray(data["coef"], dtype=np.float64)
    if coef.shape != (NUM_STATES, len(FEATURE_NAMES)):
        raise ConfigError(f"{path}: coefficients of shape {coef.shape}, expected {(NUM_STATES, len(FEATURE_NAMES))}")
    return SpringerModel(
        mean=np.asarray(data["mean"], np.float64), scale=np.asarray(data["scale"], np.float64), coef=coef,
        intercept=np.asarray(data["intercept"], np.float64), priors=np.asarray(data["priors"], np.float64),
        hsmm=hsmm, frame_rate=int(data.get("frame_rate", FRAME_RATE)),
        use_unannotated=bool(data.get("use_unannotated", True)),
    )


def train_springer(examples: Iterable[tuple[np.ndarray, float, Sequence[Segment]]],
                   frame_rate: int = FRAME_RATE, max_frames: int = 400_000, seed: int = 0,
                   use_unannotated: bool = True) -> SpringerModel:
    """Fit the emissions (multinomial logistic regression) and the HSMM parameters.

    Parameters
    ----------
    examples : iterable of ``(waveform, sampling_rate, segments)``
        Annotated recordings; those whose segments contain no S1 are skipped.
    frame_rate : int
        Frames per second (50: 20 ms).
    max_frames : int
        Frames kept for the regression (a seeded random subset when there are more).
    seed : int
        Seed of that subset.
    use_unannotated : bool
        Learn and decode state 0 (unannotated) as well as the four cardiac states.
    """
    from sklearn.linear_model import LogisticRegression

    X, y, segment_lists = [], [], []
    for waveform, rate, segments in examples:
        if not any(s.state == 1 for s in segments):
            continue
        feats = springer_features(waveform, rate, frame_rate)
        states = segments_to_frames(segments, len(feats), frame_rate)
        X.append(feats)
        y.append(states)
        segment_lists.append(list(segments))
    if not X:
        raise ValueError("train_springer: no recording with annotated S1 to train on")
    X_all, y_all = np.concatenate(X), np.concatenate(y)
    if not use_unannotated:
        keep = y_all != 0
        X_all, y_all = X_all[keep], y_all[keep]
    if len(y_all) > max_frames:
        idx = np.random.default_rng(seed).choice(len(y_all), max_frames, replace=False)
        X_all, y_all = X_all[idx], y_all[idx]
    mean, scale = X_all.mean(axis=0), X_all.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    present = np.unique(y_all)
    clf = LogisticRegression(max_iter=500)
    clf.fit((X_all - mean) / scale, y_all)
    coef = np.zeros((NUM_STATES, X_all.shape[1]))
    intercept = np.full(NUM_STATES, -30.0)  # a state never seen in training is (nearly) never emitted
    coef[clf.classes_] = clf.coef_
    intercept[clf.classes_] = clf.intercept_
    counts = np.bincount(y_all, minlength=NUM_STATES).astype(np.float64)
    priors = np.maximum(counts / counts.sum(), 1e-6)
    log.info("Springer emissions trained on %d frames (states present: %s)", len(y_all), present.tolist())
    return SpringerModel(mean=mean, scale=scale, coef=coef, intercept=intercept, priors=priors,
                         hsmm=fit_hsmm_params(segment_lists), frame_rate=frame_rate,
                         use_unannotated=use_unannotated)
