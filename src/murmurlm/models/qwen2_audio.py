"""The ``qwen2-audio`` backend: Qwen2-Audio (Chu et al. 2024) with LoRA adapters through peft.

:class:`Qwen2AudioBackend` implements :class:`~murmurlm.models.audio_lm.AudioLMBackend` on
``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor`` from a Hub id
(``Qwen/Qwen2-Audio-7B-Instruct``) or a local ``save_pretrained`` folder (such as the one
:func:`~murmurlm.models.tiny_qwen2_audio.build_tiny_qwen2_audio` writes).

Prompt layout (ChatML, the processor's chat template)::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\nAudio 1: <|audio_bos|><|AUDIO|>*n<|audio_eos|>\\n
    | prefix: system + audio (shared by every question about the same audio)                          |
    {question}<|im_end|>\\n<|im_start|>assistant\\n{answer}<|im_end|>
    | suffix                                      | answer: the only tokens in the loss |

Prefix and suffix are tokenised separately, identically in training, scoring and generation.
Closed-set scoring runs the prefix (the audio encoder and ~750 audio tokens for 30 s) once per
audio and reuses its key/value cache for every question and candidate answer.

transformers 5 details handled here (tested with 5.24): the processor keyword is ``audio=``
(not ``audios=``); ``feature_attention_mask`` must reach ``forward`` (the model derives the number
of audio tokens from it); the processor pads audio features to the full window (30 s for the 7B);
training batches are right-padded and generation batches left-padded, with ``position_ids`` from
the attention mask; the cache keyword is ``cache`` (``past_key_values`` is deprecated).

Examples
--------
>>> import numpy as np, tempfile
>>> from murmurlm.models.tiny_qwen2_audio import build_tiny_qwen2_audio
>>> from murmurlm.models.audio_lm import Example, LoraSettings
>>> backend = Qwen2AudioBackend.load(build_tiny_qwen2_audio(tempfile.mkdtemp()), lora=LoraSettings(rank=4))
>>> audio = np.zeros(16000, dtype=np.float32)
>>> batch = backend.collate([Example(audio, "Is a heart murmur present?", "Absent")])
>>> backend.tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100])
'Absent<|im_end|>'
>>> backend.score([audio], ["Is a heart murmur present?"], ["Present", "Absent"]).shape
(1, 2)
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from murmurlm.errors import ConfigError
from murmurlm.models.lm_utils import IGNORE_INDEX, pad_ids, positions_from_mask, quiet_peft, resolve_device, resolve_dtype
from murmurlm.models.audio_lm import (
    AudioLMBackend,
    AudioLMError,
    Batch,
    Example,
    LoraSettings,
    register_backend,
)

log = logging.getLogger(__name__)

# Where LoRA goes, by LoraSettings.target: module-name prefixes inside Qwen2AudioForConditionalGeneration.
_PARTS = {"audio": ("model.audio_tower",), "language": ("model.language_model",),
          "both": ("model.audio_tower", "model.language_model")}
_QUESTION_MARK = "\u0000QUESTION\u0000"  # placeholder used to split the rendered template


def lora_target_regex(settings: LoraSettings) -> str:
    """The peft ``target_modules`` regex for ``settings`` (full match on module names)."""
    parts = "|".join(re.escape(p) for p in _PARTS[settings.target])
    names = "|".join(re.escape(m) for m in settings.target_modules)
    return rf"(?:{parts})\..*\.(?:{names})"


@register_backend("qwen2-audio")
class Qwen2AudioBackend(AudioLMBackend):
    """Qwen2-Audio behind the :class:`AudioLMBackend` interface (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, processor, source: str):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.source = source
        fe = processor.feature_extractor
        self.sampling_rate = int(fe.sampling_rate)
        self.max_audio_seconds = float(fe.n_samples) / fe.sampling_rate
        tok = self.tokenizer
        vocab = tok.get_vocab()
        for special in ("<|im_end|>", "<|endoftext|>", processor.audio_token):
            if special not in vocab:
                raise AudioLMError(f"{source}: tokenizer has no {special} token; not a Qwen2-Audio tokenizer")
        self.end_id = tok.convert_tokens_to_ids("<|im_end|>")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")
        stop = {self.end_id, tok.convert_tokens_to_ids("<|endoftext|>")}
        self.stop_ids = sorted(i for i in stop if i is not None)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def load(cls, source, lora=None, device="cpu", dtype="float32", gradient_checkpointing=False,
             adapter=None) -> "Qwen2AudioBackend":
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

        if lora is not None and adapter is not None:
            raise AudioLMError("give either lora (a fresh adapter) or adapter (a saved one), not both; "
                               "to continue training a saved adapter use load_adapter(dir, trainable=True)")
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        source = str(source)
        local = Path(source).expanduser()
        if local.exists():
            source = str(local.resolve())
        try:
            processor = AutoProcessor.from_pretrained(source)
            model = Qwen2AudioForConditionalGeneration.from_pretrained(source, dtype=torch_dtype)
        except OSError as err:
            detail = " ".join(str(err).split())
            raise AudioLMError(f"cannot load Qwen2-Audio from {source!r}: {detail} (a Hub id needs the network or "
                               "the Hub cache; else download it and give the local folder)") from None
        if not isinstance(processor, Qwen2AudioProcessor):
            raise AudioLMError(f"{source}: processor is {type(processor).__name__}, not Qwen2AudioProcessor")
        model.to(dev)
        model.requires_grad_(False)
        model.eval()
        if gradient_checkpointing:
            model.config.use_cache = False
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.20 name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        backend = cls(model, processor, source)
        if lora is not None:
            backend._add_lora(lora)
        elif adapter is not None:
            backend.load_adapter(adapter, trainable=False)
        backend.model.eval()  # peft may leave it in training mode; a recipe calls .train()
        log.info("loaded %s on %s (%s): %.1fM parameters, %.2fM trainable", source, dev, torch_dtype,
                 backend.num_parameters() / 1e6, backend.num_parameters(trainable_only=True) / 1e6)
        return backend

    def _add_lora(self, settings: LoraSettings) -> None:
        from peft import LoraConfig, get_peft_model

        model = self.unwrapped_model
        pattern = lora_target_regex(settings)
        linear_names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
        for part in _PARTS[settings.target]:
            hits = [n for n in linear_names if n.startswith(part + ".") and re.fullmatch(pattern, n)]
            if not hits:
                leaves = sorted({n.rsplit(".", 1)[-1] for n in linear_names if n.startswith(part + ".")})
                raise ConfigError(f"lora.target_modules {settings.target_modules} match no linear layer in "
                                  f"{part}; its linear layers are: {', '.join(leaves)}")
        config = LoraConfig(
            r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
            target_modules=pattern, modules_to_save=list(settings.modules_to_save) or None,
            bias="none",
        )
        with quiet_peft():
            self.model = get_peft_model(model, config)

    # --- prompt encoding --------------------------------------------------------------------------
    def _split_prompt(self, question: str, system: str | None) -> tuple[str, str]:
        """Rendered chat template up to and including the audio (prefix), and the rest (suffix)."""
        messages = []
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": [{"type": "audio", "audio": "audio"},
                                                     {"type": "text", "text": _QUESTION_MARK}]})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if isinstance(text, list):
            text = text[0]
        prefix, mark, rest = text.partition(_QUESTION_MARK)
        if not mark or self.processor.audio_token not in prefix:
            raise AudioLMError(f"{self.source}: chat template does not put the audio before the question")
        return prefix, question + rest

    def _encode_prefixes(self, audios: Sequence[np.ndarray], prefixes: Sequence[str]):
        """Prefix token ids (audio tokens expanded, unpadded lists) and the audio features."""
        audios = [self.check_audio(a, f"audio {i}") for i, a in enumerate(audios)]
        enc = self.processor(text=list(prefixes), audio=audios, sampling_rate=self.sampling_rate,
                             return_tensors="pt", padding=True)
        ids = [row[mask.bool()].tolist() for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
        return ids, enc["input_features"], enc["feature_attention_mask"]

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _answer_ids(self, answer: str) -> list[int]:
        ids = self._text_ids(answer)
        if not ids:
            raise AudioLMError("empty answer text")
        return ids + [self.end_id]

    # --- training ---------------------------------------------------------------------------------
    def collate(self, examples: Sequence[Example]) -> Batch:
        if not examples:
            raise AudioLMError("collate: no examples")
        splits = []
        for i, e in enumerate(examples):
            if e.answer is None:
                raise AudioLMError(f"collate: example {i} has no answer (training needs one)")
            splits.append(self._split_prompt(e.question, e.system))
        prefix_ids, features, feature_mask = self._encode_prefixes([e.audio for e in examples],
                                                                   [p for p, _ in splits])
        rows, labels = [], []
        for pre, (_, suffix), e in zip(prefix_ids, splits, examples):
            prompt = pre + self._text_ids(suffix)
            answer = self._answer_ids(e.answer)
            rows.append(prompt + answer)
            labels.append([IGNORE_INDEX] * len(prompt) + answer)
        input_ids, attention_mask = pad_ids(rows, self.pad_id, "right")
        label_ids, _ = pad_ids(labels, IGNORE_INDEX, "right")
        return {"input_ids": input_ids, "attention_mask": attention_mask, "input_features": features,
                "feature_attention_mask": feature_mask, "labels": label_ids}

    def loss(self, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        if reduction not in ("mean", "sum"):
            raise AudioLMError(f"reduction {reduction!r} is not one of mean, sum")
        dev = self.device
        inputs = {k: v.to(dev) for k, v in batch.items()}
        labels = inputs.pop("labels")
        out = self.model(**inputs, use_cache=False)
        target = labels[:, 1:]
        keep = target != IGNORE_INDEX
        logits = out.logits[:, :-1][keep].float()  # only the answer positions, in float32
        total = F.cross_entropy(logits, target[keep], reduction="sum")
        if reduction == "sum":
            return total
        return total / keep.sum().clamp(min=1)

    # --- inference --------------------------------------------------------------------------------
    def score(self, audios, questions, candidates, system=None, batch_size=8) -> np.ndarray:
        if len(audios) != len(questions):
            raise AudioLMError(f"score: {len(audios)} audios but {len(questions)} questions")
        return self._score([(a, [(q, list(candidates))]) for a, q in zip(audios, questions)], system,
                           batch_size)[0] if len(audios) else np.zeros((0, len(candidates)))

    def score_tasks(self, audios, tasks, system=None, batch_size=8) -> list[np.ndarray]:
        """Several closed-set questions about the same audios, sharing one audio prefix per audio.

        ``tasks``: a sequence of ``(question, candidates)``; returns one ``(len(audios),
        len(candidates))`` array per task (what :meth:`score` would return for it).
        """
        tasks = [(q, list(c)) for q, c in tasks]
        if not len(audios):
            return [np.zeros((0, len(c))) for _, c in tasks]
        return self._score([(a, tasks) for a in audios], system, batch_size)

    @torch.no_grad()
    def _score(self, items, system, batch_size) -> list[np.ndarray]:
        """``items``: (audio, [(question, candidates), ...]) with the same candidate lists per task
        position. Returns one (num_items, num_candidates) array per task position."""
        num_tasks = len(items[0][1])
        for _, tasks in items:
            for q, cands in tasks:
                if not cands or len(set(cands)) != len(cands):
                    raise AudioLMError(f"score: candidates must be non-empty and distinct, got {cands}")
        results = [np.zeros((len(items), len(items[0][1][t][1]))) for t in range(num_tasks)]
        model = self.unwrapped_model
        was_training = model.training
        model.eval()
        prefix_text, _ = self._split_prompt("", system)
        try:
            for start in range(0, len(items), batch_size):
                chunk = items[start: start + batch_size]
                cache, prefix_mask = self._run_prefix(model, [a for a, _ in chunk], prefix_text)
                for t in range(num_tasks):
                    cands = chunk[0][1][t][1]
                    suffixes = [self._text_ids(self._split_prompt(tasks[t][0], system)[1]) for _, tasks in chunk]
                    logp = self._score_suffixes(model, cache, prefix_mask, suffixes,
                                                [self._answer_ids(c) for c in cands])
                    results[t][start: start + len(chunk)] = logp
        finally:
            model.train(was_training)
        out = []
        for r in results:
            r = r - r.max(axis=1, keepdims=True)
            p = np.exp(r)
            out.append(p / p.sum(axis=1, keepdims=True))
        return out

    def _run_prefix(self, model, audios, prefix_text):
        """Left-padded prefix forward (system + audio): its key/value cache and attention mask."""
        ids, features, feature_mask = self._encode_prefixes(audios, [prefix_text] * len(audios))
        input_ids, attention_mask = pad_ids(ids, self.pad_id, "left")
        dev = self.device
        attention_mask = attention_mask.to(dev)
        out = model(input_ids=input_ids.to(dev), attention_mask=attention_mask,
                    position_ids=positions_from_mask(attention_mask), input_features=features.to(dev),
                    feature_attention_mask=feature_mask.to(dev), use_cache=True)
        return out.cache, attention_mask

    def _score_suffixes(self, model, cache, prefix_mask, suffixes, answers) -> np.ndarray:
        """Summed log-likelihood of each answer after each (cached prefix + suffix): (B, C).

        One forward per answer over the B rows ``suffix + answer`` (right-padded) on top of the
        prefix cache, which is cropped back to the prefix afterwards: the cache is never copied,
        so memory stays at one prefix cache (~0.4 GB per 30 s audio for the 7B model).
        """
        dev = self.device
        scores = np.zeros((len(suffixes), len(answers)))
        for c, ans in enumerate(answers):
            input_ids, mask = pad_ids([suffix + ans for suffix in suffixes], self.pad_id, "right")
            full_mask = torch.cat([prefix_mask, mask.to(dev)], dim=1)
            positions = positions_from_mask(full_mask)[:, prefix_mask.shape[1]:]
            try:
                out = model(input_ids=input_ids.to(dev), attention_mask=full_mask, position_ids=positions,
                            cache=cache, use_cache=True)
            finally:
                cache.crop(-input_ids.shape[1])  # back to the prefix (negative: tokens to remove)
            logprobs = torch.log_softmax(out.logits.float(), dim=-1)
            target = torch.tensor(ans, device=dev)
            for b, suffix in enumerate(suffixes):
                # answer token j sits at position len(suffix) + j, predicted from the one before it
                pos = torch.arange(len(suffix) - 1, len(suffix) - 1 + len(ans), device=dev)
                scores[b, c] = float(logprobs[b, pos, target].sum())
        return scores

    @torch.no_grad()
    def generate(self, audios, questions, max_new_tokens=32, system=None, batch_size=8) -> list[str]:
        if len(audios) != len(questions):
            raise AudioLMError(f"generate: {len(audios)} audios but {len(questions)} questions")
        model = self.unwrapped_model
        was_training = model.training
        model.eval()
        answers: list[str] = []
        try:
            for start in range(0, len(audios), batch_size):
                chunk_a = audios[start: start + batch_size]
                splits = [self._split_prompt(q, system) for q in questions[start: start + batch_size]]
                ids, features, feature_mask = self._encode_prefixes(chunk_a, [p for p, _ in splits])
                rows = [pre + self._text_ids(suffix) for pre, (_, suffix) in zip(ids, splits)]
                input_ids, attention_mask = pad_ids(rows, self.pad_id, "left")
                dev = self.device
                out = model.generate(
                    input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev),
                    input_features=features.to(dev), feature_attention_mask=feature_mask.to(dev),
                    max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                    eos_token_id=self.stop_ids, pad_token_id=self.pad_id, use_cache=True,
                )
                new = out[:, input_ids.shape[1]:]
                answers.extend(t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True))
        finally:
            model.train(was_training)
        return answers

    # --- adapters ---------------------------------------------------------------------------------
    def save_adapter(self, directory) -> Path:
        model = self.unwrapped_model
        if not hasattr(model, "peft_config"):
            raise AudioLMError("save_adapter: the model has no LoRA adapter (load with lora=...)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(directory)
        (directory / "murmurlm_backend.json").write_text(json.dumps(
            {"backend": self.name, "source": self.source}, indent=2) + "\n")
        return directory

    def load_adapter(self, directory, trainable: bool = False) -> None:
        from peft import PeftModel, set_peft_model_state_dict
        from peft.utils import load_peft_weights

        directory = Path(directory)
        if not (directory / "adapter_config.json").is_file():
            raise AudioLMError(f"{directory}: no adapter_config.json; not an adapter folder written by save_adapter")
        model = self.unwrapped_model
        if hasattr(model, "peft_config"):
            weights = load_peft_weights(str(directory), device=str(self.device))
            result = set_peft_model_state_dict(model, weights)
            unexpected = [k for k in result.unexpected_keys if "lora_" in k or "modules_to_save" in k]
            if unexpected:
                raise AudioLMError(f"{directory}: adapter does not fit this model's LoRA layout "
                                   f"(e.g. {unexpected[0]})")
            for name, p in model.named_parameters():
                if "lora_" in name or "modules_to_save" in name:
                    p.requires_grad_(trainable)
        else:
            with quiet_peft():
                self.model = PeftModel.from_pretrained(model, str(directory), is_trainable=trainable)
            self.model.to(self.device)
