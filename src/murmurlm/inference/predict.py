"""Predict the 11 murmur features with a compact-model checkpoint.

:func:`load_model` opens a checkpoint (the packaged default when no path is given) as a
:class:`Predictor`: the front end and the model, in eval mode, under ``torch.no_grad``. A recording
is cut into overlapping windows as long as the training crops; the class probabilities of the
windows are averaged, and the checkpoint's murmur scale applied
(:func:`murmurlm.evaluate.patients.scale_murmur`). Patients (several recordings) are combined by
:func:`murmurlm.evaluate.patients.predict_patients`, with the rules stored in the checkpoint.

- :meth:`Predictor.predict_waveform`: one recording -> per-feature class probabilities.
- :func:`predict_recording`: one recording treated as one patient -> PatientPrediction.
- :func:`predict_files`: audio files, each one "patient"; unreadable files are reported and skipped.
- :func:`predict_dataset`: a CirCor-layout folder -> the predictions frame
  (:func:`murmurlm.evaluate.predictions.predictions_frame`), one row per patient.

Examples
--------
>>> import numpy as np
>>> from murmurlm.signal.synth import synth_pcg
>>> predictor = load_model()                      # the packaged default checkpoint
>>> pcg = synth_pcg(6.0, sampling_rate=4000, heart_rate=80, seed=0)
>>> probs = predictor.predict_waveform(pcg.waveform, 4000)
>>> probs["Murmur"].shape, round(float(probs["Murmur"].sum()), 4)
((3,), 1.0)
>>> predict_recording(predictor, pcg.waveform, 4000).labels["Murmur"] in ("Present", "Unknown", "Absent")
True
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from murmurlm.data.audio import read_pcg
from murmurlm.data.circor import CirCorDataset, Problem
from murmurlm.data import labels as L
from murmurlm.data.manifest import open_circor
from murmurlm.errors import DataFormatError, MurmurlmError
from murmurlm.evaluate.aggregate import PatientPrediction
from murmurlm.evaluate.patients import aggregate_recordings, predict_patients, scale_murmur
from murmurlm.signal.features import FrontEnd, compute_features, frame_windows, recording_features

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "murmurlm-compact"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "compact-default.pt"
"""The packaged default model (trained on circor-dev; see ``assets/README.md``)."""


class Predictor:
    """A compact-model checkpoint ready to predict: front end + model in eval mode.

    Attributes
    ----------
    config : dict
        The resolved training config stored in the checkpoint.
    front_end : FrontEnd
        The front end the model was trained with.
    heads : tuple of str
        The model's heads (the 11 features, then auxiliary ones such as Outcome).
    """

    def __init__(self, model, front_end: FrontEnd, window_seconds: float, hop_seconds: float,
                 config: dict | None = None, murmur_rule: str = "any", character_rule: str = "murmur-weighted",
                 murmur_scale: Sequence[float] | None = None, path: Path | None = None, batch_size: int = 64,
                 calibration: Mapping[str, float] | None = None):
        self.model = model.eval()
        self.front_end = front_end
        self.config = config or {}
        self.heads = tuple(model.head_names)
        self.window_seconds, self.hop_seconds = float(window_seconds), float(hop_seconds)
        self.window_frames = max(int(round(window_seconds * front_end.frames_per_second)), model.min_frames)
        self.hop_frames = max(int(round(hop_seconds * front_end.frames_per_second)), 1)
        self.murmur_rule = murmur_rule
        self.character_rule = character_rule
        self.murmur_scale = np.asarray(murmur_scale if murmur_scale is not None else [1.0, 1.0, 1.0], np.float64)
        self.path = path
        self.batch_size = batch_size
        # feature -> temperature of its patient-level probabilities (evaluate.calibration), fitted on
        # validation patients (calibrate_checkpoint); labels never change
        self.calibration = dict(calibration or {})
        # a second opinion on the systolic character from the average heartbeat (models.descriptor_head):
        # the packaged default has one (load_model()); None: the CNN alone
        self.descriptor_head = None

    def __repr__(self) -> str:
        return (f"Predictor({self.path or 'in memory'}, {self.model.num_params} parameters, "
                f"{self.front_end.sample_rate} Hz, window {self.window_frames} frames)")

    # -- features -> probabilities

    def predict_features(self, features: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Per-recording class probabilities from log-mel arrays ``(n_mels, frames)``, P(Murmur)
        with the murmur scale applied (:func:`~murmurlm.evaluate.patients.scale_murmur`).

        All windows of all recordings go through the model in batches of ``batch_size``.
        """
        import torch

        windows = [frame_windows(np.asarray(f, np.float32), self.window_frames, self.hop_frames) for f in features]
        counts = [len(w) for w in windows]
        if not counts:
            return []
        stacked = torch.from_numpy(np.concatenate(windows, axis=0))
        probs: dict[str, list[np.ndarray]] = {h: [] for h in self.heads}
        with torch.no_grad():
            for i in range(0, len(stacked), self.batch_size):
                logits, _ = self.model(stacked[i:i + self.batch_size])
                for h in self.heads:
                    probs[h].append(torch.softmax(logits[h].double(), dim=-1).numpy())
        flat = {h: np.concatenate(v, axis=0) for h, v in probs.items()}
        bounds = np.concatenate([[0], np.cumsum(counts)])
        out = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            out.append(scale_murmur({h: flat[h][a:b].mean(axis=0) for h in self.heads}, self.murmur_scale))
        return out

    def predict_waveform(self, waveform: np.ndarray, sampling_rate: int) -> dict[str, np.ndarray]:
        """Class probabilities of ONE recording, per head, in ``labels.feature(name).classes`` order.

        ``waveform`` is a 1-D float array at any ``sampling_rate`` (it is resampled).
        """
        wave = np.asarray(waveform, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"expected a non-empty 1-D waveform, got shape {wave.shape}")
        feats = compute_features([wave], [int(sampling_rate)], self.front_end)
        return self.predict_features(feats)[0]

    def aggregate(self, recording_probs: Sequence[dict[str, np.ndarray]],
                  descriptors: np.ndarray | None = None, locations: Sequence[str] | None = None) -> PatientPrediction:
        """One patient's prediction from its recordings' probabilities (as :meth:`predict_features`
        returns them: already scaled); with the patient's mean ``descriptors`` and a
        :attr:`descriptor_head`, the systolic character blended with the head's; with each
        recording's site (``locations``), where the murmur is heard
        (:func:`murmurlm.evaluate.patients.locate_murmur`)."""
        character, weight = None, 0.5
        if descriptors is not None and self.descriptor_head is not None:
            character = {f: v[0] for f, v in self.descriptor_head.predict_proba(descriptors).items()}
            weight = float(self.descriptor_head.meta.get("weight", 0.5))
        return aggregate_recordings(recording_probs, self.murmur_rule, self.character_rule, heads=self.heads,
                                    character=character, character_weight=weight, locations=locations,
                                    calibration=self.calibration)

    def predict_patients(self, recordings_by_patient, murmur_scale: Sequence[float] | None = None,
                         locations: Mapping[str, Sequence[str]] | None = None):
        """The predictions frame of patients (:func:`murmurlm.evaluate.patients.predict_patients`
        with this model's rules and heads). ``murmur_scale``: None for probabilities of
        :meth:`predict_features` (already scaled); the scale to apply to raw ones. ``locations``:
        patient id -> its recordings' sites (adds where the murmur is heard)."""
        return predict_patients(recordings_by_patient, self.murmur_rule, self.character_rule,
                                murmur_scale=murmur_scale, heads=self.heads, locations=locations,
                                calibration=self.calibration)


def save_model(path: str | Path, model, front_end: FrontEnd, *, window_seconds: float, hop_seconds: float,
               config: dict | None = None, murmur_rule: str = "any", character_rule: str = "murmur-weighted",
               murmur_scale: Sequence[float] | None = None, metrics: dict | None = None, epoch: int | None = None,
               member_configs: Sequence[dict] | None = None) -> None:
    """Write the inference checkpoint :func:`load_model` reads (atomically): weights, the model and
    front-end configs, the window settings, the aggregation rules and the resolved training config.

    ``model`` is a :class:`CompactModel`, or a :class:`CompactEnsemble` whose members are stored
    one by one (``members``: weights and model config each; ``member_configs``: the resolved
    training config of each, kept beside ``config``)."""
    from dataclasses import asdict

    from murmurlm.config import config_to_dict
    from murmurlm.models.compact import CompactEnsemble
    from murmurlm.train.checkpoint import save_checkpoint

    weights: dict = {"model": model.state_dict(), "model_config": config_to_dict(model.config)}
    if isinstance(model, CompactEnsemble):
        weights = {"members": [{"model": m.state_dict(), "model_config": config_to_dict(m.config)}
                               for m in model.members],
                   "model_config": config_to_dict(model.config), "member_configs": list(member_configs or [])}
    save_checkpoint(
        path, kind=CHECKPOINT_KIND, epoch=epoch, metrics=metrics, **weights,
        front_end=asdict(front_end), config=config or {},
        inference={"window_seconds": float(window_seconds), "hop_seconds": float(hop_seconds),
                   "murmur_rule": murmur_rule, "character_rule": character_rule,
                   "murmur_scale": [float(v) for v in murmur_scale] if murmur_scale is not None else [1.0, 1.0, 1.0]},
    )


def _build_compact(model_config: dict, state: dict):
    from murmurlm.models.compact import CompactConfig, CompactModel

    mc = dict(model_config)
    mc["channels"] = tuple(mc["channels"])
    model = CompactModel(CompactConfig(**{f.name: mc[f.name] for f in fields(CompactConfig) if f.name in mc}))
    model.load_state_dict(state)
    return model


def combine_models(paths: Sequence[str | Path], out: str | Path,
                   murmur_scale: Sequence[float] | None = None) -> Predictor:
    """Combine compact checkpoints of one config (e.g. several seeds) into one ensemble checkpoint.

    The members must share the front end, the window settings and the aggregation rules (checked);
    the murmur scale is ``murmur_scale`` or, by default, the first member's. Returns the loaded
    ensemble :class:`Predictor`.
    """
    from murmurlm.models.compact import CompactEnsemble

    if len(paths) < 2:
        raise MurmurlmError(f"an ensemble needs two or more checkpoints, got {len(paths)}")
    predictors = [load_model(p) for p in paths]
    first = predictors[0]
    for p in predictors[1:]:
        for what, a, b in [("front end", first.front_end, p.front_end),
                           ("window", (first.window_seconds, first.hop_seconds), (p.window_seconds, p.hop_seconds)),
                           ("aggregation rules", (first.murmur_rule, first.character_rule),
                            (p.murmur_rule, p.character_rule)),
                           ("heads", first.heads, p.heads)]:
            if a != b:
                raise MurmurlmError(f"{p.path}: its {what} differs from {first.path}'s ({b} vs {a}); "
                                    "an ensemble combines models of one config")
    members = [m for p in predictors for m in (p.model.members if isinstance(p.model, CompactEnsemble) else [p.model])]
    ensemble = CompactEnsemble(members)
    save_model(out, ensemble, first.front_end, window_seconds=first.window_seconds,
               hop_seconds=first.hop_seconds, config=first.config, murmur_rule=first.murmur_rule,
               character_rule=first.character_rule,
               murmur_scale=murmur_scale if murmur_scale is not None else first.murmur_scale,
               member_configs=[p.config for p in predictors])
    log.info("ensemble of %d models written to %s", len(members), out)
    return load_model(out)


def load_model(path: str | Path | None = None, threads: int | None = None, descriptor_head: Any = "default") -> Predictor:
    """Load a compact checkpoint (``best.pt`` of a run, or the packaged default when None).

    ``descriptor_head``: ``"default"`` gives the packaged default its packaged descriptor head
    (:mod:`murmurlm.models.descriptor_head`) and any other checkpoint none; a head, or a head file,
    is attached as given; ``None``: the CNN alone."""
    import torch

    from murmurlm.train.checkpoint import load_checkpoint

    if threads is not None:
        torch.set_num_threads(threads)
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if path.is_dir():
        path = path / "best.pt"
    if not path.exists():
        hint = " (the packaged default is missing; train one with `murmurlm train`)" if path == DEFAULT_CHECKPOINT else ""
        raise MurmurlmError(f"model checkpoint not found: {path}{hint}")
    ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND)
    try:
        if "members" in ckpt:
            from murmurlm.models.compact import CompactEnsemble

            model = CompactEnsemble([_build_compact(m["model_config"], m["model"]) for m in ckpt["members"]])
        else:
            model = _build_compact(ckpt["model_config"], ckpt["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise MurmurlmError(f"{path}: not a usable compact checkpoint ({type(err).__name__}: {err})") from None
    fe = FrontEnd(**ckpt["front_end"])
    # save_model always writes the window settings; the rules and the murmur scale may be missing
    # from older checkpoints, and then take Predictor's defaults
    inf = ckpt.get("inference", {})
    missing = [k for k in ("window_seconds", "hop_seconds") if k not in inf]
    if missing:
        raise MurmurlmError(f"{path}: not a usable compact checkpoint (its inference settings lack "
                            f"{', '.join(missing)}; save_model writes them)")
    optional = {k: inf[k] for k in ("murmur_rule", "character_rule", "murmur_scale", "calibration") if k in inf}
    predictor = Predictor(model, fe, window_seconds=inf["window_seconds"], hop_seconds=inf["hop_seconds"],
                          config=ckpt.get("config", {}), path=path, **optional)
    from murmurlm.models.descriptor_head import DescriptorHead, load_descriptor_head

    if isinstance(descriptor_head, str) and descriptor_head == "default":
        predictor.descriptor_head = load_descriptor_head() if path == DEFAULT_CHECKPOINT else None
    elif descriptor_head is not None:
        predictor.descriptor_head = descriptor_head if isinstance(descriptor_head, DescriptorHead) else \
            load_descriptor_head(descriptor_head)
    return predictor


def calibrate_checkpoint(path: str | Path, dataset, patient_ids: Sequence[str],
                         descriptor_head: Any = None, progress: bool = False) -> dict[str, float]:
    """Fit one temperature per feature (and Outcome) on the patient-level probabilities of
    ``patient_ids`` (validation patients the model did not train on;
    :func:`murmurlm.evaluate.calibration.fit_temperature`) and store them in the checkpoint at
    ``path`` (``inference.calibration``), which :func:`load_model` then applies to every patient
    answer. The labels, and so every accuracy, stay as they were. Returns the temperatures."""
    from murmurlm.evaluate.calibration import fit_temperature
    from murmurlm.evaluate.predictions import probability_matrix
    from murmurlm.train.checkpoint import atomic_save, load_checkpoint

    model = load_model(path, descriptor_head=descriptor_head)
    model.calibration = {}
    frame, _ = predict_dataset(model, dataset, patient_ids, progress=progress)
    truth = {p.patient_id: p.labels for p in open_circor(dataset).patients}
    temperatures = {}
    for feat in (*L.FEATURES, L.OUTCOME):
        probs = probability_matrix(frame, feat.name)
        if probs is None:
            continue
        idx = np.array([feat.classes.index(feat.normalise(truth[str(pid)][feat.name])) for pid in frame.index])
        temperatures[feat.name] = round(fit_temperature(probs, idx), 4)
    ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND)
    ckpt.setdefault("inference", {})["calibration"] = temperatures
    atomic_save(ckpt, path)
    return temperatures


def predict_recording(model: Predictor, waveform: np.ndarray, sampling_rate: int,
                      descriptors: np.ndarray | None = None,
                      probs: dict[str, np.ndarray] | None = None) -> PatientPrediction:
    """One recording as one "patient": aggregated labels (consistent) and probabilities. With a
    :attr:`Predictor.descriptor_head`, the recording's average heartbeat gives the head its
    ``descriptors`` (computed here, with cycles from the packaged Mamba segmenter at 4 kHz, when
    not given). ``probs``: the recording's :meth:`Predictor.predict_waveform`, when already made."""
    if probs is None:
        probs = model.predict_waveform(waveform, sampling_rate)
    if model.descriptor_head is None:
        descriptors = None
    elif descriptors is None:
        descriptors = recording_descriptor_vector(waveform, sampling_rate)
    if descriptors is not None:
        descriptors = np.atleast_2d(descriptors)
    return model.aggregate([probs], descriptors)


def recording_descriptor_vector(waveform: np.ndarray, sampling_rate: int, segmenter: str = "mamba") -> np.ndarray:
    """The descriptor vector of one recording's average heartbeat (a whole-recording fallback
    when the segmenter finds fewer than 2 usable cycles or fails)."""
    from murmurlm.signal.descriptors import descriptor_vector
    from murmurlm.signal.filter import pcg_resample
    from murmurlm.signal.heartbeat import pcg_heartbeat
    from murmurlm.signal.segment import pcg_segment

    wave = np.asarray(waveform, dtype=np.float64)
    if sampling_rate != 4000:
        wave = pcg_resample(wave, sampling_rate, 4000)
    wave = wave.astype(np.float32)
    try:
        segments = pcg_segment(wave, 4000, method=segmenter).segments
    except Exception as err:  # the description falls back; the prediction still comes
        log.warning("segmentation for the descriptors failed: %s", err)
        segments = []
    return descriptor_vector(pcg_heartbeat(wave, 4000, segments))


def predict_files(model: Predictor, paths: Iterable[str | Path]) -> tuple[dict[str, PatientPrediction], list[Problem]]:
    """Predict audio files (WAV/FLAC, any rate, mono or mixed down), each as one patient keyed by its
    file stem. A file that cannot be read is reported as a Problem (severity "error") and skipped."""
    results: dict[str, PatientPrediction] = {}
    problems: list[Problem] = []
    for p in paths:
        p = Path(p)
        try:
            rec = read_pcg(p)  # RecordingError for a missing, broken, empty, 8-bit or NaN file
            results[p.stem] = predict_recording(model, rec.waveform, rec.sampling_rate)  # resampled once
        except (DataFormatError, ValueError) as err:
            message = err.message if isinstance(err, DataFormatError) else str(err)
            problems.append(Problem(p, message, None, "error"))
            log.warning("skipped %s: %s", p, message)
        except Exception as err:  # soundfile raises its own types for broken files
            problems.append(Problem(p, f"cannot read audio: {err}", None, "error"))
            log.warning("skipped %s: %s", p, err)
    return results, problems


def predict_dataset(model: Predictor, root: str | Path | CirCorDataset, patient_ids: Sequence[str] | None = None,
                    progress: bool = True, cache_dir: str | Path | None = None,
                    use_cache: bool = False, descriptor_head: Any = "model",
                    segmenter: str = "mamba") -> tuple["object", list[Problem]]:
    """Predict every patient (or ``patient_ids``) of a CirCor-layout folder (or of its manifest
    folder, or of a loaded dataset: :func:`murmurlm.data.manifest.open_circor`).

    Returns the predictions frame (one row per patient, labels and ``P(feature=class)`` columns,
    with ``Murmur locations`` and ``Most audible location`` from each recording's site:
    :func:`murmurlm.evaluate.patients.locate_murmur`) and the problems met: unusable patients and unreadable recordings are reported and skipped;
    a patient with no readable recording gets no row.

    ``descriptor_head`` (:class:`murmurlm.models.descriptor_head.DescriptorHead`; ``"model"``: the
    model's own, :attr:`Predictor.descriptor_head`; None: none): the systolic character also from
    each patient's average heartbeats (cycles from the packaged ``segmenter``), blended with the
    model's at the head's weight; whether there is a murmur stays the model's, except where the
    quality rule applies (the recordings are segmented, so their quality is known: a patient whose
    recordings are all ``poor`` is ``Unknown``, :func:`murmurlm.evaluate.patients.apply_quality_rule`).
    """
    data = open_circor(root, patient_ids=patient_ids)
    problems = list(data.problems)
    recordings = data.recordings

    def skip(rec, err):
        problems.append(Problem(getattr(err, "path", rec.audio_path), getattr(err, "message", str(err)), None, "error"))
        log.warning("skipped recording %s: %s", rec.name, err)

    feats = recording_features(recordings, model.front_end, cache_dir=cache_dir, use_cache=use_cache,
                               progress=progress, on_error=skip)
    ok = [i for i, f in enumerate(feats) if f is not None]
    probs = dict(zip(ok, model.predict_features([feats[i] for i in ok])))
    if isinstance(descriptor_head, str) and descriptor_head == "model":
        descriptor_head = model.descriptor_head
    character = None
    flags: dict[str, str] = {}
    if descriptor_head is not None:
        from murmurlm.train.descriptors import patient_matrix, recording_descriptors

        vectors = recording_descriptors([recordings[i] for i in ok], segmenter, progress=progress, quality=flags)
        described = [p for p in data.patients if any(r.name in vectors for r in p.recordings)]
        if described:
            rows = descriptor_head.predict_proba(patient_matrix(described, vectors))
            character = {p.patient_id: {f: v[k] for f, v in rows.items()} for k, p in enumerate(described)}
    by_patient: dict[str, list[dict[str, np.ndarray]]] = {}
    sites: dict[str, list[str]] = {}
    quality: dict[str, list[str]] = {}
    i = 0
    for patient in data.patients:
        kept = [j for j in range(i, i + len(patient.recordings)) if j in probs]
        recs = [probs[j] for j in kept]
        sites[patient.patient_id] = [recordings[j].location for j in kept]
        if flags:  # the quality rule, where the recordings were segmented (with the descriptor head)
            quality[patient.patient_id] = [flags[recordings[j].name] for j in kept if recordings[j].name in flags]
        i += len(patient.recordings)
        if not recs:
            problems.append(Problem(data.root, f"patient {patient.patient_id}: no readable recording; not predicted",
                                    None, "error"))
        by_patient[patient.patient_id] = recs
    weight = float(descriptor_head.meta.get("weight", 0.5)) if character is not None else 0.5
    return predict_patients(by_patient, model.murmur_rule, model.character_rule, heads=model.heads,
                            character=character, character_weight=weight, locations=sites,
                            quality=quality or None, calibration=model.calibration), problems
