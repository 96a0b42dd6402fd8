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
        self.model = torch.nn.Linear(1, 1)
        self.score_calls = 0

    @classmethod
    def load(cls, source, lora=None, device="cpu", dtype="float32", gradient_checkpointing=False, adapter=None):
        return cls()

    def collate(self, examples):
        for e in examples:
            self.check_audio(e.audio)
        return {"x": torch.tensor([[float(np.abs(e.audio).mean())] for e in examples]),
                "labels": torch.tensor([[-100, len(e.answer or "")] for e in examples])}

    def loss(self, batch, reduction="mean"):
        per = (self.model(batch["x"]).squeeze(1) - batch["labels"][:, 1]) ** 2
        return per.sum() if reduction == "sum" else per.mean()

    def score(self, audios, questions, candidates, system=None, batch_size=8):
        self.score_calls += 1
        energy = np.array([float(np.abs(self.check_audio(a)).mean()) for a in audios])
        logits = -np.abs(energy[:, None] * 10 - np.array([len(c) for c in candidates])[None, :])
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def generate(self, audios, questions, max_new_tokens=32, system=None, batch_size=8):
        return ["x" * min(max_new_tokens, int(np.abs(a).mean() * 10)) for a in audios]

    def save_adapter(self, directory):
        raise AudioLMError("no adapter")

    def load_adapter(self, directory, trainable=False):
        raise AudioLMError("no adapter")


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
    got = backend.score_tasks(audios, tasks)
    assert backend.score_calls == 2 and [g.shape for g in got] == [(2, 2), (2, 3)]
    for (q, cands), g in zip(tasks, got):
        np.testing.assert_allclose(g, backend.score(audios, [q, q], cands))
    batch = backend.prepare_batch([Example(a, "q", "ab") for a in audios])
    assert backend.count_loss_tokens(batch) == 2
    assert backend.num_parameters() == 2 and backend.num_parameters(trainable_only=True) == 2
    assert backend.device == torch.device("cpu")


def test_unwrapped_model_follows_wrappers():
    backend = EnergyBackend()
    inner = backend.model

    class Wrapper(torch.nn.Module):  # what DDP looks like from outside
        def __init__(self, module):
            super().__init__()
            self.module = module

    backend.model = Wrapper(Wrapper(inner))
    assert backend.unwrapped_model is inner
    assert sum(1 for _ in backend.trainable_parameters()) == 2


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
