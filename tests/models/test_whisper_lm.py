"""The ``whisper`` audio-LM backend on a tiny random Whisper: the behaviours every backend shares
(learning a question, closed-set scoring, adapters, batched generation) and Whisper's own options
(window length, encoder cache)."""

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
from murmurlm.testing.tiny_whisper import build_tiny_whisper
from murmurlm.models.whisper.backend import WhisperLMBackend

QUESTION = "Is a heart murmur present?"
CLASSES = ["Present", "Absent"]
RATE = 16000


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/models/conftest.py


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper"), seed=0)


def _audio(label: str, seed: int, seconds: float = 1.5) -> np.ndarray:
    """'Present': a loud 400 Hz tone burst in noise; 'Absent': quiet noise only."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.02 * rng.standard_normal(t.size)
    if label == "Present":
        x += 0.5 * np.sin(2 * np.pi * (400 + 40 * rng.random()) * t + rng.random())
    return x.astype(np.float32)


def _train(backend: WhisperLMBackend, steps: int, seed: int = 0, lr: float = 1e-2) -> list[float]:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(list(backend.trainable_parameters()), lr=lr)
    losses = []
    backend.model.train()
    for step in range(steps):
        labels = [CLASSES[(step + i) % 2] for i in range(8)]
        batch = backend.collate([Example(_audio(lab, 1000 * step + i), QUESTION, lab)
                                 for i, lab in enumerate(labels)])
        loss = backend.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    backend.model.eval()
    return losses


def test_registered_and_loads_frozen_without_lora(source):
    assert get_backend("whisper") is WhisperLMBackend
    backend = get_backend("whisper").load(source)
    assert backend.num_parameters(trainable_only=True) == 0
    assert backend.max_audio_seconds == 2.0 and backend.sampling_rate == RATE
    with pytest.raises(AudioLMError, match="longer than"):
        backend.score([np.zeros(3 * RATE, np.float32)], [QUESTION], CLASSES)
    with pytest.raises(AudioLMError, match="distinct"):
        backend.score([np.zeros(RATE, np.float32)], [QUESTION], ["Present", "Present"])


def test_labels_cover_exactly_the_answer(source):
    backend = get_backend("whisper").load(source, lora=LoraSettings(rank=2, alpha=4))
    batch = backend.collate([Example(_audio("Absent", 0), QUESTION, "Absent"),
                             Example(_audio("Present", 1), "Pitch?", "no systolic murmur")])
    tok = backend.tokenizer
    for row, answer in zip(range(2), ["Absent", "no systolic murmur"]):
        labelled = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert labelled[-1] == backend.tokens.eot
        assert tok.decode(labelled[:-1]).strip() == answer
        ids = batch["decoder_input_ids"][row].tolist()
        assert ids[0] == tok.convert_tokens_to_ids("<|startofprev|>")
    assert batch["decoder_input_ids"].shape == batch["labels"].shape


def test_learns_a_two_class_question_and_scores_it(source):
    backend = get_backend("whisper").load(source, lora=LoraSettings(rank=8, alpha=16, dropout=0.0))
    losses = _train(backend, steps=60)
    assert np.mean(losses[-5:]) < 0.05 * np.mean(losses[:5])
    held_out = [(_audio(lab, 10_000 + i), lab) for i, lab in enumerate(CLASSES * 4)]
    probs = backend.score([a for a, _ in held_out], [QUESTION] * len(held_out), CLASSES, batch_size=3)
    assert probs.shape == (8, 2) and np.allclose(probs.sum(1), 1)
    predicted = [CLASSES[i] for i in probs.argmax(1)]
    assert predicted == [lab for _, lab in held_out]
    answers = backend.generate([a for a, _ in held_out], [QUESTION] * len(held_out), max_new_tokens=8)
    assert answers == [lab for _, lab in held_out]


def test_score_is_the_softmax_of_answer_log_likelihoods(source):
    backend = get_backend("whisper").load(source, lora=LoraSettings(rank=2, alpha=4))
    audio = _audio("Present", 5)
    cands = ["Present", "Absent", "no systolic murmur"]
    probs = backend.score([audio], [QUESTION], cands)[0]
    with torch.no_grad():
        nll = np.array([float(backend.loss(backend.collate([Example(audio, QUESTION, c)]), reduction="sum"))
                        for c in cands])
    expected = np.exp(-nll - (-nll).max())
    np.testing.assert_allclose(probs, expected / expected.sum(), rtol=1e-4, atol=1e-6)
    # several questions at once give what score gives for each
    tasks = [(QUESTION, cands), ("What is the pitch of the systolic murmur?", ["Low", "High"])]
    audios = [audio, _audio("Absent", 6)]
    both = backend.score_tasks(audios, tasks, batch_size=1)
    for (q, c), got in zip(tasks, both):
        np.testing.assert_allclose(got, backend.score(audios, [q, q], c), rtol=1e-5, atol=1e-7)


def test_prompt_cache_scores_what_whole_sequences_score(source):
    """Closed-set scoring decodes each prompt once and the candidates on its cached keys and values;
    it must give the log-likelihoods of decoding every (prompt, candidate) whole: a preamble shared
    by an audio's questions and of another length for the next audio, prompts of several lengths,
    answers of one to several tokens, continuations, and groups cut mid-chunk."""
    from murmurlm.models.audio_lm import Continuation

    backend = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8))
    torch.manual_seed(1)
    for p in backend.trainable_parameters():
        torch.nn.init.normal_(p, std=0.05)  # LoRA's B starts at zero: make the adapter count
    audios = [_audio(CLASSES[i % 2], 70 + i, seconds=0.6 + 0.2 * i) for i in range(5)]
    tasks = [(QUESTION, ["Present", "Absent", "Unknown"]),
             ("What is the pitch of the systolic murmur? Answer in one word.",
              ["Low", "Medium", "High", "no systolic murmur"]),
             ("Grade?", [Continuation("Murmur: Present\n"), Continuation("Murmur: Absent\n")])]
    places = ["the mitral valve", "the aortic valve", "another auscultation point"]
    item_tasks = [[(f"This is a heart sound recording taken at {places[i % 3]}. {q}", c) for q, c in tasks]
                  for i in range(len(audios))]
    for batch_size in (1, 2, 8):
        with backend._inference():
            backend.score_prompt_cache = True
            cached = backend._candidate_log_likelihoods(audios, item_tasks, None, batch_size)
            backend.score_prompt_cache = False
            whole = backend._candidate_log_likelihoods(audios, item_tasks, None, batch_size)
        backend.score_prompt_cache = True
        for got, want in zip(cached, whole):
            assert got.shape == want.shape and np.all(got < 0)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_batched_generation_equals_one_by_one(source):
    backend = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8, target="both"))
    _train(backend, steps=3, lr=3e-2)  # a model that says something other than random tokens
    audios = [_audio(CLASSES[i % 2], 50 + i, seconds=0.5 + 0.3 * i) for i in range(4)]
    questions = [QUESTION, "What is the pitch of the systolic murmur?", "Grade?",
                 "This is a heart sound recording taken at the mitral valve. What is the shape?"]
    batched = backend.generate(audios, questions, max_new_tokens=6, batch_size=4)
    single = [backend.generate([a], [q], max_new_tokens=6)[0] for a, q in zip(audios, questions)]
    assert batched == single
    assert all(isinstance(a, str) for a in batched)


def test_adapter_round_trip(source, tmp_path):
    backend = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8),
                                          window_seconds=1.5)
    _train(backend, steps=3, lr=3e-2)
    audios = [_audio("Present", 70, seconds=1.2), _audio("Absent", 71, seconds=1.0)]
    probs = backend.score(audios, [QUESTION] * 2, CLASSES)
    said = backend.generate(audios, [QUESTION] * 2, max_new_tokens=5)
    folder = backend.save_adapter(tmp_path / "adapter")
    meta = json.loads((folder / "murmurlm_backend.json").read_text())
    assert meta["backend"] == "whisper" and meta["window_seconds"] == 1.5
    again = load_backend_from_adapter(folder)
    assert again.max_audio_seconds == 1.5 and again.num_parameters(trainable_only=True) == 0
    np.testing.assert_allclose(again.score(audios, [QUESTION] * 2, CLASSES), probs, rtol=1e-5, atol=1e-7)
    assert again.generate(audios, [QUESTION] * 2, max_new_tokens=5) == said
    fresh = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8), window_seconds=1.5)
    fresh.load_adapter(folder, trainable=True)
    assert fresh.num_parameters(trainable_only=True) > 0
    np.testing.assert_allclose(fresh.score(audios, [QUESTION] * 2, CLASSES), probs, rtol=1e-5, atol=1e-7)
    other_window = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8))
    with pytest.raises(AudioLMError, match="1.5 s window"):
        other_window.load_adapter(folder)
    with pytest.raises(AudioLMError, match="no LoRA adapter"):
        get_backend("whisper").load(source).save_adapter(tmp_path / "none")


def test_window_cut_to_shorter_audio(source):
    backend = get_backend("whisper").load(source, window_seconds=1.0)
    encoder = backend.base_model.model.encoder
    assert encoder.embed_positions.weight.shape[0] == 50 and backend.max_audio_seconds == 1.0
    full = get_backend("whisper").load(source)
    torch.testing.assert_close(encoder.embed_positions.weight, full.base_model.model.encoder.embed_positions.weight[:50])
    probs = backend.score([_audio("Present", 1, seconds=1.0)], [QUESTION], CLASSES)
    assert probs.shape == (1, 2)
    with pytest.raises(AudioLMError, match="longer than"):
        backend.score([_audio("Present", 1, seconds=1.5)], [QUESTION], CLASSES)
    with pytest.raises(ConfigError, match="longer than the model's window"):
        get_backend("whisper").load(source, window_seconds=4.0)
    with pytest.raises(ConfigError, match="multiple of 0.02"):
        get_backend("whisper").load(source, window_seconds=1.013)


def test_encoder_cache_gives_the_same_loss_and_scores(source):
    plain = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8))
    cached = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8), encoder_cache=True)
    assert not plain.model.training and not cached.model.training
    for b in (plain, cached):
        torch.manual_seed(0)
        for name, p in b.model.named_parameters():
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.05)
    examples = [Example(_audio(CLASSES[i % 2], 90 + i), QUESTION, CLASSES[i % 2]) for i in range(4)]
    a = plain.loss(plain.collate(examples))
    b1 = cached.loss(cached.collate(examples))
    b2 = cached.loss(cached.collate(examples))  # from the cache
    assert len(cached._cache) == 4
    torch.testing.assert_close(b1, a, rtol=2e-3, atol=2e-3)  # float16 cache
    torch.testing.assert_close(b2, b1)
    b2.backward()  # the decoder's LoRA still gets gradients
    assert any(p.grad is not None for p in cached.trainable_parameters())
    np.testing.assert_allclose(cached.score([e.audio for e in examples], [QUESTION] * 4, CLASSES),
                               plain.score([e.audio for e in examples], [QUESTION] * 4, CLASSES), atol=2e-3)
    with pytest.raises(ConfigError, match="frozen encoder"):
        get_backend("whisper").load(source, lora=LoraSettings(target="both"), encoder_cache=True)


def test_lora_targets_whisper_module_names(source):
    backend = get_backend("whisper").load(source, lora=LoraSettings(rank=2, alpha=4, target="audio",
                                                                    target_modules=["q_proj", "o_proj"]))
    names = [n for n, p in backend.model.named_parameters() if p.requires_grad]
    assert names and all(".encoder." in n and ("q_proj" in n or "out_proj" in n) for n in names)
    with pytest.raises(ConfigError, match="match no linear layer"):
        get_backend("whisper").load(source, lora=LoraSettings(target_modules=["gate_nonexistent"]))


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(AudioLMError, match="cannot load Whisper"):
        get_backend("whisper").load(tmp_path / "nothing-here")


@pytest.mark.slow
def test_finetune_recipe_runs_with_the_whisper_backend(source, synthetic_circor, tmp_path):
    from murmurlm.data.circor import load_circor
    from murmurlm.recipes import config_path, load_recipe

    recipe = load_recipe("finetune_audio_lm")
    ids = sorted(p.patient_id for p in load_circor(synthetic_circor).patients)
    cfg = recipe.load_finetune_config(config_path("audio_lm/tiny"), [
        "model.backend=whisper", f"model.source={source}", "model.lora.modules_to_save=[]",
        "model.lora.target=language", "model.lora.target_modules=[q_proj, v_proj, out_proj]",
        "data.features=[Murmur, Systolic murmur pitch]", "train.batch_size=4", "train.max_steps=4",
        "train.save_every=2", "train.log_every=1"])
    summary = recipe.finetune(cfg, synthetic_circor, tmp_path / "run", ids[:6], ids[6:8], progress=False, cpu=True)
    assert (tmp_path / "run" / "predictions_val.csv").is_file()
    backend = load_backend_from_adapter(tmp_path / "run" / "adapter")
    assert isinstance(backend, WhisperLMBackend) and backend.max_audio_seconds == 2.0
    assert summary is not None


def test_the_band_mapping_trains_and_travels_with_the_adapter(source, synthetic_circor, tmp_path):
    """data.audio.playback=4: the recipe reads recordings at 4 kHz and hands them over as 16 kHz
    (an 8 s window of heart sound fills the tiny model's 2 s); the adapter records the mapping, and
    the backend loaded from it has it."""
    from murmurlm.data.circor import load_circor
    from murmurlm.recipes import config_path, load_recipe

    recipe = load_recipe("finetune_audio_lm")
    ids = sorted(p.patient_id for p in load_circor(synthetic_circor).patients)
    cfg = recipe.load_finetune_config(config_path("audio_lm/tiny"), [
        "model.backend=whisper", f"model.source={source}", "model.lora.modules_to_save=[]",
        "model.lora.target=language", "model.lora.target_modules=[q_proj, v_proj, out_proj]",
        "data.features=[Murmur]", "data.audio.playback=4", "data.audio.window_seconds=8.0",
        "train.batch_size=4", "train.max_steps=2", "train.save_every=0", "train.log_every=1"])
    recipe.finetune(cfg, synthetic_circor, tmp_path / "run", ids[:6], ids[6:8], progress=False, cpu=True)
    meta = json.loads((tmp_path / "run" / "adapter" / "murmurlm_backend.json").read_text())
    assert meta["playback"] == 4.0
    assert load_backend_from_adapter(tmp_path / "run" / "adapter").playback == 4.0
    too_long = recipe.load_finetune_config(config_path("audio_lm/tiny"), [
        "model.backend=whisper", f"model.source={source}", "data.audio.playback=4", "data.audio.window_seconds=9.0"])
    with pytest.raises(ConfigError, match="window_seconds<=8"):
        recipe.finetune(too_long, synthetic_circor, tmp_path / "run2", ids[:6], ids[6:8], progress=False, cpu=True)


def test_one_pass_training_asks_one_question_per_window(source, synthetic_circor, tmp_path):
    """data.one_pass: one (window, whole report) item per window instead of one per feature, and
    the validation patients scored closed-set from the report, every feature's classes included."""
    from murmurlm.data.circor import load_circor
    from murmurlm.evaluate.predictions import prob_columns, read_predictions
    from murmurlm.models.instructions import REPORT_TASK
    from murmurlm.recipes import config_path, load_recipe, shipped_file

    recipe = load_recipe("finetune_audio_lm")
    ids = sorted(p.patient_id for p in load_circor(synthetic_circor).patients)
    features = ["Murmur", "Systolic murmur pitch"]
    cfg = recipe.load_finetune_config(config_path("audio_lm/tiny"), [
        "model.backend=whisper", f"model.source={source}", "model.lora.modules_to_save=[]",
        "model.lora.target=language", "model.lora.target_modules=[q_proj, v_proj, out_proj]",
        f"data.features=[{', '.join(features)}]", "data.one_pass=true", "data.report=false",
        "train.batch_size=4", "train.max_steps=2", "train.save_every=0", "train.log_every=1"])
    summary = recipe.finetune(cfg, synthetic_circor, tmp_path / "run", ids[:6], ids[6:8], progress=False, cpu=True)
    from murmurlm.models.instructions import InstructionDataset, load_prompts

    one = InstructionDataset(load_circor(synthetic_circor).patients[:6], load_prompts(shipped_file(cfg.data.prompts), features),
                             cfg.data.audio, features, report=True, questions=False)
    assert {it.task for it in one.items} == {REPORT_TASK}
    assert summary["train_examples"] == len(one)
    frame = read_predictions(tmp_path / "run" / "predictions_val.csv")
    for f in features:
        probs = frame[prob_columns(f)].to_numpy(float)
        assert np.allclose(probs.sum(axis=1), 1.0)


def test_gradient_checkpointing_trains_the_same(source):
    """Activation checkpointing (the shared, non-deprecated call) changes memory, not the gradients."""
    examples = [Example(_audio(CLASSES[i % 2], 300 + i), QUESTION, CLASSES[i % 2]) for i in range(2)]
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        lora = LoraSettings(rank=4, alpha=8, dropout=0.0, target="both")
        backend = get_backend("whisper").load(source, lora=lora, gradient_checkpointing=checkpointing)
        assert backend.base_model.is_activation_checkpointing == checkpointing
        for p in backend.trainable_parameters():
            torch.nn.init.normal_(p, std=0.05)
        backend.model.train()
        backend.loss(backend.collate(examples)).backward()
        grads.append([p.grad.clone() for p in backend.trainable_parameters()])
    assert all(g.abs().sum() > 0 for g in grads[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
