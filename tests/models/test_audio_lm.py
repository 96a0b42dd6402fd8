"""The backend interface: registry, LoraSettings, the shared helpers and defaults of AudioLMBackend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from murmurlm.config import load_config
from murmurlm.errors import ConfigError, MurmurlmError
from murmurlm.models import audio_lm
from murmurlm.models.audio_lm import (
    AudioLMBackend,
    AudioLMError,
    Example,
    LoraSettings,
    available_backends,
    get_backend,
    load_backend_from_adapter,
)


class EnergyBackend(AudioLMBackend):
    """A stand-in backend: scores a candidate by how well its length matches the audio's energy.

    Only what the interface itself provides is under test here; real models are tested in
    test_qwen2_audio.py and test_whisper_lm.py.
    """

    sampling_rate = 8000
    max_audio_seconds = 1.0

    def __init__(self):
        self.model = torch.nn.Linear(1, 4)
        self.score_calls = 0

    @classmethod
    def load(cls, source, lora=None, device="cpu", dtype="float32", gradient_checkpointing=False, adapter=None):
        return cls()

    def collate(self, examples):
        for e in examples:
            self.check_audio(e.audio)
        return {"x": torch.tensor([[float(np.abs(e.audio).mean())] for e in examples]),
                "labels": torch.tensor([[-100, len(e.answer or "")] for e in examples])}

    def _answer_logits(self, batch):  # one answer token per example, a 4-token vocabulary
        return self.model(batch["x"]), batch["labels"][:, 1] % 4

    def _candidate_log_likelihoods(self, audios, item_tasks, system, batch_size):
        self.score_calls += 1
        assert not torch.is_grad_enabled() and not self.model.training
        energy = np.array([float(np.abs(self.check_audio(a)).mean()) for a in audios])
        return [-np.abs(energy[:, None] * 10 - np.array([len(c) for c in cands])[None, :])
                for _, cands in item_tasks[0]]

    def generate(self, audios, questions, max_new_tokens=32, system=None, batch_size=8):
        return ["x" * min(max_new_tokens, int(np.abs(a).mean() * 10)) for a in audios]



def test_registry_names_both_backends_and_rejects_unknown_ones():
    assert set(available_backends()) >= {"qwen2-audio", "whisper"}
    with pytest.raises(AudioLMError, match="valid: qwen2-audio, whisper"):
        get_backend("gpt-audio")
    assert issubclass(get_backend("qwen2-audio"), AudioLMBackend)
    assert get_backend("qwen2-audio").name == "qwen2-audio"


def test_register_backend(monkeypatch):
    monkeypatch.setattr(audio_lm, "_REGISTRY", dict(audio_lm._REGISTRY))
    audio_lm.register_backend("energy")(EnergyBackend)
    assert get_backend("energy") is EnergyBackend and "energy" in available_backends()
    with pytest.raises(TypeError):
        audio_lm.register_backend("not-a-backend")(object)


def test_lora_settings_validate_and_load_from_yaml(tmp_path):
    assert LoraSettings(rank=16, alpha=32).scaling == 2.0
    for bad in ({"rank": 0}, {"alpha": 0}, {"dropout": 1.0}, {"target": "decoder"}, {"target_modules": []}):
        with pytest.raises(ValueError):
            LoraSettings(**bad)
    path = tmp_path / "lora.yaml"
    path.write_text("rank: 4\ntarget: audio\ntarget_modules: [q_proj, out_proj]\n")
    assert load_config(LoraSettings, path).target_modules == ["q_proj", "out_proj"]
    with pytest.raises(ConfigError, match="target"):
        load_config(LoraSettings, path, ["target=encoder"])


def test_check_audio_enforces_the_contract():
    backend = EnergyBackend()
    out = backend.check_audio(np.zeros(8000, dtype=np.float64))
    assert out.dtype == np.float32
    with pytest.raises(AudioLMError, match="longer than"):
        backend.check_audio(np.zeros(8001))
    with pytest.raises(AudioLMError, match="mono"):
        backend.check_audio(np.zeros((2, 100)))
    with pytest.raises(AudioLMError, match="empty"):
        backend.check_audio(np.zeros(0))
    assert issubclass(AudioLMError, MurmurlmError)


def test_default_helpers():
    backend = EnergyBackend()
    rng = np.random.default_rng(0)
    audios = [rng.uniform(-0.2, 0.2, 4000).astype(np.float32), rng.uniform(-0.6, 0.6, 8000).astype(np.float32)]
    tasks = [("q1", ["a", "abc"]), ("q2", ["ab", "abcd", "abcdef"])]
    backend.model.train()
    got = backend.score_tasks(audios, tasks)
    assert backend.score_calls == 1 and [g.shape for g in got] == [(2, 2), (2, 3)]  # one hook call
    assert backend.model.training  # the training mode is restored
    for (q, cands), g in zip(tasks, got):
        np.testing.assert_allclose(g, backend.score(audios, [q, q], cands))
        np.testing.assert_allclose(g.sum(axis=1), 1.0)
    batch = backend.prepare_batch([Example(a, "q", "ab") for a in audios])
    assert backend.count_loss_tokens(batch) == 2
    total, mean = backend.loss(batch, reduction="sum"), backend.loss(batch)
    assert total.requires_grad and total.ndim == 0
    torch.testing.assert_close(mean, total / 2)  # the mean over the answer tokens
    with pytest.raises(AudioLMError, match="reduction 'none'"):
        backend.loss(batch, reduction="none")
    assert backend.num_parameters() == 8 and backend.num_parameters(trainable_only=True) == 8
    assert backend.device == torch.device("cpu")


def test_score_checks_its_inputs_before_the_model_runs():
    backend = EnergyBackend()
    audio = np.zeros(800, dtype=np.float32)
    for bad in ([], ["a", "a"]):
        with pytest.raises(AudioLMError, match="non-empty and distinct"):
            backend.score([audio], ["q"], bad)
        with pytest.raises(AudioLMError, match="non-empty and distinct"):
            backend.score([], [], bad)  # also without audios
        with pytest.raises(AudioLMError, match="non-empty and distinct"):
            backend.score_tasks([audio], [("q", ["b"]), ("q", bad)])
    with pytest.raises(AudioLMError, match="2 audios but 1 questions"):
        backend.score([audio, audio], ["q"], ["a"])
    assert backend.score_calls == 0
    assert backend.score([], [], ["a", "b"]).shape == (0, 2)
    assert [p.shape for p in backend.score_tasks([], [("q", ["a"]), ("r", ["a", "b", "c"])])] == [(0, 1), (0, 3)]


def test_candidate_softmax_is_a_stable_softmax_per_row():
    loglik = np.array([[-2.0, -1.0, -3.0], [-1e4, -1e4 - 1.0, -2e4]])
    p = audio_lm.candidate_softmax(loglik)
    expected = np.exp(loglik[0]) / np.exp(loglik[0]).sum()
    np.testing.assert_allclose(p[0], expected)
    np.testing.assert_allclose(p[1], [1 / (1 + np.e ** -1), 1 / (1 + np.e), 0.0])
    assert p.dtype == np.float64 and np.isfinite(p).all()


def test_unwrapped_model_follows_wrappers():
    backend = EnergyBackend()
    inner = backend.model

    class Wrapper(torch.nn.Module):  # what DDP looks like from outside
        def __init__(self, module):
            super().__init__()
            self.module = module

    backend.model = Wrapper(Wrapper(inner))
    assert backend.unwrapped_model is inner
    assert sum(1 for _ in backend.trainable_parameters()) == 2  # weight and bias


def test_adapters_need_a_peft_model(tmp_path):
    backend = EnergyBackend()
    with pytest.raises(AudioLMError, match="no LoRA adapter"):
        backend.save_adapter(tmp_path / "a")
    with pytest.raises(AudioLMError, match="no adapter_config.json"):
        backend.load_adapter(tmp_path)


def test_load_backend_from_adapter_errors(tmp_path):
    with pytest.raises(AudioLMError, match="murmurlm_backend.json: not found"):
        load_backend_from_adapter(tmp_path)
    (tmp_path / "murmurlm_backend.json").write_text('{"backend": "qwen2-audio",\n  "source": }')
    with pytest.raises(AudioLMError, match=r"murmurlm_backend.json:2: invalid JSON"):
        load_backend_from_adapter(tmp_path)
    (tmp_path / "murmurlm_backend.json").write_text(json.dumps({"backend": "qwen2-audio"}))
    with pytest.raises(AudioLMError, match="missing key 'source'"):
        load_backend_from_adapter(tmp_path)
    (tmp_path / "murmurlm_backend.json").write_text(json.dumps({"backend": "nope", "source": "x"}))
    with pytest.raises(AudioLMError, match="unknown audio-LM backend"):
        load_backend_from_adapter(tmp_path)
