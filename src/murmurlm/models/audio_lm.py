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
>>> from murmurlm.models.tiny_qwen2_audio import build_tiny_qwen2_audio
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
import importlib
import logging
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
    hold ``model`` (the module to train) after :meth:`load`. Register a subclass with
    :func:`register_backend` and list its module in ``_BACKEND_MODULES``.
    """

    name: ClassVar[str] = ""
    sampling_rate: int = 16000
    max_audio_seconds: float = 30.0
    model: "torch.nn.Module"

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

    @abc.abstractmethod
    def loss(self, batch: Batch, reduction: str = "mean") -> "torch.Tensor":
        """Cross-entropy over the answer tokens of ``batch`` (a scalar with a graph).

        ``reduction="mean"``: the mean over the unmasked tokens of the whole batch (token-weighted,
        not a mean of per-example means); ``"sum"``: their sum, so that a recipe can divide by the
        answer-token count of a global batch (see :meth:`count_loss_tokens`) and get the same
        gradient whatever the number of processes or accumulation steps. Calls ``self.model`` —
        possibly a DDP wrapper — so gradients flow and synchronise as the recipe expects.
        """

    @staticmethod
    def count_loss_tokens(batch: Batch) -> int:
        """How many tokens :meth:`loss` averages over (labels that are not -100)."""
        return int((batch["labels"] != -100).sum())

    # --- inference ------------------------------------------------------------------------------
    @abc.abstractmethod
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

    def score_tasks(
        self,
        audios: Sequence[np.ndarray],
        tasks: Sequence[tuple[str, Sequence[str]]],
        system: str | None = None,
        batch_size: int = 8,
    ) -> list[np.ndarray]:
        """Several closed-set questions about the same audios: ``tasks`` is a sequence of
        ``(question, candidates)``; returns, per task, what :meth:`score` returns for it.

        The default asks :meth:`score` once per task; a backend may override it to encode each
        audio once for all the tasks (the qwen2-audio backend reuses the audio's key/value cache).
        """
        return [self.score(audios, [q] * len(audios), cands, system=system, batch_size=batch_size)
                for q, cands in tasks]

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
    @abc.abstractmethod
    def save_adapter(self, directory: str | Path) -> Path:
        """Write the LoRA adapter (weights + peft config) and a ``murmurlm_backend.json`` naming the
        backend and the base ``source`` into ``directory`` (created). Returns the directory.
        Raises AudioLMError when the model has no adapter."""

    @abc.abstractmethod
    def load_adapter(self, directory: str | Path, trainable: bool = False) -> None:
        """Replace the current adapter weights by those saved in ``directory`` (same LoRA layout;
        when the model has no adapter yet, one is added from the folder's config). After this,
        :meth:`score` and :meth:`generate` give what they gave when the adapter was saved."""

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
    "whisper": "murmurlm.models.whisper_lm",
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


def load_backend_from_adapter(directory: str | Path, device: str = "cpu", dtype: str = "float32",
                              trainable: bool = False) -> AudioLMBackend:
    """Load base model + adapter from a folder written by :meth:`AudioLMBackend.save_adapter`.

    The folder's ``murmurlm_backend.json`` names the backend and the base ``source``.
    """
    import json

    directory = Path(directory)
    meta_path = directory / "murmurlm_backend.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise AudioLMError(f"{meta_path}: not found; is {directory} an adapter folder written by save_adapter?") from None
    except json.JSONDecodeError as err:
        raise AudioLMError(f"{meta_path}:{err.lineno}: invalid JSON: {err.msg}") from None
    for key in ("backend", "source"):
        if key not in meta:
            raise AudioLMError(f"{meta_path}: missing key {key!r}")
    cls = get_backend(meta["backend"])
    backend = cls.load(meta["source"], device=device, dtype=dtype, adapter=directory)
    if trainable:
        backend.load_adapter(directory, trainable=True)
    return backend
