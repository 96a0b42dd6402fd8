"""Instruction data: prompt files, windows, the lazy CirCor dataset and closed-set recording scores."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from murmurlm.data import labels as L
from murmurlm.data.circor import load_circor
from murmurlm.errors import ConfigError
from murmurlm.models.instructions import (
    DEFAULT_PROMPTS,
    REPORT_TASK,
    AudioOptions,
    InstructionDataset,
    feature_examples,
    load_prompts,
    recording_labels,
    recording_probabilities,
    to_model_rate,
    window_bounds,
)
from murmurlm.signal.synth import MurmurSpec, synth_pcg


@pytest.fixture(scope="module")
def prompts():
    return load_prompts(DEFAULT_PROMPTS)


def test_default_prompts_cover_every_feature_and_class(prompts):
    for f in L.FEATURES:
        cands = prompts.candidates(f.name)
        assert len(cands) == f.num_classes == len(set(cands))
        assert prompts.question(f.name, "MV").endswith(prompts.questions[f.name])
        assert "mitral valve" in prompts.question(f.name, "MV")
        for cls, text in zip(f.classes, cands):
            assert prompts.parse_answer(f.name, f"  {text.upper()}. ") == cls
    assert prompts.answer("Diastolic murmur quality", "nan") == "no diastolic murmur"
    assert prompts.answer("Systolic murmur timing", float("nan")) == "no systolic murmur"
    assert prompts.answer("Murmur", "Present") == "Present"
    assert prompts.parse_answer("Murmur", "maybe") is None


def test_report_round_trip(prompts):
    labels = {f.name: f.classes[-1] for f in L.FEATURES}
    text = prompts.report(labels)
    assert len(text.splitlines()) == 11
    assert prompts.parse_report(text) == labels
    broken = prompts.parse_report(text.replace("Harsh", "Loud"))
    assert broken["Diastolic murmur quality"] is None


def _edited(**changes):
    data = yaml.safe_load(DEFAULT_PROMPTS.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("text, message", [
    (_edited(questions={"Systolic murmur timingX": "When?"}), "questions.Systolic murmur timingX"),
    (_edited(colour="red"), "unknown key"),
    (_edited(answers={"Murmur": {"Maybe": "perhaps"}}), "'Maybe' is not a class"),
    (_edited(answers={"Murmur": {"Present": "yes", "Absent": "yes"}}), "not distinct"),
    (_edited(preamble="At the {valve}: "), "placeholder"),
    ("system: null\nquestions: [\n", ":3: invalid YAML"),
])
def test_prompt_file_errors_name_file_and_key(tmp_path, text, message):
    path = tmp_path / "prompts.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_prompts(path)
    assert str(path) in str(err.value)


def test_prompt_file_needs_every_question(tmp_path):
    data = yaml.safe_load(DEFAULT_PROMPTS.read_text())
    del data["questions"]["Diastolic murmur pitch"]
    path = tmp_path / "prompts.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="questions missing for Diastolic murmur pitch"):
        load_prompts(path)
    # a run on fewer features needs only their questions
    assert load_prompts(path, features=["Murmur"]).candidates("Murmur") == ["Present", "Unknown", "Absent"]


def test_sliding_windows_cover_the_recording_with_full_windows():
    opts = AudioOptions(window_seconds=30.0)
    rate = 16000
    assert window_bounds(20 * rate, rate, opts) == [(0, 20 * rate)]
    bounds = window_bounds(64 * rate, rate, opts)  # CirCor's longest recordings
    assert bounds == [(0, 30 * rate), (30 * rate, 60 * rate), (34 * rate, 64 * rate)]
    assert window_bounds(64 * rate, rate, AudioOptions(window_seconds=30.0, mode="first")) == [(0, 30 * rate)]
    assert window_bounds(64 * rate, rate, AudioOptions(window_seconds=30.0, max_windows=2)) == bounds[:2]
    assert window_bounds(rate // 2, rate, opts) == []  # shorter than min_seconds
    overlapping = window_bounds(40 * rate, rate, AudioOptions(window_seconds=20.0, hop_seconds=10.0))
    assert overlapping == [(0, 20 * rate), (10 * rate, 30 * rate), (20 * rate, 40 * rate)]


def test_cycle_windows_hold_whole_cycles():
    rate = 16000
    pcg = synth_pcg(20.0, 4000, heart_rate=75.0, seed=3)
    onsets = [int(round(s.start * rate)) for s in pcg.segments if s.state == 1]
    opts = AudioOptions(mode="cycles", window_seconds=5.0, min_seconds=1.0)
    bounds = window_bounds(20 * rate, rate, opts, pcg.segments)
    assert len(bounds) >= 3
    for a, b in bounds:
        assert a in onsets and b in onsets  # cut at S1 onsets only
        assert 1.0 * rate <= b - a <= 5.0 * rate
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(bounds, bounds[1:]))
    # without a segmentation: sliding windows
    assert window_bounds(20 * rate, rate, opts, ()) == window_bounds(20 * rate, rate, AudioOptions(window_seconds=5.0))


def test_resampling_keeps_a_tone():
    t = np.arange(4000) / 4000
    tone = np.sin(2 * np.pi * 100 * t).astype(np.float32)
    up = to_model_rate(tone, 4000, 16000)
    assert up.dtype == np.float32 and up.size == 16000
    spectrum = np.abs(np.fft.rfft(up))
    assert np.argmax(spectrum) == 100  # 1 Hz bins over 1 s


def test_instruction_dataset_over_synthetic_circor(synthetic_circor, prompts):
    data = load_circor(synthetic_circor)
    patients = data.patients[:3]
    opts = AudioOptions(window_seconds=5.0)
    ds = InstructionDataset(patients, prompts, opts, features=L.FEATURE_NAMES, report=True)
    expected = 0
    for p in patients:
        for rec in p.recordings:
            n = int(np.ceil(rec.num_samples * 16000 / rec.sampling_rate))
            expected += len(window_bounds(n, 16000, opts)) * 12
    assert len(ds) == expected > 0
    tasks = {ds[i].meta["task"] for i in range(12)}
    assert tasks == {*L.FEATURE_NAMES, REPORT_TASK}
    for i in (0, 5, len(ds) - 1):
        ex = ds[i]
        patient = next(p for p in patients if p.patient_id == ex.meta["patient_id"])
        assert ex.audio.dtype == np.float32 and ex.audio.size <= 5 * 16000
        if ex.meta["task"] == REPORT_TASK:
            assert prompts.parse_report(ex.answer) == {f: patient.labels[f] for f in L.FEATURE_NAMES}
        else:
            assert ex.answer == prompts.answer(ex.meta["task"], patient.labels[ex.meta["task"]])
            assert ex.meta["label"] == patient.labels[ex.meta["task"]]


def test_location_label_rule(synthetic_circor):
    data = load_circor(synthetic_circor)
    for p in data.patients:
        for rec in p.recordings:
            same = recording_labels(p, rec, "patient")
            assert same == p.labels
            loc = recording_labels(p, rec, "location")
            if p.labels["Murmur"] == "Present" and rec.location not in p.murmur_locations:
                assert loc["Murmur"] == "Absent" and loc["Systolic murmur timing"] == "nan"
            else:
                assert loc == p.labels
    with pytest.raises(ConfigError):
        recording_labels(data.patients[0], data.patients[0].recordings[0], "nearest")


class _LoudnessBackend:
    """Scores by loudness: louder windows favour the first candidate."""

    def __init__(self):
        self.calls = []

    def score_tasks(self, audios, tasks, system=None, batch_size=8):
        self.calls.append((len(audios), [q for q, _ in tasks]))
        out = []
        for _, cands in tasks:
            loud = np.array([np.abs(a).mean() for a in audios])
            p = np.zeros((len(audios), len(cands)))
            p[:, 0] = loud / (1 + loud)
            p[:, 1:] = ((1 - p[:, 0]) / (len(cands) - 1))[:, None]
            out.append(p)
        return out


def test_recording_probabilities_average_the_windows(prompts):
    audio = np.concatenate([np.full(16000 * 2, 0.1), np.full(16000 * 2, 0.5)]).astype(np.float32)
    backend = _LoudnessBackend()
    opts = AudioOptions(window_seconds=2.0)
    probs = recording_probabilities(backend, audio, prompts, opts, ["Murmur", "Systolic murmur pitch"], "AV")
    assert backend.calls == [(2, [prompts.question("Murmur", "AV"), prompts.question("Systolic murmur pitch", "AV")])]
    assert set(probs) == {"Murmur", "Systolic murmur pitch"}
    assert probs["Murmur"].shape == (3,) and probs["Systolic murmur pitch"].shape == (4,)
    np.testing.assert_allclose(probs["Murmur"][0], np.mean([0.1 / 1.1, 0.5 / 1.5]))
    np.testing.assert_allclose(probs["Murmur"].sum(), 1.0)


def test_feature_examples(prompts):
    audio = np.zeros(16000, np.float32)
    labels = {f.name: "nan" for f in L.FEATURES} | {"Murmur": "Absent"}
    exs = feature_examples(audio, labels, prompts, report=True)
    assert len(exs) == 12 and exs[0].answer == "Absent" and exs[1].answer == "no systolic murmur"
    assert exs[-1].meta["task"] == REPORT_TASK


def test_synthetic_murmur_labels_reach_the_answers(prompts):
    audio = to_model_rate(synth_pcg(3.0, 4000, murmurs=(MurmurSpec(timing="Early-systolic"),), seed=1).waveform,
                          4000, 16000)
    labels = {f.name: "nan" for f in L.FEATURES} | {"Murmur": "Present", "Systolic murmur timing": "Early-systolic"}
    exs = feature_examples(audio, labels, prompts, features=["Systolic murmur timing"])
    assert exs[0].answer == "Early-systolic" and exs[0].audio.size == 3 * 16000


def test_predicted_cycles_cut_windows_at_the_segmenters_s1_onsets(synthetic_circor):
    from murmurlm.models.instructions import recording_segments
    from murmurlm.signal.segment import pcg_segment

    rec = load_circor(synthetic_circor).patients[0].recordings[0]
    opts = AudioOptions(mode="predicted-cycles", window_seconds=4.0, min_seconds=1.0)
    segments = recording_segments(rec, opts)
    assert segments == pcg_segment(rec.load_audio(), rec.sampling_rate, method="mamba").segments
    assert recording_segments(rec, AudioOptions(mode="cycles")) == rec.load_segments()
    assert recording_segments(rec, AudioOptions(mode="window")) == ()
    rate = opts.sampling_rate
    n = int(rec.num_samples * rate / rec.sampling_rate)
    onsets = {int(round(s.start * rate)) for s in segments if s.state == 1}
    bounds = window_bounds(n, rate, opts, segments)
    assert bounds and all(a in onsets and b in onsets for a, b in bounds)


# --- band mapping (AudioOptions.playback) ----------------------------------------------------------


def _mel_band_of_tone(freq: float, rate: int, seconds: float = 1.0) -> int:
    """The Whisper log-mel band (80 bands over 0-8 kHz) where a pure tone's energy peaks, when the
    samples are handed to the feature extractor as 16 kHz audio."""
    from transformers import WhisperFeatureExtractor

    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, chunk_length=1, n_samples=16000)
    mel = fe(tone, sampling_rate=16000, return_tensors="np")["input_features"][0]  # (80, frames)
    frames = int(seconds * rate / 16000 * 100)  # frames that hold the tone (10 ms hop at 16 kHz)
    return int(mel[:, : max(frames - 1, 1)].mean(axis=1).argmax())


def test_playback_mapping_moves_a_100_hz_tone_up_the_mel_scale():
    """A 4 kHz recording played 4x faster: its 100 Hz tone reaches Whisper as 400 Hz, in the band a
    real 400 Hz tone falls in, well above where resampling leaves it."""
    from murmurlm.models.instructions import AudioOptions, read_rate, to_model_rate

    opts = AudioOptions(playback=4)
    rate = read_rate(opts)
    assert rate == 4000
    t = np.arange(4000) / 4000
    tone_4k = (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    played = to_model_rate(tone_4k, 4000, rate)  # read at 4 kHz: the samples unchanged
    assert np.array_equal(played, tone_4k)
    band_played = _mel_band_of_tone(100, 4000)       # those samples, taken as 16 kHz
    band_resampled = _mel_band_of_tone(100, 16000)   # today's mapping
    assert band_played == _mel_band_of_tone(400, 16000)
    assert band_played >= band_resampled + 8


def test_playback_windows_are_in_recording_seconds_and_the_model_gets_a_quarter():
    from murmurlm.models.instructions import AudioOptions, read_rate, window_bounds

    opts = AudioOptions(window_seconds=5.0, playback=4)
    bounds = window_bounds(12 * read_rate(opts), read_rate(opts), opts)
    assert [(a / 4000, b / 4000) for a, b in bounds] == [(0.0, 5.0), (5.0, 10.0), (7.0, 12.0)]
    assert all((b - a) / opts.sampling_rate == 1.25 for a, b in bounds)  # seconds at the model's rate
    with pytest.raises(ValueError, match="playback"):
        AudioOptions(playback=0.5)
    with pytest.raises(ValueError, match="whole"):
        AudioOptions(playback=3)
