"""One interface for every audio language model murmurlm fine-tunes (Qwen2-Audio, Whisper, ...).

Recipes, evaluation, inference and the service talk to an :class:`AudioLMBackend` only; which model
sits behind it is a name in a config file, resolved by :func:`get_backend`. A backend turns
``(audio, question[, answer])`` triples into model inputs, computes the answer-only training loss,
scores a closed set of candidate answers (the way murmurlm predicts the 11 features: never an
unparseable answer) and generates free text. LoRA adapters are saved and loaded on their own, so a
checkpoint of a 7B model is a few megabytes.

Contract shared by every method
-------------------------------
- Audio is a 1-D float32 numpy array (mono, values about [-1, 1]) sampled at
  ``backend.sampling_rate`` (16 kHz for both current backends) and at most
  ``backend.max_audio_seconds`` long. Resampling and windowing happen upstream, in
  :mod:`murmurlm.models.instructions`; a backend raises :class:`AudioLMError` for a longer audio
  instead of silently cropping it.
- A question is the user's text without any chat markup; the backend adds its own template
  (audio placeholder tokens, roles, an optional system prompt). An answer is plain text.
- ``backend.model`` is the ``torch.nn.Module`` to optimise (the peft-wrapped model when LoRA is on).
  A recipe may replace it by a wrapper — ``backend.model = accelerator.prepare(backend.model)`` —
  and every method keeps working: :meth:`loss` calls ``self.model(...)`` (so DDP hooks run), while
  :meth:`score`, :meth:`generate` and the adapter methods use :attr:`unwrapped_model`.
- Batches (:meth:`collate`) hold CPU tensors; :meth:`loss`, :meth:`score` and :meth:`generate`
  move them to :attr:`device` themselves.

Examples
--------
>>> from murmurlm.models.audio_lm import LoraSettings, available_backends
>>> sorted(available_backends())
['qwen2-audio', 'whisper']
>>> LoraSettings(rank=8, alpha=16, target="language").scaling
2.0
>>> import numpy as np, tempfile
>>> from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio
>>> source = build_tiny_qwen2_audio(tempfile.mkdtemp(), seed=0)
>>> backend = get_backend("qwen2-audio").load(source, lora=LoraSettings(rank=4, alpha=8))
>>> audio = np.zeros(backend.sampling_rate, dtype=np.float32)  # 1 s of silence
>>> batch = backend.collate([Example(audio, "Is a heart murmur present?", "Absent")])
>>> backend.loss(batch).item() > 0
True
>>> probs = backend.score([audio], ["Is a heart murmur present?"], ["Present", "Absent"])
>>> probs.shape, bool(abs(probs.sum() - 1) < 1e-5)
((1, 2), True)
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Literal, Sequence

import numpy as np

from murmurlm.errors import MurmurlmError

if TYPE_CHECKING:  # torch is imported by the backends, not by users of the registry
    import torch

log = logging.getLogger(__name__)

LoraTarget = Literal["audio", "language", "both"]


class AudioLMError(MurmurlmError, ValueError):
    """Invalid input to an audio-LM backend (audio too long, wrong rate, empty candidates, ...)."""


@dataclass
class LoraSettings:
    """Where and how LoRA adapters are put into the model (peft ``LoraConfig`` underneath).

    ``target`` picks the part of the model: the audio encoder, the language model (the text decoder)
    or both; ``target_modules`` are linear-layer names matched inside that part (names shared by
    Qwen2-Audio's Whisper-style encoder and its Qwen2 language model, and by Whisper itself).
    """

    rank: int = 8  # higher: more capacity, more memory
    alpha: float = 16.0  # update scale is alpha / rank
    dropout: float = 0.05
    target: LoraTarget = "language"  # "audio" encoder, "language" model, or "both"
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    # Whole modules trained (and saved with the adapter) besides LoRA, by name suffix, e.g.
    # ["multi_modal_projector"] for Qwen2-Audio. Empty: LoRA weights only.
    modules_to_save: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"lora rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"lora alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora dropout must be in [0, 1), got {self.dropout}")
        if self.target not in ("audio", "language", "both"):
            raise ValueError(f"lora target {self.target!r} is not one of audio, language, both")
        if not self.target_modules:
            raise ValueError("lora target_modules is empty; name at least one linear layer, e.g. q_proj")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


@dataclass
class Example:
    """One instruction example: audio, a question about it, and (for training) the answer.

    ``system`` is an optional system prompt; ``meta`` carries anything a caller wants to keep with
    the example (patient id, recording name, feature name, window index) and is ignored by backends.
    """

    audio: np.ndarray
    question: str
    answer: str | None = None
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


Batch = dict  # str -> torch.Tensor, as produced by AudioLMBackend.collate


class AudioLMBackend(abc.ABC):
    """An audio language model with an optional LoRA adapter, seen through one small API.

    Subclasses set ``name`` (the registry name), ``sampling_rate`` and ``max_audio_seconds``, and
    hold ``model`` (the module to train) and ``source`` after :meth:`load`. Register a subclass with
    :func:`register_backend` and list its module in ``_BACKEND_MODULES``.

    A subclass implements :meth:`load`, :meth:`collate`, :meth:`generate`, :meth:`_answer_logits`
    (under :meth:`loss`) and :meth:`_candidate_log_likelihoods` (under :meth:`score`); the rest is
    shared and adapts through small hooks:

    - :attr:`lora_parts` (where each ``LoraSettings.target`` is, as module-name prefixes) and
      :attr:`lora_module_aliases` / :meth:`lora_target_names` (the family's names for the linear
      layers, e.g. Whisper's ``out_proj`` for ``o_proj``) drive :meth:`_add_lora`;
    - :meth:`_adapter_extra_config` adds the family's keys to ``murmurlm_backend.json``;
    - :meth:`_resolve_source` turns a ``source`` argument into what is loaded and recorded.

    :meth:`score` and :meth:`score_tasks` validate the candidates, run the hook in eval mode under
    ``torch.no_grad`` and apply :func:`candidate_softmax`; :meth:`save_adapter` and
    :meth:`load_adapter` are the same for every peft-wrapped model.
    """

    name: ClassVar[str] = ""
    sampling_rate: int = 16000
    max_audio_seconds: float = 30.0
    # Band mapping the model was fine-tuned with (murmurlm.models.instructions.AudioOptions.playback):
    # audio is read at sampling_rate / playback and handed over as sampling_rate audio.
    playback: float = 1.0
    model: "torch.nn.Module"
    source: "str | list[str]"
    # Where LoRA goes, by LoraSettings.target: module-name prefixes inside the loaded model.
    lora_parts: ClassVar[dict[str, tuple[str, ...]]] = {}
    # LoraSettings.target_modules names -> this family's linear-layer names (e.g. o_proj -> out_proj).
    lora_module_aliases: ClassVar[dict[str, str]] = {}

    def __init__(self, model: "torch.nn.Module", processor, source: "str | list[str]"):
        """A backend on a transformers processor (``.tokenizer`` and ``.feature_extractor``);
        the audio rate is the feature extractor's. Called by :meth:`load`."""
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.source = source
        self.sampling_rate = int(processor.feature_extractor.sampling_rate)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def load(
        cls,
        source: str | Path,
        lora: LoraSettings | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        adapter: str | Path | None = None,
    ) -> "AudioLMBackend":
        """Load the model and its processor from a Hub id or a local ``save_pretrained`` folder.

        Parameters
        ----------
        source : Hub id (``"Qwen/Qwen2-Audio-7B-Instruct"``) or a local folder.
        lora : when given, fresh trainable LoRA adapters are added as described and every other
            weight is frozen; when None (and no ``adapter``) the model is loaded frozen, for scoring.
        device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``"auto"`` picks cuda when available.
        dtype : ``"float32"``, ``"bfloat16"`` or ``"float16"``; ``"auto"`` means bfloat16 on GPU,
            float32 on CPU. LoRA weights are kept in float32 whatever the base dtype.
        gradient_checkpointing : trade compute for activation memory (for 7B models on one GPU).
        adapter : a folder written by :meth:`save_adapter`, loaded on top, frozen (its LoRA
            layout comes from the folder; call ``load_adapter(folder, trainable=True)`` instead to
            continue training it). Giving both ``lora`` and ``adapter`` is an AudioLMError.

        Raises
        ------
        AudioLMError (or ConfigError) naming the source when it cannot be loaded.
        """

    # --- training -------------------------------------------------------------------------------
    @abc.abstractmethod
    def collate(self, examples: Sequence[Example]) -> Batch:
        """Turn training examples into one right-padded batch of CPU tensors.

        Every example must have an ``answer``. The batch holds the model's input tensors and a
        ``labels`` tensor equal to the input ids on the answer tokens followed by the backend's
        end-of-answer token (``<|im_end|>`` for Qwen2-Audio, ``<|endoftext|>`` for Whisper) and
        ``-100`` everywhere else (system prompt, question, audio placeholders, padding), so that
        the loss covers exactly the answer. Usable as a DataLoader ``collate_fn`` (num_workers=0).
        """

    def prepare_batch(self, examples: Sequence[Example]) -> Batch:
        """Alias of :meth:`collate` (the name some recipes use)."""
        return self.collate(examples)

    def loss(self, batch: Batch, reduction: str = "mean") -> "torch.Tensor":
        """Cross-entropy over the answer tokens of ``batch`` (a scalar with a graph).

        ``reduction="mean"``: the mean over the unmasked tokens of the whole batch (token-weighted,
        not a mean of per-example means); ``"sum"``: their sum, so that a recipe can divide by the
        answer-token count of a global batch (see :meth:`count_loss_tokens`) and get the same
        gradient whatever the number of processes or accumulation steps. Calls ``self.model`` —
        possibly a DDP wrapper — so gradients flow and synchronise as the recipe expects (the
        backend's :meth:`_answer_logits` does the forward pass).
        """
        import torch.nn.functional as F

        if reduction not in ("mean", "sum"):
            raise AudioLMError(f"reduction {reduction!r} is not one of mean, sum")
        logits, targets = self._answer_logits(batch)
        total = F.cross_entropy(logits.float(), targets, reduction="sum")  # in float32
        if reduction == "sum":
            return total
        return total / max(targets.numel(), 1)

    @abc.abstractmethod
    def _answer_logits(self, batch: Batch) -> tuple["torch.Tensor", "torch.Tensor"]:
        """The forward pass under :meth:`loss`: ``(logits, targets)``, the ``(N, vocab)`` logits at
        the N positions that predict an answer token (a label that is not -100) and those N labels,
        on :attr:`device`, with a graph to the trainable weights."""

    @staticmethod
    def count_loss_tokens(batch: Batch) -> int:
        """How many tokens :meth:`loss` averages over (labels that are not -100)."""
        return int((batch["labels"] != -100).sum())

    # --- inference ------------------------------------------------------------------------------
    def score(
        self,
        audios: Sequence[np.ndarray],
        questions: Sequence[str],
        candidates: Sequence[str],
        system: str | None = None,
        batch_size: int = 8,
    ) -> np.ndarray:
        """Closed-set answer: the probability of each candidate answer for each (audio, question).

        Every candidate (followed by the end-of-answer token) is scored by its summed token
        log-likelihood given the audio and the question; a softmax over the candidates of one item
        gives its row. Returns float64 ``(len(audios), len(candidates))`` with rows summing to 1,
        candidates in the order given. Runs under ``torch.no_grad`` in eval mode and restores the
        model's training mode afterwards. ``len(audios) == len(questions)``; ``candidates`` must be
        non-empty and distinct.
        """
        if len(audios) != len(questions):
            raise AudioLMError(f"score: {len(audios)} audios but {len(questions)} questions")
        candidates = list(candidates)
        return self._score_items(audios, [[(q, candidates)] for q in questions], [candidates], system,
                                 batch_size)[0]

    def score_tasks(
        self,
        audios: Sequence[np.ndarray],
        tasks: Sequence[tuple[str, Sequence[str]]],
        system: str | None = None,
        batch_size: int = 8,
    ) -> list[np.ndarray]:
        """Several closed-set questions about the same audios: ``tasks`` is a sequence of
        ``(question, candidates)``; returns, per task, what :meth:`score` returns for it.

        All tasks go to :meth:`_candidate_log_likelihoods` at once, so that a backend encodes each
        audio once for all of them (qwen2-audio reuses the audio's key/value cache, whisper its
        encoder states).
        """
        tasks = [(q, list(c)) for q, c in tasks]
        return self._score_items(audios, [tasks] * len(audios), [c for _, c in tasks], system, batch_size)

    def _score_items(self, audios, item_tasks, candidate_lists, system, batch_size) -> list[np.ndarray]:
        """:meth:`score` and :meth:`score_tasks`: check, run the hook for the log-likelihoods, softmax."""
        for cands in candidate_lists:
            check_candidates(cands)
        if not len(audios):
            return [np.zeros((0, len(c))) for c in candidate_lists]
        with self._inference():
            loglik = self._candidate_log_likelihoods(audios, item_tasks, system, batch_size)
        return [candidate_softmax(r) for r in loglik]

    @abc.abstractmethod
    def _candidate_log_likelihoods(
        self,
        audios: Sequence[np.ndarray],
        item_tasks: Sequence[Sequence[tuple[str, list[str]]]],
        system: str | None,
        batch_size: int,
    ) -> list[np.ndarray]:
        """Summed token log-likelihood of every candidate answer: the hook under :meth:`score`.

        ``item_tasks[i]`` lists the ``(question, candidates)`` asked about ``audios[i]`` (at least
        one audio; the same number of tasks and the same candidate lists at each task position for
        every audio). Returns one float ``(len(audios), len(candidates))`` array per task position.
        Called in eval mode under ``torch.no_grad`` with validated candidates.
        """

    @contextlib.contextmanager
    def _inference(self) -> Iterator["torch.nn.Module"]:
        """Eval mode and ``torch.no_grad`` for the block, the training mode restored after it;
        yields :attr:`unwrapped_model`."""
        import torch

        model = self.unwrapped_model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                yield model
        finally:
            model.train(was_training)

    @abc.abstractmethod
    def generate(
        self,
        audios: Sequence[np.ndarray],
        questions: Sequence[str],
        max_new_tokens: int = 32,
        system: str | None = None,
        batch_size: int = 8,
    ) -> list[str]:
        """Free-text answers, greedy decoding, one per (audio, question), special tokens removed and
        whitespace stripped. Batches are left-padded; the result equals one-by-one generation."""

    # --- adapters -------------------------------------------------------------------------------
    def save_adapter(self, directory: str | Path) -> Path:
        """Write the LoRA adapter (weights + peft config) and a ``murmurlm_backend.json`` naming the
        backend and the base ``source`` (plus :meth:`_adapter_extra_config`) into ``directory``
        (created). Returns the directory. Raises AudioLMError when the model has no adapter."""
        model = self.unwrapped_model
        if not hasattr(model, "peft_config"):
            raise AudioLMError("save_adapter: the model has no LoRA adapter (load with lora=...)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(directory)
        meta = {"backend": self.name, "source": self.source, "playback": float(self.playback),
                **self._adapter_extra_config()}
        (directory / "murmurlm_backend.json").write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    def _adapter_extra_config(self) -> dict[str, Any]:
        """Keys this family adds to ``murmurlm_backend.json`` (hook; none by default)."""
        return {}

    def load_adapter(self, directory: str | Path, trainable: bool = False) -> None:
        """Replace the current adapter weights by those saved in ``directory`` (same LoRA layout;
        when the model has no adapter yet, one is added from the folder's config). After this,
        :meth:`score` and :meth:`generate` give what they gave when the adapter was saved."""
        from peft import PeftModel, set_peft_model_state_dict
        from peft.utils import load_peft_weights

        from murmurlm.models.lm_utils import quiet_peft

        directory = adapter_folder(directory)
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

    # --- LoRA -----------------------------------------------------------------------------------
    @classmethod
    def lora_target_names(cls, settings: LoraSettings) -> list[str]:
        """``settings.target_modules`` in this family's names (:attr:`lora_module_aliases`),
        in the order given, without repeats."""
        return list(dict.fromkeys(cls.lora_module_aliases.get(m, m) for m in settings.target_modules))

    @classmethod
    def lora_target_regex(cls, settings: LoraSettings) -> str:
        """The peft ``target_modules`` regex for ``settings`` (full match on module names)."""
        parts = "|".join(re.escape(p) for p in cls.lora_parts[settings.target])
        names = "|".join(re.escape(m) for m in cls.lora_target_names(settings))
        return rf"(?:{parts})\..*\.(?:{names})"

    def _add_lora(self, settings: LoraSettings) -> None:
        """Wrap the model in fresh trainable LoRA adapters (peft), refusing ``target_modules`` that
        match no linear layer in a targeted part (the error lists the part's linear layers)."""
        import torch
        from peft import LoraConfig, get_peft_model

        from murmurlm.errors import ConfigError
        from murmurlm.models.lm_utils import quiet_peft

        model = self.unwrapped_model
        pattern = self.lora_target_regex(settings)
        linear_names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
        for part in self.lora_parts[settings.target]:
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

    # --- loading steps shared by the backends' load ---------------------------------------------
    @classmethod
    def _resolve_source(cls, source: str | Path) -> str:
        """A local folder as its absolute path; anything else (a Hub id) as given."""
        source = str(source)
        local = Path(source).expanduser()
        return str(local.resolve()) if local.exists() else source

    @classmethod
    def _load_options(cls, source, lora: LoraSettings | None, adapter, device: str, dtype: str):
        """The checks and resolutions every :meth:`load` starts with: ``(source, device, dtype)``."""
        from murmurlm.models.lm_utils import resolve_device, resolve_dtype

        if lora is not None and adapter is not None:
            raise AudioLMError("give either lora (a fresh adapter) or adapter (a saved one), not both; "
                               "to continue training a saved adapter use load_adapter(dir, trainable=True)")
        dev = resolve_device(device)
        return cls._resolve_source(source), dev, resolve_dtype(dtype, dev)

    @staticmethod
    def _prepare_base_model(model: "torch.nn.Module", device: "torch.device",
                            gradient_checkpointing: bool) -> None:
        """Move the loaded model to ``device``, freeze it, eval mode; activation checkpointing on
        request (non-reentrant, so frozen inputs still pass gradients to LoRA weights)."""
        model.to(device)
        model.requires_grad_(False)
        model.eval()
        if gradient_checkpointing:
            model.config.use_cache = False
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.20 name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def _attach_adapter(self, lora: LoraSettings | None, adapter) -> None:
        """The end of :meth:`load`: fresh LoRA, or a saved adapter (frozen), then eval mode."""
        if lora is not None:
            self._add_lora(lora)
        elif adapter is not None:
            self.load_adapter(adapter, trainable=False)
        self.model.eval()  # peft may leave it in training mode; a recipe calls .train()

    # --- helpers shared by every backend --------------------------------------------------------
    @property
    def unwrapped_model(self) -> "torch.nn.Module":
        """``model`` with DDP / DeepSpeed / accelerate wrappers removed (follows ``.module``)."""
        model = self.model
        while hasattr(model, "module") and not hasattr(model, "peft_config"):
            model = model.module
        return model

    @property
    def device(self) -> "torch.device":
        return next(self.unwrapped_model.parameters()).device

    def trainable_parameters(self) -> Iterator["torch.nn.Parameter"]:
        """The parameters an optimiser should update (the LoRA weights when LoRA is on)."""
        return (p for p in self.model.parameters() if p.requires_grad)

    def num_parameters(self, trainable_only: bool = False) -> int:
        params = self.trainable_parameters() if trainable_only else self.model.parameters()
        return sum(p.numel() for p in params)

    def check_audio(self, audio: np.ndarray, where: str = "audio") -> np.ndarray:
        """Validate one audio input against this backend's contract; returns it as float32."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise AudioLMError(f"{where}: expected mono 1-D audio, got shape {audio.shape}")
        if audio.size == 0:
            raise AudioLMError(f"{where}: empty audio")
        seconds = audio.size / self.sampling_rate
        if seconds > self.max_audio_seconds + 1e-6:
            raise AudioLMError(
                f"{where}: {seconds:.2f} s at {self.sampling_rate} Hz is longer than the "
                f"{self.name} window ({self.max_audio_seconds:g} s); window or crop it first "
                "(murmurlm.models.instructions, option audio.mode)"
            )
        return audio.astype(np.float32, copy=False)


# --- registry ---------------------------------------------------------------------------------------
# Names -> modules that define (and register) the backend; imported on first use so that picking
# one backend never imports the other's dependencies.
_BACKEND_MODULES: dict[str, str] = {
    "qwen2-audio": "murmurlm.models.qwen2_audio",
    "whisper": "murmurlm.models.whisper.backend",
}
_REGISTRY: dict[str, type[AudioLMBackend]] = {}


def register_backend(name: str):
    """Class decorator: ``@register_backend("whisper")`` makes ``get_backend("whisper")`` return it."""

    def deco(cls: type[AudioLMBackend]) -> type[AudioLMBackend]:
        if not (isinstance(cls, type) and issubclass(cls, AudioLMBackend)):
            raise TypeError(f"register_backend({name!r}): {cls!r} is not an AudioLMBackend subclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_backends() -> tuple[str, ...]:
    """Names :func:`get_backend` accepts."""
    return tuple(dict.fromkeys([*_BACKEND_MODULES, *_REGISTRY]))


def get_backend(name: str) -> type[AudioLMBackend]:
    """The backend class registered as ``name`` (``"qwen2-audio"`` or ``"whisper"``)."""
    if name not in _REGISTRY and name in _BACKEND_MODULES:
        importlib.import_module(_BACKEND_MODULES[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AudioLMError(
            f"unknown audio-LM backend {name!r}; valid: {', '.join(available_backends())}"
        ) from None


class Continuation(str):
    """A closed-set candidate that is not the end of the answer: scored without the end-of-answer
    token (the answer goes on after it). One-pass answers score each feature's line of the
    structured report this way, given the lines before it
    (:func:`murmurlm.models.instructions.report_probabilities`).

    >>> c = Continuation("Murmur: Present; ")
    >>> isinstance(c, str), c == "Murmur: Present; ", is_continuation(c), is_continuation("Present")
    (True, True, True, False)
    """

    __slots__ = ()


def is_continuation(candidate: str) -> bool:
    """Whether a candidate is scored without the end-of-answer token (a :class:`Continuation`)."""
    return isinstance(candidate, Continuation)


def candidate_softmax(loglik: np.ndarray) -> np.ndarray:
    """Rows of summed candidate log-likelihoods -> probabilities (a stable softmax per row).

    >>> candidate_softmax(np.array([[-1.0, -1.0], [-1000.0, -1e4]])).round(3).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    r = np.asarray(loglik, dtype=np.float64)
    r = r - r.max(axis=1, keepdims=True)
    p = np.exp(r)
    return p / p.sum(axis=1, keepdims=True)


def check_candidates(cands: Sequence[str]) -> None:
    """Closed-set candidates must be non-empty and distinct (AudioLMError otherwise)."""
    if not cands or len(set(cands)) != len(cands):
        raise AudioLMError(f"score: candidates must be non-empty and distinct, got {list(cands)}")


def adapter_folder(directory: str | Path) -> Path:
    """``directory`` as a Path, checked to hold a peft ``adapter_config.json``."""
    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise AudioLMError(f"{directory}: no adapter_config.json; not an adapter folder written by save_adapter")
    return directory


def read_adapter_meta(directory: str | Path, required: bool = True) -> dict[str, Any]:
    """The ``murmurlm_backend.json`` of an adapter folder (``{}`` when absent and not ``required``)."""
    directory = Path(directory)
    path = directory / "murmurlm_backend.json"
    if not path.is_file():
        if required:
            raise AudioLMError(f"{path}: not found; is {directory} an adapter folder written by save_adapter?")
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AudioLMError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None


def load_backend_from_adapter(directory: str | Path, device: str = "cpu", dtype: str = "float32",
                              trainable: bool = False) -> AudioLMBackend:
    """Load base model + adapter from a folder written by :meth:`AudioLMBackend.save_adapter`.

    The folder's ``murmurlm_backend.json`` names the backend and the base ``source``.
    """
    directory = Path(directory)
    meta = read_adapter_meta(directory)
    for key in ("backend", "source"):
        if key not in meta:
            raise AudioLMError(f"{directory / 'murmurlm_backend.json'}: missing key {key!r}")
    cls = get_backend(meta["backend"])
    backend = cls.load(meta["source"], device=device, dtype=dtype, adapter=directory)
    backend.playback = float(meta.get("playback", 1.0))  # adapters saved before band mapping: resampled
    if trainable:
        backend.load_adapter(directory, trainable=True)
    return backend
