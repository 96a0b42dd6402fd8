"""The ``qwen2-audio`` backend: Qwen2-Audio (Chu et al. 2024) with LoRA adapters through peft.

:class:`Qwen2AudioBackend` implements :class:`~murmurlm.models.audio_lm.AudioLMBackend` on
``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor`` from a Hub id
(``Qwen/Qwen2-Audio-7B-Instruct``) or a local ``save_pretrained`` folder (such as the one
:func:`~murmurlm.testing.tiny_qwen2_audio.build_tiny_qwen2_audio` writes).

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
>>> from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio
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

import logging
from typing import Sequence

import numpy as np
import torch

from murmurlm.models.lm_utils import IGNORE_INDEX, pad_ids, positions_from_mask
from murmurlm.models.audio_lm import (
    AudioLMBackend,
    AudioLMError,
    Batch,
    Example,
    is_continuation,
    LoraSettings,
    register_backend,
)

log = logging.getLogger(__name__)

_QUESTION_MARK = "\u0000QUESTION\u0000"  # placeholder used to split the rendered template


@register_backend("qwen2-audio")
class Qwen2AudioBackend(AudioLMBackend):
    """Qwen2-Audio behind the :class:`AudioLMBackend` interface (see the module docstring)."""

    # Module-name prefixes inside Qwen2AudioForConditionalGeneration; its Whisper-style encoder and
    # its Qwen2 language model both name their linear layers as LoraSettings does (q_proj ... o_proj).
    lora_parts = {"audio": ("model.audio_tower",), "language": ("model.language_model",),
                  "both": ("model.audio_tower", "model.language_model")}

    def __init__(self, model: torch.nn.Module, processor, source: str):
        super().__init__(model, processor, source)
        fe = processor.feature_extractor
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

        source, dev, torch_dtype = cls._load_options(source, lora, adapter, device, dtype)
        try:
            processor = AutoProcessor.from_pretrained(source)
            model = Qwen2AudioForConditionalGeneration.from_pretrained(source, dtype=torch_dtype)
        except OSError as err:
            detail = " ".join(str(err).split())
            raise AudioLMError(f"cannot load Qwen2-Audio from {source!r}: {detail} (a Hub id needs the network or "
                               "the Hub cache; else download it and give the local folder)") from None
        if not isinstance(processor, Qwen2AudioProcessor):
            raise AudioLMError(f"{source}: processor is {type(processor).__name__}, not Qwen2AudioProcessor")
        cls._prepare_base_model(model, dev, gradient_checkpointing)
        backend = cls(model, processor, source)
        backend._attach_adapter(lora, adapter)
        log.info("loaded %s on %s (%s): %.1fM parameters, %.2fM trainable", source, dev, torch_dtype,
                 backend.num_parameters() / 1e6, backend.num_parameters(trainable_only=True) / 1e6)
        return backend

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
        return ids if is_continuation(answer) else ids + [self.end_id]

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

    def _answer_logits(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.device
        inputs = {k: v.to(dev) for k, v in batch.items()}
        labels = inputs.pop("labels")
        out = self.model(**inputs, use_cache=False)
        target = labels[:, 1:]
        keep = target != IGNORE_INDEX
        return out.logits[:, :-1][keep], target[keep]  # only the answer positions

    # --- inference --------------------------------------------------------------------------------
    def _candidate_log_likelihoods(self, audios, item_tasks, system, batch_size) -> list[np.ndarray]:
        """One prefix forward (system + audio) per audio, its key/value cache reused for every
        question and candidate of every task (see :meth:`_score_suffixes`)."""
        results = [np.zeros((len(audios), len(cands))) for _, cands in item_tasks[0]]
        model = self.unwrapped_model
        prefix_text, _ = self._split_prompt("", system)
        for start in range(0, len(audios), batch_size):
            chunk = list(audios[start: start + batch_size])
            chunk_tasks = item_tasks[start: start + len(chunk)]
            cache, prefix_mask = self._run_prefix(model, chunk, prefix_text)
            for t, r in enumerate(results):
                cands = chunk_tasks[0][t][1]
                suffixes = [self._text_ids(self._split_prompt(tasks[t][0], system)[1]) for tasks in chunk_tasks]
                r[start: start + len(chunk)] = self._score_suffixes(model, cache, prefix_mask, suffixes,
                                                                    [self._answer_ids(c) for c in cands])
        return results

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

    def generate(self, audios, questions, max_new_tokens=32, system=None, batch_size=8) -> list[str]:
        if len(audios) != len(questions):
            raise AudioLMError(f"generate: {len(audios)} audios but {len(questions)} questions")
        answers: list[str] = []
        with self._inference() as model:
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
        return answers


def lora_target_regex(settings: LoraSettings) -> str:
    """The peft ``target_modules`` regex for ``settings`` (:meth:`AudioLMBackend.lora_target_regex`)."""
    return Qwen2AudioBackend.lora_target_regex(settings)
