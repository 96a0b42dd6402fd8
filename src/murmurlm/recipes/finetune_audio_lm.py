"""Recipe: fine-tune an audio language model (Qwen2-Audio, Whisper) with LoRA on CirCor questions.

Run::

    murmurlm finetune --config audio_lm/qwen2_audio_7b --data $MURMURLM_CIRCOR --out runs/qwen2a
    accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml \\
        -m murmurlm.recipes.finetune_audio_lm --config audio_lm/qwen2_audio_7b --data DIR --out RUN_DIR

The loop is written out (torchtune style) on :class:`accelerate.Accelerator`: one process per GPU
(DDP, or DeepSpeed ZeRO-2 through the accelerate config; FSDP is refused for now),
``train.batch_size`` examples per micro-step *in total* (split across processes,
``split_batches``), ``grad_accum`` micro-steps per optimiser step, gradient clipping, a warmup +
cosine schedule, one JSON line per logged step in ``metrics.jsonl``.
The loss of a micro-step is the mean over the answer tokens of its whole global batch (token counts
are summed across processes), so N processes compute the gradient one process computes; with
``grad_accum`` > 1 the micro-step losses are averaged.

Data order: with ``train.sample_power`` 0 (the default) every (window, question) item is seen once
an epoch, in a permutation that is a function of ``(seed, epoch)``. With ``sample_power`` > 0 each
micro-step's ``batch_size`` items are drawn with replacement (:func:`draw_items`, a function of
``(seed, micro-step)``), an item weighted ``count ** -sample_power`` with ``count`` the number of
items of its (feature, class) (:func:`item_weights`), so that long-tail classes are seen (0.5:
a class is drawn in proportion to the square root of its count); an "epoch" is then just
``len(items) // batch_size`` micro-steps. ``train.max_minutes`` is a wall-clock budget of the
training loop: the run stops after the first optimiser step past it, checkpoints it, saves the
adapter and evaluates as at the planned end; ``summary["stopped"]`` says ``"budget"`` or
``"steps"``. The budget counts only the loop of this process's run (not model loading, not the
final evaluation, not the steps a resumed run had done before). ``data.eval_max_windows`` scores
more (or fewer) windows per recording than training takes (``data.audio.max_windows``).

Every ``eval_every`` steps (and at the end) the validation patients are scored closed-set: each
window of each recording, every feature, every class answer by its log-likelihood; recordings are
averaged over windows and aggregated to patients by ``evaluate.aggregate.aggregate_patient``; the
metrics go to ``metrics.jsonl`` and the final predictions to ``predictions_val.csv`` (the
evaluation's predictions format).

Every ``save_every`` steps and after the last one, ``checkpoints/step_<N>/`` gets the adapter
(``adapter/``) and ``trainer_state.pt`` (optimizer, scheduler, step, RNG states); ``--resume``
continues from the latest one, replaying the run exactly: each epoch's data order is a function of
``(seed, epoch)`` (drawn items: of ``(seed, micro-step)``) and each micro-step's dropout masks of
``(seed, step, micro-step, process)``.
``adapter/`` (final) and ``config.yaml`` describe the finished run.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from murmurlm.config import config_to_dict, load_config, save_config
from murmurlm.data import labels as L
from murmurlm.data.circor import Patient
from murmurlm.data.manifest import open_circor
from murmurlm.errors import ConfigError, MurmurlmError
from murmurlm.models.audio_lm import AudioLMBackend, LoraSettings, get_backend
from murmurlm.models.instructions import (
    REPORT_TASK,
    AudioOptions,
    recording_segments,
    InstructionDataset,
    PromptTemplates,
    load_prompts,
    load_recording,
    read_rate,
    recording_labels,
    recording_probabilities,
    report_probabilities,
)
from murmurlm.recipes import recipe_arguments, resolve_config, shipped_file
from murmurlm.train.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from murmurlm.train.metrics_log import MetricsLog
from murmurlm.train.schedule import warmup_cosine
from murmurlm.train.seeding import epoch_seed, set_seed

log = logging.getLogger("murmurlm.recipes.finetune_audio_lm")
STATE_KIND = "murmurlm-audio-lm-trainer"
TINY_SOURCE = "tiny"  # model.source: build the tiny offline Qwen2-Audio into the run folder


@dataclass
class ModelConfig:
    backend: str = "qwen2-audio"  # a name of murmurlm.models.audio_lm.available_backends()
    source: str = "Qwen/Qwen2-Audio-7B-Instruct"  # Hub id, local folder, or "tiny" (test double)
    dtype: str = "auto"  # auto: bf16 on GPU, fp32 on CPU; LoRA weights stay fp32
    gradient_checkpointing: bool = False  # less activation memory, ~30% slower
    tiny_window_seconds: int = 2  # source "tiny" only: its audio window
    lora: LoraSettings = field(default_factory=LoraSettings)
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific load() keywords, e.g.
    # whisper: {window_seconds: 10, encoder_cache: true}; see the backend's load() docstring


@dataclass
class DataConfig:
    prompts: str = "audio_lm/prompts.yaml"  # a file, or one in the shipped configs (murmurlm.recipes)
    features: list[str] = field(default_factory=lambda: list(L.FEATURE_NAMES))
    report: bool = True  # also the whole-report question
    one_pass: bool = False  # train and score the whole-report answer only (one item per window, 11 answers in one)
    label_rule: str = "patient"  # patient | location (no murmur where it is not heard)
    val_fraction: float = 0.2  # without --split: stratified share of patients kept for validation
    max_patients: int | None = None  # use only the first N patients (smoke tests)
    audio: AudioOptions = field(default_factory=AudioOptions)
    eval_max_windows: int | None = None  # windows per recording when scoring; None: audio.max_windows; 0: all

    def __post_init__(self) -> None:
        for f in self.features:
            L.feature(f)
        if self.label_rule not in ("patient", "location"):
            raise ValueError(f"label_rule {self.label_rule!r} is not one of patient, location")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.eval_max_windows is not None and self.eval_max_windows < 0:
            raise ValueError(f"eval_max_windows must be >= 0 (0: all) or null, got {self.eval_max_windows}")

    def eval_audio(self) -> AudioOptions:
        """The audio options of scoring: ``audio`` with ``eval_max_windows`` windows per recording."""
        if self.eval_max_windows is None:
            return self.audio
        return replace(self.audio, max_windows=self.eval_max_windows or None)


@dataclass
class TrainConfig:
    seed: int = 0
    epochs: int = 3
    max_steps: int | None = None  # optimiser steps; None: epochs x steps per epoch
    batch_size: int = 8  # examples per optimiser micro-step, all processes together
    grad_accum: int = 1  # micro-steps per optimiser step
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant (after warmup)
    max_grad_norm: float = 1.0  # 0: no clipping
    log_every: int = 10
    eval_every: int = 0  # steps; 0: only at the end
    save_every: int = 200  # steps; 0: only at the end (the last step is always checkpointed)
    keep_checkpoints: int = 2  # newest step checkpoints kept
    eval_max_patients: int | None = None  # periodic evaluation on the first N val patients (all at the end)
    score_batch_size: int = 8
    sample_power: float = 0.0  # 0: every item once an epoch, in a (seed, epoch) order; > 0: each micro-step's
    # examples drawn with replacement, an item weighted count(feature, class) ** -sample_power (long tail seen more)
    max_minutes: float | None = None  # wall-clock budget of the training loop (this process's run: a resumed
    # run counts only its own time); stops after the first optimiser step past it. None: no budget

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule {self.schedule!r} is not one of cosine, constant")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.sample_power < 0:
            raise ValueError(f"sample_power must be >= 0, got {self.sample_power}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0 or null, got {self.max_minutes}")


@dataclass
class FinetuneConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_finetune_config(path: str | Path | None, overrides: Sequence[str] = ()) -> FinetuneConfig:
    """The run config from a YAML file or shipped config name (``audio_lm/whisper_base_cpu``) and
    ``key=value`` overrides; ``None``: the dataclass defaults."""
    return load_config(FinetuneConfig, resolve_config(path), list(overrides))


load_recipe_config = load_finetune_config  # the name every recipe shares


# --------------------------------------------------------------------------------------------
# setup


def _split(patients: list[Patient], cfg: FinetuneConfig, train_ids, val_ids) -> tuple[list[Patient], list[Patient]]:
    by_id = {p.patient_id: p for p in patients}
    if train_ids is not None:
        missing = [i for i in [*train_ids, *(val_ids or [])] if i not in by_id]
        if missing and cfg.data.max_patients is None:
            raise MurmurlmError(f"split names {len(missing)} patient(s) not in the data, e.g. {missing[0]}")
        return [by_id[i] for i in train_ids if i in by_id], [by_id[i] for i in (val_ids or []) if i in by_id]
    from murmurlm.data.splits import train_val_split

    train, val = train_val_split(patients, cfg.data.val_fraction, seed=cfg.train.seed)
    return [by_id[i] for i in train], [by_id[i] for i in val]


def _load_backend(cfg: FinetuneConfig, out: Path, device: str, accelerator) -> AudioLMBackend:
    source = cfg.model.source
    if source == TINY_SOURCE:
        source = str(out / "tiny_model")
        if accelerator.is_main_process and not (Path(source) / "config.json").exists():
            from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio

            if cfg.model.backend != "qwen2-audio":
                raise ConfigError(f"model.source=tiny builds a Qwen2-Audio; set model.backend=qwen2-audio "
                                  f"(got {cfg.model.backend!r})")
            build_tiny_qwen2_audio(source, seed=cfg.train.seed, window_seconds=cfg.model.tiny_window_seconds)
        accelerator.wait_for_everyone()
    try:
        return get_backend(cfg.model.backend).load(
            source, lora=cfg.model.lora, device=device, dtype=cfg.model.dtype,
            gradient_checkpointing=cfg.model.gradient_checkpointing, **cfg.model.options,
        )
    except TypeError as err:  # an option the backend's load() does not take
        raise ConfigError(f"model.options {sorted(cfg.model.options)}: {err}") from None


def _epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    """``train.sample_power`` 0: every item once, in an order that is a function of ``(seed, epoch)``."""
    return np.random.default_rng(epoch_seed(seed, epoch)).permutation(num_items).tolist()


DRAW_STREAM = 0xD5A1  # tags the seeds of the item draws apart from the run's other (seed, ...) streams


def item_classes(dataset: InstructionDataset) -> list[tuple[str, str]]:
    """``(feature, class)`` of every item of ``dataset`` (its label rule; the whole-report question
    is ``("report", "")``), read from the labels alone, without audio."""
    labels: dict[int, dict[str, str]] = {}
    out = []
    for item in dataset.items:
        if item.task == REPORT_TASK:
            out.append((REPORT_TASK, ""))
            continue
        if item.recording not in labels:
            patient, rec = dataset.recordings[item.recording]
            labels[item.recording] = recording_labels(patient, rec, dataset.label_rule)
        out.append((item.task, L.feature(item.task).normalise(labels[item.recording][item.task])))
    return out


def item_weights(classes: Sequence[tuple[str, str]], power: float) -> np.ndarray:
    """Drawing probabilities of items of the given ``(feature, class)``: each item weighted
    ``count ** -power``, its (feature, class)'s count among the items, normalised to sum 1 (so a
    (feature, class) is drawn in proportion to ``count ** (1 - power)``: 0 natural frequencies,
    1 every class of a feature alike).

    >>> item_weights([("Murmur", "Absent")] * 3 + [("Murmur", "Present")], 1.0).round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    """
    counts = Counter(classes)
    weights = np.array([counts[c] ** -power for c in classes], dtype=float)
    return weights / weights.sum()


def draw_items(weights: np.ndarray, n: int, seed: int, step: int) -> list[int]:
    """The ``n`` item indices of micro-step ``step`` (counted over the whole run: optimiser step x
    ``grad_accum`` + micro-step), drawn with replacement with probabilities ``weights``. A function
    of ``(seed, step)`` alone, so that a resumed run draws what the uninterrupted one drew.

    >>> w = item_weights([("Murmur", "Absent")] * 9 + [("Murmur", "Present")], 0.5)
    >>> draw_items(w, 4, seed=0, step=7) == draw_items(w, 4, seed=0, step=7)
    True
    """
    rng = np.random.default_rng([int(seed), DRAW_STREAM, int(step)])
    return rng.choice(len(weights), size=n, replace=True, p=weights).tolist()


def _drawn_order(weights: np.ndarray, tc: "TrainConfig", epoch: int, steps_per_epoch: int) -> list[int]:
    """``train.sample_power`` > 0: one "epoch" is ``steps_per_epoch`` optimiser steps of drawn items."""
    micro = steps_per_epoch * tc.grad_accum
    return [i for m in range(epoch * micro, (epoch + 1) * micro)
            for i in draw_items(weights, tc.batch_size, tc.seed, m)]


class _Ordered(torch.utils.data.Dataset):
    """A dataset seen in a given order (one epoch's permutation)."""

    def __init__(self, dataset, order: list[int]):
        self.dataset, self.order = dataset, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        return self.dataset[self.order[i]]


# --------------------------------------------------------------------------------------------
# evaluation


def evaluate(backend: AudioLMBackend, patients: Sequence[Patient], prompts: PromptTemplates,
             audio: AudioOptions, features: Sequence[str], accelerator, batch_size: int = 8,
             progress: bool = True, one_pass: bool = False) -> tuple[dict, dict]:
    """Closed-set predictions for ``patients`` (recordings shared out across processes).

    Returns (metrics, predictions frame) on every process: the recordings are aggregated by
    :func:`murmurlm.evaluate.patients.predict_patients` (a feature not asked counts as uniform),
    each recording scored by the 11 questions, or with ``one_pass`` by the whole-report answer
    (:func:`murmurlm.models.instructions.report_probabilities`);
    the patients scored by :func:`murmurlm.evaluate.report.evaluate_predictions`; ``metrics``
    holds accuracy, macro-F1 and UAR of each of ``features`` and the mean of their macro-F1.
    """
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    from murmurlm.evaluate.metrics import mean_of_defined
    from murmurlm.evaluate.patients import predict_patients
    from murmurlm.evaluate.report import evaluate_predictions

    jobs = [(p.patient_id, i) for p in patients for i in range(len(p.recordings))]
    by_id = {p.patient_id: p for p in patients}
    with accelerator.split_between_processes(jobs) as mine:
        results = []
        for pid, i in tqdm(mine, desc="eval", disable=not (progress and accelerator.is_main_process),
                           leave=False):
            rec = by_id[pid].recordings[i]
            wave = load_recording(rec, read_rate(audio))
            segments = recording_segments(rec, audio)
            score = report_probabilities if one_pass else recording_probabilities
            probs = score(backend, wave, prompts, audio, features, rec.location,
                                            segments, batch_size)
            results.append((pid, i, {k: v.tolist() for k, v in probs.items()}))
    results = gather_object(results) if accelerator.num_processes > 1 else results
    per_patient: dict[str, dict[int, dict]] = {}
    for pid, i, probs in results:
        per_patient.setdefault(pid, {})[i] = probs
    recordings = {pid: [{f.name: per_patient[pid][i].get(f.name, _uniform(f)) for f in L.FEATURES}
                        for i in sorted(per_patient.get(pid, {}))] for pid in by_id}
    frame = predict_patients(recordings)
    metrics: dict = {}
    if len(frame):
        scored = evaluate_predictions(frame, {pid: by_id[pid].labels for pid in frame.index}, bootstrap=0)["features"]
        for f in features:
            m = scored[f]["all"]
            metrics[f] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "uar": m["uar"]}
    else:
        metrics = {f: {"accuracy": None, "macro_f1": None, "uar": None} for f in features}
    metrics["mean_macro_f1"] = mean_of_defined(metrics[f]["macro_f1"] for f in features)
    metrics["num_patients"] = len(frame)
    return metrics, frame


def _uniform(feature: L.Feature) -> list[float]:
    return [1.0 / feature.num_classes] * feature.num_classes


# --------------------------------------------------------------------------------------------
# checkpoints


def _checkpoints(out: Path) -> list[Path]:
    folder = out / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step_*") if (p / "trainer_state.pt").exists()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def _save_checkpoint(out: Path, backend, optimizer, scheduler, step: int, epoch: int, batch_in_epoch: int,
                     cfg: FinetuneConfig, accelerator, keep: int) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        folder = out / "checkpoints" / f"step_{step}"
        backend.save_adapter(folder / "adapter")
        atomic_save({"kind": STATE_KIND, "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": rng_state(), "config": config_to_dict(cfg)}, folder / "trainer_state.pt")
        for old in _checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint: %s", folder)
    accelerator.wait_for_everyone()


def _over_budget(max_minutes: float | None, t0: float, accelerator) -> bool:
    """Whether ``max_minutes`` of wall clock have passed since ``t0`` (the main process decides for all)."""
    if max_minutes is None:
        return False
    over = time.time() - t0 >= 60.0 * max_minutes
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast

        flag = torch.tensor([float(over)], device=accelerator.device)
        over = bool(broadcast(flag, from_process=0).item())
    return over


def _check_distributed(accelerator, tc: TrainConfig) -> None:
    """Refuse what the recipe does not support; fill in DeepSpeed's batch settings from the config."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.FSDP:
        raise ConfigError("FSDP is not supported by recipes/finetune_audio_lm.py yet (saving a sharded LoRA "
                          "adapter and closed-set evaluation need full-parameter gathering); use "
                          "configs/accelerate/multi_gpu_ddp.yaml or deepspeed_zero2.yaml")
    if kind == DistributedType.DEEPSPEED:
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        if ds.get("zero_optimization", {}).get("stage", 0) == 3:
            raise ConfigError("DeepSpeed ZeRO-3 shards the weights, which closed-set evaluation does not "
                              "support; use zero_stage 2 (configs/accelerate/deepspeed_zero2.yaml)")
        ds["train_micro_batch_size_per_gpu"] = tc.batch_size // accelerator.num_processes
        ds["gradient_accumulation_steps"] = tc.grad_accum
        ds["gradient_clipping"] = tc.max_grad_norm


# --------------------------------------------------------------------------------------------
# the recipe


def finetune(cfg: FinetuneConfig, data: str | Path, out: str | Path, train_ids: Sequence[str] | None = None,
             val_ids: Sequence[str] | None = None, resume: bool = False, progress: bool = True,
             cpu: bool = False) -> dict:
    """Run the recipe; returns a summary (steps, last loss, final validation metrics, paths)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration
    from tqdm.auto import tqdm

    from murmurlm.evaluate.predictions import write_predictions

    out = Path(out)
    tc = cfg.train
    accelerator = Accelerator(
        gradient_accumulation_steps=tc.grad_accum, cpu=cpu,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )
    if tc.batch_size % accelerator.num_processes:
        raise ConfigError(f"train.batch_size={tc.batch_size} must be a multiple of the number of processes "
                          f"({accelerator.num_processes}): it is the global batch, split across them")
    set_seed(tc.seed)
    checkpoints = _checkpoints(out) if resume else []
    if resume and not checkpoints:
        raise MurmurlmError(f"--resume: no checkpoint under {out / 'checkpoints'}; start without --resume")
    if not resume and _checkpoints(out):
        # a fresh run would append to the old metrics.jsonl, and pruning could delete its own new
        # checkpoints in favour of the old run's higher-numbered ones
        raise MurmurlmError(f"{out} already holds a run (checkpoints/); continue it with --resume, or choose "
                            "another --out")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")

    # --- data
    prompts_path = shipped_file(cfg.data.prompts)
    prompts = load_prompts(prompts_path, cfg.data.features)
    if accelerator.is_main_process:
        shutil.copyfile(prompts_path, out / "prompts.yaml")
    dataset_all = open_circor(data)  # a CirCor folder, a manifest folder or a loaded dataset
    for problem in dataset_all.problems:
        log.warning("%s", problem)
    patients = list(dataset_all.patients)[: cfg.data.max_patients]
    train_patients, val_patients = _split(patients, cfg, train_ids, val_ids)

    # --- model
    backend = _load_backend(cfg, out, str(accelerator.device), accelerator)
    audio = cfg.data.audio
    if audio.sampling_rate != backend.sampling_rate:
        raise ConfigError(f"data.audio.sampling_rate={audio.sampling_rate} but {cfg.model.backend} takes "
                          f"{backend.sampling_rate} Hz; set data.audio.sampling_rate={backend.sampling_rate}")
    if audio.window_seconds / audio.playback > backend.max_audio_seconds + 1e-6:
        raise ConfigError(f"data.audio.window_seconds={audio.window_seconds} (played {audio.playback:g}x faster) "
                          f"exceeds the model window ({backend.max_audio_seconds:g} s); set "
                          f"data.audio.window_seconds<={backend.max_audio_seconds * audio.playback:g}")
    backend.playback = float(audio.playback)  # the band mapping is part of the model: saved with the adapter
    train_set = InstructionDataset(train_patients, prompts, audio, cfg.data.features,
                                   cfg.data.report or cfg.data.one_pass,
                                   cfg.data.label_rule, questions=not cfg.data.one_pass)
    if len(train_set) == 0:
        raise MurmurlmError(f"no training examples from {data} ({len(train_patients)} train patients)")
    micro_per_epoch = len(train_set) // tc.batch_size
    if micro_per_epoch < tc.grad_accum:
        raise ConfigError(f"{len(train_set)} training examples make {micro_per_epoch} batch(es) of "
                          f"train.batch_size={tc.batch_size}, fewer than train.grad_accum={tc.grad_accum}; "
                          "lower train.batch_size or train.grad_accum, or use more patients")
    steps_per_epoch = max(1, micro_per_epoch // tc.grad_accum)
    total_steps = tc.max_steps or tc.epochs * steps_per_epoch
    weights = item_weights(item_classes(train_set), tc.sample_power) if tc.sample_power > 0 else None
    eval_audio = cfg.data.eval_audio()
    if accelerator.is_main_process:
        log.info("%d train patients (%d examples, %d steps/epoch), %d val patients; %d steps; %d process(es)",
                 len(train_patients), len(train_set), steps_per_epoch, len(val_patients), total_steps,
                 accelerator.num_processes)
        if weights is not None:
            log.info("examples drawn with replacement, (feature, class) weight count ** -%g", tc.sample_power)

    step, epoch, skip = 0, 0, 0
    state = None
    if checkpoints:
        state = load_checkpoint(checkpoints[-1] / "trainer_state.pt", kind=STATE_KIND)
        backend.load_adapter(checkpoints[-1] / "adapter", trainable=True)
        step, epoch, skip = state["step"], state["epoch"], state["batch_in_epoch"]
        log.info("resuming from %s (step %d, epoch %d)", checkpoints[-1], step, epoch)

    num_parameters = (backend.num_parameters(), backend.num_parameters(trainable_only=True))
    optimizer = torch.optim.AdamW(list(backend.trainable_parameters()), lr=tc.lr, weight_decay=tc.weight_decay)
    # the warm-up ramps by (step + 1) / (warmup_steps + 1): the peak comes on the step after it
    scheduler = warmup_cosine(optimizer, tc.warmup_steps, total_steps, decay=tc.schedule, peak_after_warmup=True)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    _check_distributed(accelerator, tc)
    backend.model, optimizer = accelerator.prepare(backend.model, optimizer)
    metrics_log = MetricsLog(out / "metrics.jsonl")
    if state is not None and accelerator.is_main_process:
        keep = [r for r in metrics_log.read() if r.get("step", 0) <= step]
        metrics_log.path.write_text("".join(json.dumps(r) + "\n" for r in keep))
    if state is not None:
        set_rng_state(state["rng"])

    # --- loop
    backend.model.train()
    bar = tqdm(total=total_steps, initial=step, desc="finetune", disable=not (progress and accelerator.is_main_process))
    last_loss = float("nan")
    stopped = "steps"
    t0, cpu0 = time.time(), time.process_time()  # the budget counts this run's loop only (not a resumed run's past)
    while step < total_steps:
        order = (_epoch_order(len(train_set), tc.seed, epoch) if weights is None
                 else _drawn_order(weights, tc, epoch, steps_per_epoch))
        loader = torch.utils.data.DataLoader(_Ordered(train_set, order), batch_size=tc.batch_size,
                                             shuffle=False, drop_last=True, collate_fn=backend.collate)
        loader = accelerator.prepare_data_loader(loader)
        batches = accelerator.skip_first_batches(loader, skip * tc.grad_accum) if skip else loader
        batch_in_epoch = skip
        skip = 0
        sum_loss, sum_tokens, micro = 0.0, 0, 0
        for batch in batches:
            # dropout masks are a function of (seed, step, micro-step, process): a resumed run
            # draws exactly what the uninterrupted one drew, whatever else used the RNG
            torch.manual_seed(epoch_seed(tc.seed, step * tc.grad_accum + micro) + accelerator.process_index)
            micro += 1
            with accelerator.accumulate(backend.model):
                tokens = torch.tensor(backend.count_loss_tokens(batch), device=accelerator.device)
                global_tokens = accelerator.reduce(tokens, reduction="sum").clamp(min=1)
                loss_sum = backend.loss(batch, reduction="sum")
                # DDP averages gradients over processes: scale so the result is the global token mean
                loss = loss_sum * accelerator.num_processes / global_tokens
                accelerator.backward(loss)
                sum_loss += float(accelerator.reduce(loss_sum.detach(), reduction="sum"))
                sum_tokens += int(global_tokens)
                if accelerator.sync_gradients:
                    grad_norm = (accelerator.clip_grad_norm_(backend.model.parameters(), tc.max_grad_norm)
                                 if tc.max_grad_norm > 0 else None)
                    lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step() if accelerator.sync_gradients else None
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step += 1
            batch_in_epoch += 1
            micro = 0
            last_loss = sum_loss / max(1, sum_tokens)
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}")
            if _over_budget(tc.max_minutes, t0, accelerator) and step < total_steps:
                stopped = "budget"
            final = step == total_steps or stopped == "budget"
            if step % tc.log_every == 0 or step == 1 or final:
                record = {"step": step, "epoch": epoch, "loss": last_loss, "lr": lr,
                          "tokens": sum_tokens, "elapsed_s": round(time.time() - t0, 2)}
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                if accelerator.is_main_process:
                    metrics_log.write(record)
                    log.info("step %d/%d  loss %.4f  lr %.2e", step, total_steps, last_loss, lr)
            sum_loss, sum_tokens = 0.0, 0
            if tc.eval_every and step % tc.eval_every == 0 and not final and val_patients:
                metrics, _ = evaluate(backend, val_patients[: tc.eval_max_patients], prompts, eval_audio,
                                      cfg.data.features, accelerator, tc.score_batch_size, progress,
                                      cfg.data.one_pass)
                backend.model.train()
                if accelerator.is_main_process:
                    metrics_log.write({"step": step, "epoch": epoch, "val": metrics})
                    log.info("step %d: val mean macro-F1 %s", step, metrics["mean_macro_f1"])
            if (tc.save_every and step % tc.save_every == 0) or final:  # and the last step
                _save_checkpoint(out, backend, optimizer, scheduler, step, epoch, batch_in_epoch, cfg,
                                 accelerator, tc.keep_checkpoints)
            if final:
                if stopped == "budget" and accelerator.is_main_process:
                    log.info("time budget of %g min reached at step %d of %d", tc.max_minutes, step, total_steps)
                break
        else:
            epoch += 1
            continue
        break
    bar.close()
    train_seconds, train_cpu_seconds = time.time() - t0, time.process_time() - cpu0

    # --- finish: adapter, final evaluation, predictions
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        backend.save_adapter(out / "adapter")
        shutil.copyfile(out / "prompts.yaml", out / "adapter" / "prompts.yaml")
    summary = {"steps": step, "planned_steps": total_steps, "stopped": stopped,
               "loss": last_loss if math.isfinite(last_loss) else None,  # None: nothing left to train
               "train_examples": len(train_set), "train_seconds": round(train_seconds, 2),
               "train_cpu_seconds": round(train_cpu_seconds, 2),  # this process's
               "num_parameters": num_parameters[0], "trainable_parameters": num_parameters[1],
               "adapter": str(out / "adapter"), "val": None}
    if val_patients:
        t1 = time.time()
        metrics, predictions = evaluate(backend, val_patients, prompts, eval_audio, cfg.data.features, accelerator,
                                        tc.score_batch_size, progress, cfg.data.one_pass)
        summary["val"] = metrics
        summary["eval_seconds"] = round(time.time() - t1, 2)
        if accelerator.is_main_process:
            metrics_log.write({"step": step, "epoch": epoch, "val": metrics, "final": True})
            if len(predictions):
                write_predictions(predictions, out / "predictions_val.csv")
                summary["predictions"] = str(out / "predictions_val.csv")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    accelerator.end_training()
    return summary


def run(cfg: FinetuneConfig, *, data: str | Path, out: str | Path, split: str | Path | None = None,
        resume: bool = False, progress: bool = True, cpu: bool = False) -> dict:
    """The recipes' one entry: fine-tune on ``data`` into ``out``; ``split`` is a folder with
    ``train.txt`` and ``val.txt`` (default: a stratified ``data.val_fraction`` of the patients)."""
    train_ids = val_ids = None
    if split is not None:
        from murmurlm.data.splits import read_split

        chosen = read_split(split)
        train_ids, val_ids = chosen.train, chosen.val
    return finetune(cfg, data, out, train_ids, val_ids, resume=resume, progress=progress, cpu=cpu)


def main(argv: Sequence[str] | None = None) -> int:
    parser = recipe_arguments(__doc__, "audio_lm/whisper_base_cpu", "runs/audio_lm")
    parser.add_argument("--cpu", action="store_true", help="force CPU (also for several processes, gloo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_finetune_config(args.config, args.overrides)
        summary = run(cfg, data=args.data, out=args.out, split=args.split, resume=args.resume,
                      progress=not args.no_progress, cpu=args.cpu)
    except MurmurlmError as err:
        print(f"error: {err}")
        return 2
    if "predictions" in summary or summary.get("val") is None:  # the main process
        log.info("done: %s", json.dumps({k: v for k, v in summary.items() if k != "val"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
