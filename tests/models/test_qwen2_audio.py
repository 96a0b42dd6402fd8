"""The qwen2-audio backend on the tiny offline Qwen2-Audio: loss mask, learning, scoring, generation,
adapters. One tiny model is built per module and one LoRA fine-tune shared by the tests after it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from murmurlm.errors import ConfigError
from murmurlm.models.audio_lm import (
    AudioLMError,
    Example,
    LoraSettings,
    get_backend,
    load_backend_from_adapter,
)
from murmurlm.models.instructions import to_model_rate
from murmurlm.models.qwen2_audio import Qwen2AudioBackend
from murmurlm.testing.tiny_qwen2_audio import SPECIAL_TOKENS, build_tiny_qwen2_audio
from murmurlm.signal.synth import MurmurSpec, synth_pcg

QUESTION = "What is the pitch of the systolic murmur?"
CLASSES = ["High", "Low"]
LORA = LoraSettings(rank=8, alpha=16, dropout=0.0, target="both",
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "fc1", "fc2"],
                    modules_to_save=["multi_modal_projector", "lm_head"])


def pcg_window(pitch: str, seed: int, seconds: float = 2.0) -> np.ndarray:
    """A synthetic holosystolic grade III/VI murmur of the given pitch, at 16 kHz."""
    pcg = synth_pcg(seconds, 4000, murmurs=(MurmurSpec(timing="Holosystolic", grade="III/VI", pitch=pitch),),
                    seed=seed)
    return to_model_rate(pcg.waveform, 4000, 16000)


def examples(n: int, seed0: int) -> list[Example]:
    return [Example(pcg_window(CLASSES[i % 2], seed0 + i), QUESTION, CLASSES[i % 2]) for i in range(n)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add synchronisation on a shared machine
    yield build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny_qwen2_audio"), seed=0)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """The tiny model after learning the two-class pitch question (the losses are kept)."""
    torch.manual_seed(0)
    backend = Qwen2AudioBackend.load(tiny, lora=LORA)
    train = examples(16, seed0=0)
    batch = backend.collate(train)
    optimizer = torch.optim.AdamW(backend.trainable_parameters(), lr=3e-3, weight_decay=0.0)
    backend.model.train()
    losses = []
    for _ in range(90):
        loss = backend.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    backend.model.eval()
    return backend, losses


def test_tiny_model_round_trips_through_save_pretrained(tiny):
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    model = Qwen2AudioForConditionalGeneration.from_pretrained(tiny)
    processor = AutoProcessor.from_pretrained(tiny)
    assert isinstance(processor, Qwen2AudioProcessor)
    tok = processor.tokenizer
    for special in SPECIAL_TOKENS:
        ids = tok(special, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, special  # each special token is one token
    assert tok.convert_tokens_to_ids("<|AUDIO|>") == model.config.audio_token_id
    assert len(tok) <= 400 and model.num_parameters() < 500_000
    assert processor.feature_extractor.n_samples == 2 * 16000
    # the same weights come back
    again = Qwen2AudioForConditionalGeneration.from_pretrained(tiny)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_loss_mask_covers_exactly_the_answer_tokens(tiny):
    backend = Qwen2AudioBackend.load(tiny)
    rng = np.random.default_rng(0)
    batch_examples = [
        Example(rng.standard_normal(16000).astype(np.float32) * 0.1, QUESTION, "Holosystolic"),
        Example(rng.standard_normal(30000).astype(np.float32) * 0.1, "Is a heart murmur present?",
                "no systolic murmur", system="You listen to heart sounds."),
    ]
    batch = backend.collate(batch_examples)
    tok = backend.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for row, example in enumerate(batch_examples):
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        answer = tok(example.answer, add_special_tokens=False)["input_ids"] + [end]
        length = int(mask.sum())
        assert mask[:length].all() and not mask[length:].any()  # right-padded
        kept = (labels != -100).nonzero().flatten().tolist()
        assert kept == list(range(length - len(answer), length))  # the last tokens, contiguous
        assert labels[kept].tolist() == answer == ids[kept].tolist()
        assert tok.decode(ids[kept]) == example.answer + "<|im_end|>"
        prompt = tok.decode(ids[: length - len(answer)])
        assert example.question in prompt and "<|AUDIO|>" in prompt and prompt.endswith("assistant\n")
        assert (example.system or "You are a helpful assistant.") in prompt
    # the two audios get their own number of audio tokens (25 per second here)
    n_audio = (batch["input_ids"] == backend.unwrapped_model.config.audio_token_id).sum(1).tolist()
    assert n_audio[0] == 25 and n_audio[1] > n_audio[0]
    assert backend.count_loss_tokens(batch) == sum(len(tok(e.answer, add_special_tokens=False)["input_ids"]) + 1
                                                   for e in batch_examples)
    # loss(mean) is the token-weighted mean of loss(sum)
    total = backend.loss(batch, reduction="sum")
    assert torch.allclose(backend.loss(batch), total / backend.count_loss_tokens(batch))


@pytest.mark.slow  # its fixture trains for ~10 s
def test_learns_two_class_audio_question_and_scores_it_right(trained):
    backend, losses = trained
    assert losses[0] > 3.0
    assert np.mean(losses[-5:]) < 0.05, losses[::10]
    test = examples(12, seed0=1000)  # unseen recordings
    probs = backend.score([e.audio for e in test], [QUESTION] * len(test), CLASSES)
    assert probs.shape == (12, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    predicted = [CLASSES[k] for k in probs.argmax(axis=1)]
    assert predicted == [e.answer for e in test]
    # free generation says the same
    answers = backend.generate([e.audio for e in test[:4]], [QUESTION] * 4, max_new_tokens=4)
    assert answers == [e.answer for e in test[:4]]


def test_score_equals_softmax_of_full_sequence_likelihoods(trained):
    """The cached-prefix scoring equals scoring each full (prompt + candidate) sequence."""
    backend, _ = trained
    audios = [pcg_window("High", 7), pcg_window("Low", 8, seconds=1.3)]
    candidates = ["High", "Low", "Medium", "no systolic murmur"]
    probs = backend.score(audios, [QUESTION, "Is a heart murmur present?"], candidates, batch_size=2)
    logp = np.zeros_like(probs)
    with torch.no_grad():
        for i, (audio, q) in enumerate(zip(audios, [QUESTION, "Is a heart murmur present?"])):
            for j, cand in enumerate(candidates):
                logp[i, j] = -float(backend.loss(backend.collate([Example(audio, q, cand)]), reduction="sum"))
    expected = np.exp(logp - logp.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    # several tasks at once give what one task at a time gives
    tasks = [(QUESTION, ["High", "Low"]), ("Is a heart murmur present?", ["Present", "Absent", "Unknown"])]
    together = backend.score_tasks(audios, tasks, batch_size=1)
    for (q, cands), got in zip(tasks, together):
        np.testing.assert_allclose(got, backend.score(audios, [q] * 2, cands), atol=1e-5)


def test_batched_left_padded_generation_equals_one_by_one(trained):
    backend, _ = trained
    audios = [pcg_window("Low", 11, seconds=1.0), pcg_window("High", 12), pcg_window("Low", 13, seconds=1.6)]
    questions = [QUESTION, "Describe the heart murmur.", "What is the timing of the systolic murmur?"]
    batched = backend.generate(audios, questions, max_new_tokens=6, batch_size=3)
    single = [backend.generate([a], [q], max_new_tokens=6)[0] for a, q in zip(audios, questions)]
    assert batched == single
    assert all(isinstance(a, str) for a in batched)


def test_adapter_round_trip(trained, tmp_path):
    backend, _ = trained
    audios = [pcg_window("High", 21), pcg_window("Low", 22)]
    before = backend.score(audios, [QUESTION] * 2, CLASSES)
    folder = backend.save_adapter(tmp_path / "adapter")
    assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
    meta = json.loads((folder / "murmurlm_backend.json").read_text())
    assert meta["backend"] == "qwen2-audio"

    # a fresh base model + the saved adapter (frozen)
    loaded = load_backend_from_adapter(folder)
    np.testing.assert_allclose(loaded.score(audios, [QUESTION] * 2, CLASSES), before, atol=1e-6)
    assert loaded.num_parameters(trainable_only=True) == 0
    # into a model that already has a (fresh, untrained) adapter of the same layout, trainable
    fresh = Qwen2AudioBackend.load(meta["source"], lora=LORA)
    assert not np.allclose(fresh.score(audios, [QUESTION] * 2, CLASSES), before, atol=1e-3)
    fresh.load_adapter(folder, trainable=True)
    np.testing.assert_allclose(fresh.score(audios, [QUESTION] * 2, CLASSES), before, atol=1e-6)
    assert fresh.num_parameters(trainable_only=True) == backend.num_parameters(trainable_only=True)


def test_registry_and_input_errors(tiny):
    assert get_backend("qwen2-audio") is Qwen2AudioBackend
    with pytest.raises(AudioLMError, match="not both"):
        Qwen2AudioBackend.load(tiny, lora=LORA, adapter=tiny)
    with pytest.raises(ConfigError, match="match no linear layer"):
        Qwen2AudioBackend.load(tiny, lora=LoraSettings(target="audio", target_modules=["gate_proj"]))
    backend = Qwen2AudioBackend.load(tiny)
    assert backend.sampling_rate == 16000 and backend.max_audio_seconds == 2.0
    with pytest.raises(AudioLMError, match="longer than"):
        backend.score([np.zeros(3 * 16000, np.float32)], [QUESTION], CLASSES)
    with pytest.raises(AudioLMError, match="distinct"):
        backend.score([np.zeros(16000, np.float32)], [QUESTION], ["High", "High"])
    with pytest.raises(AudioLMError, match="no answer"):
        backend.collate([Example(np.zeros(16000, np.float32), QUESTION)])
    with pytest.raises(AudioLMError, match="no LoRA adapter"):
        backend.save_adapter(tiny / "nowhere")


def test_gradient_checkpointing_trains_the_same(tiny):
    """Gradient checkpointing changes memory, not the gradients."""
    batch_examples = examples(2, seed0=50)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        backend = Qwen2AudioBackend.load(tiny, lora=LORA, gradient_checkpointing=checkpointing)
        assert backend.model.get_base_model().is_activation_checkpointing == checkpointing
        backend.model.train()
        backend.loss(backend.collate(batch_examples)).backward()
        grads.append([p.grad.clone() for p in backend.trainable_parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bfloat16_base_with_float32_lora(tiny):
    """The GPU setting (bf16 weights, fp32 LoRA, checkpointing) runs on the CPU too."""
    backend = Qwen2AudioBackend.load(tiny, lora=LORA, dtype="bfloat16", gradient_checkpointing=True)
    lora = {p.dtype for n, p in backend.model.named_parameters() if "lora_" in n}
    frozen = {p.dtype for p in backend.model.parameters() if not p.requires_grad}
    assert lora == {torch.float32} and frozen == {torch.bfloat16}  # modules_to_save copies stay bf16
    backend.model.train()
    loss = backend.loss(backend.collate(examples(2, seed0=60)))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in backend.trainable_parameters())
    probs = backend.score([pcg_window("High", 61)], [QUESTION], CLASSES)
    assert probs.dtype == np.float64 and abs(probs.sum() - 1) < 1e-9


def test_thirty_second_window_like_the_7b(tiny, tmp_path):  # tiny: one thread
    """Qwen2-Audio-7B's audio path: 128 mel bins, features padded to 30 s (3000 frames), 25 audio
    tokens per second; a 64 s CirCor recording is scored as three 30 s windows."""
    from murmurlm.models.instructions import AudioOptions, load_prompts, DEFAULT_PROMPTS, recording_probabilities

    source = build_tiny_qwen2_audio(tmp_path / "tiny30", seed=0, window_seconds=30, num_mel_bins=128)
    backend = Qwen2AudioBackend.load(source)
    assert backend.max_audio_seconds == 30.0
    recording = pcg_window("Low", 3, seconds=64.0)
    batch = backend.collate([Example(recording[: 30 * 16000], QUESTION, "Low"),
                             Example(recording[: 7 * 16000], QUESTION, "High")])
    assert batch["input_features"].shape == (2, 128, 3000)
    assert batch["feature_attention_mask"].sum(1).tolist() == [3000, 700]
    audio_id = backend.unwrapped_model.config.audio_token_id
    assert (batch["input_ids"] == audio_id).sum(1).tolist() == [750, 175]
    prompts = load_prompts(DEFAULT_PROMPTS)
    seen = []
    real_score_tasks = backend.score_tasks

    def spy(windows, tasks, **kw):  # the windows the backend is asked to score, then the real scores
        seen.append([len(w) for w in windows])
        out = real_score_tasks(windows, tasks, **kw)
        seen.append(out)
        return out

    backend.score_tasks = spy
    probs = recording_probabilities(backend, recording, prompts, AudioOptions(window_seconds=30.0),
                                    ["Murmur", "Systolic murmur pitch"], location="MV")
    # three whole 30 s windows: 0-30 s, 30-60 s and the last 30 s (34-64 s), none padded or cut short
    assert seen[0] == [30 * 16000] * 3
    per_window = seen[1]
    assert [p.shape for p in per_window] == [(3, 3), (3, 4)]
    # the recording's probabilities are the mean of its windows'
    np.testing.assert_allclose(probs["Murmur"], per_window[0].mean(axis=0))
    np.testing.assert_allclose(probs["Systolic murmur pitch"], per_window[1].mean(axis=0))
    np.testing.assert_allclose([p.sum() for p in probs.values()], 1.0)
