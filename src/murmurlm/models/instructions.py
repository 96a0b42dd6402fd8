"""Instruction data for audio-LM fine-tuning: CirCor recordings -> (audio window, question, answer).

For every recording (or rather every audio window of it) one question is asked per feature — "What
is the timing of the systolic murmur?" -> "Holosystolic", or the explicit "no systolic murmur" —
and, optionally, one structured question whose answer is the whole report. Question and answer
texts live in a prompt file (``configs/audio_lm/prompts.yaml``, :func:`load_prompts`), never in code.

Audio is resampled to the model's rate (16 kHz) with :func:`murmurlm.signal.filter.pcg_resample`
and cut to the model's window (Qwen2-Audio and Whisper: 30 s; CirCor recordings run to 64 s) by
one of the :class:`AudioOptions` modes:

- ``"window"``: consecutive windows (``hop_seconds`` apart); the last one is aligned to the end of
  the recording, so every window is full length when the recording is longer than one window.
- ``"cycles"``: windows made of whole cardiac cycles (S1 onset to next S1 onset, from the ``.tsv``
  segmentation: :data:`murmurlm.signal.cycles.S1_TO_S1`), as many as fit in one window
  (:func:`murmurlm.signal.cycles.fit_cycle_windows`); recordings without a segmentation fall back to
  ``"window"``.
- ``"predicted-cycles"``: as ``"cycles"``, with the cycles found by the packaged Mamba segmenter
  (:func:`murmurlm.signal.segment.pcg_segment`) instead of the ``.tsv`` (works on new recordings;
  costs a segmentation pass over the audio when the dataset is built).
- ``"first"``: the first window only (cheap; one example per recording and question).

**Band mapping** (``AudioOptions.playback``): with ``playback = 1`` (the default) a recording is
resampled to the model's rate, so a murmur's 25-800 Hz fall in the lowest few of Whisper's 80 mel
bands (0-8 kHz, dense only where speech is). With ``playback = k`` the recording is read at
``sampling_rate / k`` and handed over *as if* it were at ``sampling_rate``: played k times faster.
For k = 4 a 4 kHz CirCor recording goes in sample for sample, 25-800 Hz land at 100-3200 Hz where
the speech mel bands are dense, and a 5 s window of heart sound is 1.25 s of encoder input (4x
fewer positions). Windows, hops and cycles stay in seconds of the recording; the model sees
``window_seconds / playback``. The mapping is part of the model: a fine-tuned adapter records it
(``murmurlm_backend.json``) and is served with it.

Audio is read lazily, when an example is accessed, so a dataset of all of CirCor costs little memory.

Examples
--------
>>> from murmurlm.signal.synth import synth_pcg, MurmurSpec
>>> prompts = load_prompts(DEFAULT_PROMPTS)
>>> prompts.answer("Systolic murmur timing", "nan")
'no systolic murmur'
>>> pcg = synth_pcg(12.0, 4000, murmurs=(MurmurSpec(timing="Holosystolic"),), seed=0)
>>> audio = to_model_rate(pcg.waveform, 4000, 16000)
>>> opts = AudioOptions(window_seconds=5.0)
>>> [(round(a / 16000, 1), round(b / 16000, 1)) for a, b in window_bounds(audio.size, 16000, opts)]
[(0.0, 5.0), (5.0, 10.0), (7.0, 12.0)]
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

from murmurlm.config import read_yaml_mapping
from murmurlm.data import labels as L
from murmurlm.data.circor import Patient, Recording, Segment
from murmurlm.errors import ConfigError
from murmurlm.models.audio_lm import Example
from murmurlm.signal.cycles import S1_TO_S1, fit_cycle_windows
from murmurlm.signal.filter import pcg_resample

log = logging.getLogger(__name__)

# The shipped prompt file (package data of murmurlm.recipes; a path, so no upward import).
DEFAULT_PROMPTS = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "audio_lm" / "prompts.yaml"
"""The prompt file of a source checkout."""

REPORT_TASK = "report"
"""``Example.meta["task"]`` of the whole-report question (feature questions carry the feature name)."""


# --- prompts ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptTemplates:
    """Question and answer texts (see ``configs/audio_lm/prompts.yaml`` for the meaning of each)."""

    questions: dict[str, str]
    answers: dict[str, dict[str, str]] = field(default_factory=dict)
    system: str | None = None
    preamble: str = ""
    location_names: dict[str, str] = field(default_factory=dict)
    report_question: str | None = None
    report_line: str = "{feature}: {answer}"
    source: str = "<memory>"

    def answer(self, feature: str, cls: str) -> str:
        """The answer text for class ``cls`` of ``feature``."""
        f = L.feature(feature)
        cls = f.normalise(cls)
        return self.answers.get(f.name, {}).get(cls, cls)

    def candidates(self, feature: str) -> list[str]:
        """All answer texts of ``feature``, in ``labels.feature(feature).classes`` order."""
        return [self.answer(feature, c) for c in L.feature(feature).classes]

    def parse_answer(self, feature: str, text: str) -> str | None:
        """The class whose answer text is ``text`` (case and surrounding space ignored), else None."""
        wanted = text.strip().lower().rstrip(".")
        for cls, ans in zip(L.feature(feature).classes, self.candidates(feature)):
            if ans.strip().lower() == wanted:
                return cls
        return None

    def question(self, feature: str, location: str | None = None) -> str:
        """The question about ``feature`` for a recording at ``location`` (preamble included)."""
        return self._preamble(location) + self.questions[L.feature(feature).name]

    def report(self, labels: dict[str, str], features: Sequence[str] = L.FEATURE_NAMES) -> str:
        """The whole-report answer: one ``report_line`` per feature."""
        return "\n".join(
            self.report_line.format(feature=f, answer=self.answer(f, labels[f])) for f in features
        )

    def report_prompt(self, location: str | None = None) -> str:
        if self.report_question is None:
            raise ConfigError(f"{self.source}: no report question (key report.question)")
        return self._preamble(location) + self.report_question

    def parse_report(self, text: str, features: Sequence[str] = L.FEATURE_NAMES) -> dict[str, str | None]:
        """Read a generated report back: feature -> class (None where missing or not a class)."""
        out: dict[str, str | None] = {f: None for f in features}
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() in out:
                out[name.strip()] = self.parse_answer(name.strip(), value)
        return out

    def _preamble(self, location: str | None) -> str:
        if not self.preamble:
            return ""
        loc = location or "Phc"
        return self.preamble.format(location=loc, location_name=self.location_names.get(loc, loc))


def load_prompts(path: str | Path, features: Sequence[str] = L.FEATURE_NAMES) -> PromptTemplates:
    """Read and validate a prompt file; errors name the file and the key at fault."""
    path = Path(path)
    data = read_yaml_mapping(path, "prompt file")
    if data is None:
        raise ConfigError(f"{path}: top level must be a mapping")
    known = {"system", "preamble", "location_names", "questions", "answers", "report"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")

    questions = data.get("questions") or {}
    if not isinstance(questions, dict):
        raise ConfigError(f"{path}: questions must map feature name -> question")
    for name in questions:
        _check_feature(path, f"questions.{name}", name)
    missing = [f for f in features if f not in questions]
    if missing:
        raise ConfigError(f"{path}: questions missing for {', '.join(missing)}")

    answers: dict[str, dict[str, str]] = {}
    for name, mapping in (data.get("answers") or {}).items():
        f = _check_feature(path, f"answers.{name}", name)
        if not isinstance(mapping, dict):
            raise ConfigError(f"{path}: answers.{name} must map class -> answer text")
        answers[name] = {}
        for cls, text in mapping.items():
            cls = "nan" if cls is None or (isinstance(cls, float) and np.isnan(cls)) else str(cls)
            if cls not in f.classes:
                raise ConfigError(f"{path}: answers.{name}: {cls!r} is not a class; valid: {', '.join(f.classes)}")
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{path}: answers.{name}.{cls}: answer must be non-empty text")
            answers[name][cls] = text.strip()

    report = data.get("report") or {}
    if not isinstance(report, dict):
        raise ConfigError(f"{path}: report must be a mapping with question and line")
    location_names = {str(k): str(v) for k, v in (data.get("location_names") or {}).items()}
    prompts = PromptTemplates(
        questions={str(k): str(v) for k, v in questions.items()},
        answers=answers,
        system=data.get("system"),
        preamble=str(data.get("preamble") or ""),
        location_names=location_names,
        report_question=report.get("question"),
        report_line=str(report.get("line", "{feature}: {answer}")),
        source=str(path),
    )
    for name in features:
        cands = prompts.candidates(name)
        if len({c.strip().lower() for c in cands}) != len(cands):
            raise ConfigError(f"{path}: answers of {name!r} are not distinct: {cands}")
    try:
        prompts.question(features[0], "MV")
        prompts.report(dict.fromkeys(features, "nan") | {"Murmur": "Absent"}, features)
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"{path}: bad placeholder in preamble or report.line: {err}") from None
    return prompts


def _check_feature(path: Path, where: str, name: str) -> L.Feature:
    try:
        return L.feature(name)
    except L.LabelError as err:
        raise ConfigError(f"{path}: {where}: {err}") from None


AUDIO_MODES = ("window", "cycles", "predicted-cycles", "first")


# --- audio ---------------------------------------------------------------------------------------------
@dataclass
class AudioOptions:
    """How recordings become model inputs."""

    sampling_rate: int = 16000  # the model's rate (Qwen2-Audio, Whisper: 16 kHz)
    mode: Literal["window", "cycles", "predicted-cycles", "first"] = "window"  # see the module docstring
    window_seconds: float = 30.0  # model window; longer recordings are split (Qwen2-Audio: 30 s)
    hop_seconds: float | None = None  # window start to start; None: = window_seconds (no overlap)
    min_seconds: float = 1.0  # shorter recordings are skipped (and logged)
    max_windows: int | None = None  # per recording; None: all
    playback: float = 1.0  # band mapping: 1 resamples to sampling_rate; k reads at sampling_rate / k and plays k x faster

    def __post_init__(self) -> None:
        if self.playback < 1.0 or abs(self.sampling_rate / self.playback - round(self.sampling_rate / self.playback)) > 1e-6:
            raise ValueError(f"playback must be >= 1 and divide sampling_rate={self.sampling_rate} into a whole "
                             f"rate (e.g. 4: read at {self.sampling_rate // 4} Hz), got {self.playback}")
        if self.mode not in AUDIO_MODES:
            raise ValueError(f"audio mode {self.mode!r} is not one of {', '.join(AUDIO_MODES)}")
        if self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {self.window_seconds}")
        if self.hop_seconds is not None and self.hop_seconds <= 0:
            raise ValueError(f"hop_seconds must be > 0, got {self.hop_seconds}")
        if self.min_seconds < 0 or self.min_seconds > self.window_seconds:
            raise ValueError(f"min_seconds must be in [0, window_seconds], got {self.min_seconds}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"max_windows must be >= 1 or null, got {self.max_windows}")


def read_rate(options: AudioOptions) -> int:
    """The rate a recording is read at: the model's, divided by the playback factor.

    >>> read_rate(AudioOptions()), read_rate(AudioOptions(playback=4))
    (16000, 4000)
    """
    return int(round(options.sampling_rate / options.playback))


def recording_segments(rec: Recording, options: AudioOptions) -> Sequence[Segment]:
    """The segmentation a recording's windows are cut by: the ``.tsv`` (mode ``cycles``), the packaged
    Mamba segmenter's (``predicted-cycles``), or none (the other modes)."""
    if options.mode == "cycles":
        return rec.load_segments()
    if options.mode == "predicted-cycles":
        from murmurlm.signal.segment import pcg_segment

        return pcg_segment(rec.load_audio(), rec.sampling_rate, method="mamba").segments
    return ()


def to_model_rate(waveform: np.ndarray, sampling_rate: int, target_rate: int = 16000) -> np.ndarray:
    """Resample a PCG to the model's rate (polyphase filter), as float32."""
    return np.asarray(pcg_resample(np.asarray(waveform, dtype=np.float32), int(sampling_rate), int(target_rate)),
                      dtype=np.float32)


def window_bounds(num_samples: int, sampling_rate: int, options: AudioOptions,
                  segments: Sequence[Segment] = ()) -> list[tuple[int, int]]:
    """Sample ranges ``(start, end)`` of the windows of a recording ``num_samples`` long."""
    size = int(round(options.window_seconds * sampling_rate))
    if num_samples < options.min_seconds * sampling_rate or num_samples == 0:
        return []
    if options.mode in ("cycles", "predicted-cycles"):
        bounds = fit_cycle_windows(segments, sampling_rate, options.window_seconds, num_samples, rule=S1_TO_S1)
        if not bounds:  # fewer than two S1 onsets in the recording
            bounds = _sliding(num_samples, size, options, sampling_rate)
        else:  # drop short leftovers (a last cycle or two), keeping at least one window
            long_enough = [(a, b) for a, b in bounds if b - a >= options.min_seconds * sampling_rate]
            bounds = long_enough or bounds[:1]
    elif options.mode == "first":
        bounds = [(0, min(size, num_samples))]
    else:
        bounds = _sliding(num_samples, size, options, sampling_rate)
    if options.max_windows is not None:
        bounds = bounds[: options.max_windows]
    return bounds


def _sliding(n: int, size: int, options: AudioOptions, rate: int) -> list[tuple[int, int]]:
    if n <= size:
        return [(0, n)]
    hop = int(round((options.hop_seconds or options.window_seconds) * rate))
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:
        starts.append(n - size)  # the last window ends with the recording
    return [(s, s + size) for s in starts]


@functools.lru_cache(maxsize=16)
def _load_at_rate(path: str, sampling_rate: int, expected_samples: int | None, target_rate: int) -> np.ndarray:
    from murmurlm.data.circor import read_audio

    audio = read_audio(path, expected_rate=sampling_rate, expected_samples=expected_samples)
    return to_model_rate(audio, sampling_rate, target_rate)


def load_recording(recording: Recording, target_rate: int = 16000) -> np.ndarray:
    """A recording's waveform at ``target_rate`` (the last few are cached)."""
    return _load_at_rate(str(recording.audio_path), recording.sampling_rate, recording.num_samples, target_rate)


# --- examples ------------------------------------------------------------------------------------------
def recording_labels(patient: Patient, recording: Recording, rule: str = "patient") -> dict[str, str]:
    """The labels a recording is trained with.

    ``"patient"``: the patient's labels, as CirCor gives them. ``"location"``: a patient whose murmur
    is not audible at this recording's location (``Murmur locations``) gets Murmur "Absent" and no
    murmur character there.
    """
    if rule == "patient":
        return dict(patient.labels)
    if rule == "location":
        if patient.labels.get("Murmur") == "Present" and recording.location not in patient.murmur_locations:
            return L.make_consistent({**patient.labels, "Murmur": "Absent"})
        return dict(patient.labels)
    raise ConfigError(f"label rule {rule!r} is not one of patient, location")


@dataclass(frozen=True)
class _Item:
    recording: int  # index into InstructionDataset.recordings
    start: int  # samples at the model rate
    end: int
    window: int
    task: str  # a feature name or REPORT_TASK


class InstructionDataset:
    """Instruction examples over CirCor patients, read lazily (a ``Sequence`` of :class:`Example`).

    One item per (recording window, question). ``features`` are the questions asked; ``report``
    adds the whole-report question (the one-pass answer); ``questions=False`` leaves out the
    per-feature questions (one-pass training: one item per window). Usable directly with a torch DataLoader and a backend's
    ``collate``.
    """

    def __init__(self, patients: Iterable[Patient], prompts: PromptTemplates, audio: AudioOptions,
                 features: Sequence[str] = L.FEATURE_NAMES, report: bool = False,
                 label_rule: str = "patient", questions: bool = True):
        self.prompts = prompts
        self.audio = audio
        self.features = tuple(L.feature(f).name for f in features)
        self.report = report
        self.label_rule = label_rule
        self.recordings: list[tuple[Patient, Recording]] = []
        self.items: list[_Item] = []
        skipped = 0
        for patient in patients:
            for rec in patient.recordings:
                bounds = self._bounds(rec)
                if not bounds:
                    skipped += 1
                    continue
                r = len(self.recordings)
                self.recordings.append((patient, rec))
                tasks = [*(self.features if questions else ()), *([REPORT_TASK] if report else [])]
                for w, (a, b) in enumerate(bounds):
                    self.items.extend(_Item(r, a, b, w, t) for t in tasks)
        if skipped:
            log.warning("skipped %d recording(s) shorter than %.1f s", skipped, audio.min_seconds)

    def _bounds(self, rec: Recording) -> list[tuple[int, int]]:
        rate = read_rate(self.audio)
        if rec.num_samples is not None:
            n = int(np.ceil(rec.num_samples * rate / rec.sampling_rate))
        else:
            n = load_recording(rec, rate).size
        return window_bounds(n, rate, self.audio, recording_segments(rec, self.audio))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Example:
        item = self.items[index]
        patient, rec = self.recordings[item.recording]
        audio = load_recording(rec, read_rate(self.audio))[item.start: item.end]
        labels = recording_labels(patient, rec, self.label_rule)
        meta = {"patient_id": patient.patient_id, "recording": rec.name, "location": rec.location,
                "window": item.window, "task": item.task}
        if item.task == REPORT_TASK:
            return Example(audio, self.prompts.report_prompt(rec.location),
                           self.prompts.report(labels, self.features), self.prompts.system, meta)
        meta["label"] = labels[item.task]
        return Example(audio, self.prompts.question(item.task, rec.location),
                       self.prompts.answer(item.task, labels[item.task]), self.prompts.system, meta)


def feature_examples(audio: np.ndarray, labels: dict[str, str], prompts: PromptTemplates,
                     features: Sequence[str] = L.FEATURE_NAMES, location: str | None = None,
                     report: bool = False) -> list[Example]:
    """All instruction examples for one audio window with known labels (synthetic data, tests)."""
    out = [Example(audio, prompts.question(f, location), prompts.answer(f, labels[f]), prompts.system,
                   {"task": f, "label": L.feature(f).normalise(labels[f])}) for f in features]
    if report:
        out.append(Example(audio, prompts.report_prompt(location), prompts.report(labels, features),
                           prompts.system, {"task": REPORT_TASK}))
    return out


# --- closed-set prediction -------------------------------------------------------------------------------
def _windows(audio: np.ndarray, audio_options: AudioOptions, segments: Sequence[Segment]) -> list[np.ndarray]:
    rate = read_rate(audio_options)
    bounds = window_bounds(audio.size, rate, audio_options, segments)
    if not bounds:  # too short for the options: score what there is
        bounds = [(0, min(audio.size, int(audio_options.window_seconds * rate)))]
    return [audio[a:b] for a, b in bounds]


def report_probabilities(backend, audio: np.ndarray, prompts: PromptTemplates, audio_options: AudioOptions,
                         features: Sequence[str] = L.FEATURE_NAMES, location: str | None = None,
                         segments: Sequence[Segment] = (), batch_size: int = 8) -> dict[str, np.ndarray]:
    """Closed-set class probabilities of one recording from the **one-pass** answer: the whole
    structured report (:meth:`PromptTemplates.report`, one line per feature) asked once.

    The report is scored line by line, left to right, as a greedy decoder would write it: for
    feature *k* every class's line is scored after the lines already chosen (a
    :class:`~murmurlm.models.audio_lm.Continuation`, without the end-of-answer token, except for the
    last line, which ends the answer), the softmax over the classes is that feature's probability
    (mean over the recording's windows), and its most probable line is kept for the next ones. So
    every class gets a probability, never an unparseable answer, and the result has the shape and
    class order of :func:`recording_probabilities`.
    """
    from murmurlm.models.audio_lm import Continuation

    windows = _windows(audio, audio_options, segments)
    names = [L.feature(f).name for f in features]
    question = prompts.report_prompt(location)
    written = ""
    out = {}
    for k, name in enumerate(names):
        last = k == len(names) - 1
        lines = [prompts.report_line.format(feature=name, answer=a) for a in prompts.candidates(name)]
        cands = [written + line if last else Continuation(written + line + "\n") for line in lines]
        probs = backend.score_tasks(windows, [(question, cands)], system=prompts.system, batch_size=batch_size)[0]
        out[name] = probs.mean(axis=0)
        written += lines[int(np.argmax(out[name]))] + "\n"
    return out


def recording_probabilities(backend, audio: np.ndarray, prompts: PromptTemplates, audio_options: AudioOptions,
                            features: Sequence[str] = L.FEATURE_NAMES, location: str | None = None,
                            segments: Sequence[Segment] = (), batch_size: int = 8) -> dict[str, np.ndarray]:
    """Closed-set class probabilities of one recording (``audio`` at :func:`read_rate`: the model
    rate, or below it by the playback factor).

    Every window is scored for every feature (:meth:`AudioLMBackend.score`); the recording's
    probabilities are the mean over its windows. Returns feature -> ``(num_classes,)`` in
    ``labels.feature(name).classes`` order — the input of ``evaluate.aggregate.aggregate_patient``
    once stacked over a patient's recordings.
    """
    windows = _windows(audio, audio_options, segments)
    names = [L.feature(f).name for f in features]
    tasks = [(prompts.question(f, location), prompts.candidates(f)) for f in names]
    probs = backend.score_tasks(windows, tasks, system=prompts.system, batch_size=batch_size)
    return {f: p.mean(axis=0) for f, p in zip(names, probs)}
