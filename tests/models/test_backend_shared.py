"""What the qwen2-audio and whisper backends share through AudioLMBackend: one LoRA targeting, one
adapter save/load (quiet about peft's use of deprecated transformers names), one candidate softmax.

Before this code lived in the base class the two copies had drifted: whisper's adapter loading and
LoRA wrapping let peft's ``is_gradient_checkpointing`` FutureWarning through and it enabled
checkpointing by the deprecated ``gradient_checkpointing_enable``; qwen2-audio did neither.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from murmurlm.models.audio_lm import AudioLMBackend, LoraSettings, get_backend, load_backend_from_adapter
from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio
from murmurlm.testing.tiny_whisper import build_tiny_whisper

BACKENDS = ["qwen2-audio", "whisper"]
BUILDERS = {"qwen2-audio": build_tiny_qwen2_audio, "whisper": build_tiny_whisper}
QUESTION = "Is a heart murmur present?"
CLASSES = ["Present", "Absent"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/models/conftest.py


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return {name: build(tmp_path_factory.mktemp(name), seed=0) for name, build in BUILDERS.items()}


def _deprecations(record) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in record
            if issubclass(w.category, (FutureWarning, DeprecationWarning))]


@pytest.mark.parametrize("name", BACKENDS)
def test_both_backends_run_the_shared_code(name):
    cls = get_backend(name)
    for method in ("score", "score_tasks", "_score_items", "save_adapter", "_attach_adapter", "_prepare_base_model"):
        assert getattr(cls, method) is getattr(AudioLMBackend, method), f"{name} has its own {method}"
    assert cls.lora_target_regex.__func__ is AudioLMBackend.lora_target_regex.__func__
    assert set(cls.lora_parts) == {"audio", "language", "both"}


@pytest.mark.parametrize("name", BACKENDS)
def test_lora_and_adapter_loading_are_quiet(name, sources, tmp_path):
    """No deprecation warnings from peft or transformers on any path that adds or loads an adapter."""
    cls, source = get_backend(name), sources[name]
    lora = LoraSettings(rank=2, alpha=4)
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.3, 0.3, 16000).astype(np.float32)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        backend = cls.load(source, lora=lora)  # get_peft_model
        for p in backend.trainable_parameters():
            torch.nn.init.normal_(p, std=0.05)
        probs = backend.score([audio], [QUESTION], CLASSES)
        folder = backend.save_adapter(tmp_path / "adapter")
        frozen = load_backend_from_adapter(folder)  # PeftModel.from_pretrained
        again = cls.load(source, lora=lora)
        again.load_adapter(folder, trainable=True)  # set_peft_model_state_dict
        checkpointed = cls.load(source, lora=lora, gradient_checkpointing=True)
    assert _deprecations(record) == []
    assert frozen.num_parameters(trainable_only=True) == 0
    np.testing.assert_allclose(frozen.score([audio], [QUESTION], CLASSES), probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(again.score([audio], [QUESTION], CLASSES), probs, rtol=1e-5, atol=1e-7)
    assert again.num_parameters(trainable_only=True) == backend.num_parameters(trainable_only=True)
    assert checkpointed.model.get_base_model().is_activation_checkpointing
    meta = json.loads((folder / "murmurlm_backend.json").read_text())
    assert list(meta)[:2] == ["backend", "source"] and meta["backend"] == name


def test_lora_regexes_are_those_adapters_were_saved_with():
    """The regex lands in adapter_config.json: the same strings as before the shared code."""
    qwen, whisper = get_backend("qwen2-audio"), get_backend("whisper")
    default = LoraSettings()
    assert qwen.lora_target_regex(default) == r"(?:model\.language_model)\..*\.(?:q_proj|k_proj|v_proj|o_proj)"
    assert whisper.lora_target_regex(default) == r"(?:model\.decoder)\..*\.(?:k_proj|out_proj|q_proj|v_proj)"
    mixed = LoraSettings(target="both", target_modules=["q_proj", "o_proj", "up_proj", "down_proj"])
    assert (qwen.lora_target_regex(mixed)
            == r"(?:model\.audio_tower|model\.language_model)\..*\.(?:q_proj|o_proj|up_proj|down_proj)")
    assert whisper.lora_target_regex(mixed) == r"(?:model\.encoder|model\.decoder)\..*\.(?:fc1|fc2|out_proj|q_proj)"
    from murmurlm.models import qwen2_audio
    from murmurlm.models.whisper import backend as whisper_lm

    assert qwen2_audio.lora_target_regex(mixed) == qwen.lora_target_regex(mixed)
    assert whisper_lm.lora_target_regex(mixed) == whisper.lora_target_regex(mixed)


# --- encoder adaptation and one-pass answers (the audio-LM issue) --------------------------------


def _two_class_audio(label: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    x = 0.02 * rng.standard_normal(t.size)
    if label == "Present":
        x += 0.5 * np.sin(2 * np.pi * 400 * t)
    return x.astype(np.float32)


@pytest.mark.parametrize("name", BACKENDS)
def test_encoder_lora_trains_the_encoder_and_round_trips(name, sources, tmp_path):
    """LoRA on the audio encoder and the language model (target both): the loss falls, the encoder's
    LoRA weights move, the adapter reloads to the same scores."""
    from murmurlm.models.audio_lm import Example

    backend = get_backend(name).load(sources[name], lora=LoraSettings(rank=4, alpha=8, dropout=0.0, target="both"))
    encoder = [n for n, p in backend.model.named_parameters() if p.requires_grad and "lora_" in n
               and any(part in n for part in ("audio_tower", "encoder"))]
    assert encoder, "no LoRA weights inside the audio encoder"
    before = {n: p.detach().clone() for n, p in backend.model.named_parameters() if n in encoder}
    torch.manual_seed(0)
    opt = torch.optim.AdamW(list(backend.trainable_parameters()), lr=1e-2)
    losses = []
    backend.model.train()
    for step in range(8):
        labels = [CLASSES[(step + i) % 2] for i in range(4)]
        loss = backend.loss(backend.collate([Example(_two_class_audio(c, 10 * step + i), QUESTION, c)
                                             for i, c in enumerate(labels)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    moved = [n for n, p in backend.model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert moved, "the encoder's LoRA weights did not train"
    audios = [_two_class_audio("Present", 99), _two_class_audio("Absent", 98)]
    probs = backend.score(audios, [QUESTION] * 2, CLASSES)
    again = load_backend_from_adapter(backend.save_adapter(tmp_path / "adapter"))
    np.testing.assert_allclose(again.score(audios, [QUESTION] * 2, CLASSES), probs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", BACKENDS)
def test_a_continuation_is_scored_without_the_end_of_answer_token(name, sources):
    from murmurlm.models.audio_lm import Continuation

    backend = get_backend(name).load(sources[name])
    audio = _two_class_audio("Present", 0)
    with backend._inference():
        (ended,) = backend._candidate_log_likelihoods([audio], [[(QUESTION, ["Present", "Absent"])]], None, 2)
        (open_,) = backend._candidate_log_likelihoods(
            [audio], [[(QUESTION, [Continuation("Present"), Continuation("Absent")])]], None, 2)
    assert (open_ > ended).all()  # the end token's log-probability (< 0) is left out


@pytest.mark.parametrize("name", BACKENDS)
def test_one_pass_answers_have_the_questions_shape_and_classes(name, sources):
    """The whole report asked once and scored line by line: every feature gets a distribution over
    exactly its classes, in the same order and shape as the 11-question scoring."""
    from murmurlm.data import labels as L
    from murmurlm.models.instructions import (DEFAULT_PROMPTS, AudioOptions, load_prompts,
                                              recording_probabilities, report_probabilities)

    backend = get_backend(name).load(sources[name])
    prompts = load_prompts(DEFAULT_PROMPTS)
    audio = np.concatenate([_two_class_audio("Present", 1), _two_class_audio("Absent", 2)])
    opts = AudioOptions(window_seconds=1.0)
    features = ["Murmur", "Systolic murmur pitch"]  # the tiny Whisper holds 128 decoder tokens: two report lines
    one = report_probabilities(backend, audio, prompts, opts, features, batch_size=2)
    eleven = recording_probabilities(backend, audio, prompts, opts, features, batch_size=2)
    assert list(one) == list(eleven) == features
    for f in features:
        assert one[f].shape == eleven[f].shape == (L.feature(f).num_classes,)
        assert one[f].sum() == pytest.approx(1.0) and (one[f] >= 0).all()
    assert not all(np.allclose(one[f], eleven[f]) for f in features)  # a different question, other answers
