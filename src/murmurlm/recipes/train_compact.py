"""Recipe: train the compact multi-task murmur model on CirCor (torchtune style: setup, loop, cleanup).

Run::

    murmurlm train --config compact/default --data $MURMURLM_CIRCOR --out runs/compact
    python -m murmurlm.recipes.train_compact --config compact/default --data DIR --out RUN_DIR

Training is recording-level (random crops of ``crop_seconds``), validation patient-level (every
window of every recording, aggregated by :func:`murmurlm.evaluate.aggregate.aggregate_patient`).
Each epoch ends with a validation pass, one line in ``metrics.jsonl``, and ``last.pt`` (everything
needed to resume); the best epoch by the validation score is kept as ``best.pt`` (model only, the
checkpoint ``murmurlm predict`` and :func:`murmurlm.inference.predict.load_model` read).
Early stopping after ``patience`` epochs without improvement. With ``select: last`` the final epoch
is kept instead and the run never stops early (the validation score is still logged every epoch).

Determinism: every epoch re-seeds from ``(seed, epoch)`` (batches, crops, dropout), so a run
resumed with ``--resume`` from ``last.pt`` of epoch ``k`` ends with the same weights as a run that
was never interrupted (same machine, same thread count).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from murmurlm.config import config_to_dict, load_config, save_config
from murmurlm.data import labels as L
from murmurlm.data.circor import CirCorDataset
from murmurlm.data.manifest import open_circor
from murmurlm.data.splits import read_split, train_val_split
from murmurlm.errors import ConfigError, MurmurlmError
from murmurlm.evaluate.metrics import challenge_murmur_score
from murmurlm.evaluate.report import evaluate_predictions
from murmurlm.inference.predict import CHECKPOINT_KIND, Predictor, save_model
from murmurlm.models.compact import CompactConfig, CompactModel, head_names
from murmurlm.recipes import recipe_main, resolve_config
from murmurlm.signal.features import FrontEnd, compute_features, recording_features
from murmurlm.signal.noise import circor_noise_bank
from murmurlm.train.augment import NoiseAugment, noisy_recordings
from murmurlm.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from murmurlm.train.data import CropBank, class_weights, recording_targets
from murmurlm.train.metrics_log import MetricsLog
from murmurlm.train.schedule import warmup_cosine
from murmurlm.train.seeding import epoch_seed, set_deterministic, set_seed

log = logging.getLogger("murmurlm.recipes.train_compact")
TRAIN_KIND = "murmurlm-compact-train"


@dataclass
class TrainConfig:
    """The run config; the defaults are those of ``configs/compact/default.yaml``, which explains each
    key (tests/recipes/test_config_defaults.py keeps the two equal)."""

    seed: int = 0
    epochs: int = 25
    patience: int = 8
    select: str = "last"
    batch_size: int = 32
    crops_per_recording: float = 1.0
    crop_seconds: float = 4.0
    window_hop_seconds: float = 4.0
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_epochs: int = 1
    grad_clip: float = 5.0
    ema_decay: float = 0.995
    class_weight_power: float = 0.5
    sampling_power: float = 0.5
    character_targets: str = "heard"
    val_fraction: float = 0.2
    murmur_scale: list[float] = field(default_factory=lambda: [1.0, 0.35, 1.0])
    tune_murmur_scale: bool = False
    murmur_rule: str = "any"
    character_rule: str = "murmur-weighted"
    threads: int = 1
    cache_dir: str | None = None
    front_end: FrontEnd = field(default_factory=FrontEnd)
    model: CompactConfig = field(default_factory=CompactConfig)
    noise: NoiseAugment = field(default_factory=NoiseAugment)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be at least 1")
        if self.crop_seconds <= 0 or self.window_hop_seconds <= 0 or self.crops_per_recording <= 0:
            raise ValueError("crop_seconds, window_hop_seconds and crops_per_recording must be positive")
        if self.select not in ("best", "last"):
            raise ValueError(f"select must be 'best' (best validation epoch, early stopping) or 'last' "
                             f"(the final epoch, no early stopping), got {self.select!r}")
        if self.character_targets not in ("heard", "masked"):
            raise ValueError(f"character_targets must be 'heard' or 'masked', got {self.character_targets!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if len(self.murmur_scale) != 3 or not all(v > 0 for v in self.murmur_scale):
            raise ValueError(f"murmur_scale needs 3 positive factors (Present, Unknown, Absent), got {self.murmur_scale}")
        if self.model.n_mels != self.front_end.n_mels:
            raise ValueError(f"model.n_mels ({self.model.n_mels}) must equal front_end.n_mels ({self.front_end.n_mels})")
        if self.noise.copies and self.front_end.preprocess != "none":
            raise ValueError(f"noise augmentation (noise.copies={self.noise.copies}) needs front_end.preprocess: none, "
                             f"got {self.front_end.preprocess!r} (the crop would have to be found again in every copy)")


def load_train_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The run config from a YAML file or shipped config name (``compact/default``) and
    ``key=value`` overrides (``model.channels=[8,16]``); ``None``: the dataclass defaults."""
    return load_config(TrainConfig, resolve_config(path), overrides)


load_recipe_config = load_train_config  # the name every recipe shares


# ---------------------------------------------------------------------------------------------
# setup


@dataclass
class SplitData:
    """Features, targets and patients of one side of a split."""

    patients: list
    features: list[np.ndarray]
    targets: dict[str, np.ndarray]  # head -> (recordings,) class ids or IGNORE
    recording_patient: np.ndarray  # recording -> index into patients


def build_split(patients: Sequence, cfg: TrainConfig, progress: bool) -> SplitData:
    recordings = [r for p in patients for r in p.recordings]
    feats = recording_features(recordings, cfg.front_end, cache_dir=cfg.cache_dir, progress=progress)
    heads = head_names(cfg.model.aux_outcome)
    rows = [recording_targets(p, r, heads, cfg.character_targets) for p in patients for r in p.recordings]
    targets = {h: np.array([row[h] for row in rows], dtype=np.int64) for h in heads}
    owner = np.array([i for i, p in enumerate(patients) for _ in p.recordings], dtype=np.int64)
    return SplitData(list(patients), feats, targets, owner)


def noisy_copies(patients: Sequence, cfg: TrainConfig, progress: bool) -> list[np.ndarray]:
    """Features of ``cfg.noise.copies`` noisy copies of every recording of ``patients`` (the
    training patients), copy-major: copy ``c`` of recording ``i`` is entry ``c * n + i``. The ambient
    noise bank is cut from these same patients (:mod:`murmurlm.train.augment`)."""
    recordings = [r for p in patients for r in p.recordings]
    unknown = [p for p in patients if p.labels[L.MURMUR.name] == "Unknown"]
    bank = circor_noise_bank(recordings, unknown_patients=unknown)
    rate = min(r.sampling_rate for r in recordings)
    log.info("noise augmentation: %d cop%s per recording, SNR %g-%g dB, ambient bank of %d clips (%.0f s) "
             "from %d training patients", cfg.noise.copies, "y" if cfg.noise.copies == 1 else "ies",
             cfg.noise.min_snr_db, cfg.noise.max_snr_db, len(bank), sum(len(b) for b in bank) / rate, len(patients))
    waves: list[list[np.ndarray]] = [[] for _ in range(cfg.noise.copies)]
    for _, copies in noisy_recordings(recordings, cfg.noise, cfg.seed, bank, progress):
        for c, wave in enumerate(copies):
            waves[c].append(wave)
    rates = [r.sampling_rate for r in recordings]
    return [f.astype(np.float16) for copy in waves for f in compute_features(copy, rates, cfg.front_end)]


def make_predictor(model: CompactModel, cfg: TrainConfig, murmur_scale=None) -> Predictor:
    """A Predictor around the model in training (``murmur_scale`` default: the config's)."""
    return Predictor(model, cfg.front_end, cfg.crop_seconds, cfg.window_hop_seconds, config_to_dict(cfg),
                     cfg.murmur_rule, cfg.character_rule,
                     cfg.murmur_scale if murmur_scale is None else murmur_scale)


def recording_probabilities(model: CompactModel, cfg: TrainConfig, split: SplitData) -> list[dict[str, np.ndarray]]:
    """Raw (unscaled) per-recording class probabilities of a split."""
    model.eval()
    return make_predictor(model, cfg, murmur_scale=[1.0, 1.0, 1.0]).predict_features(split.features)


def patient_metrics(predictor: Predictor, rec_probs: list[dict[str, np.ndarray]], split: SplitData,
                    murmur_only: bool = False) -> dict:
    """Patient-level validation metrics of raw recording probabilities, aggregated with the
    predictor's murmur scale and rules (:meth:`Predictor.predict_patients`) and scored by
    :func:`murmurlm.evaluate.report.evaluate_predictions`: Murmur weighted accuracy, macro-F1 per
    feature, their mean (the evaluator's headline) and the selection score (0.5 * weighted accuracy
    + 0.5 * mean macro-F1 of the 11)."""
    # patients are keyed by position: a pooled split may hold a patient twice (benchmarks/compact_cv.py)
    keys = [str(i) for i in range(len(split.patients))]
    recordings: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in keys}
    for probs, owner in zip(rec_probs, split.recording_patient, strict=True):
        recordings[keys[owner]].append(probs)
    frame = predictor.predict_patients(recordings, murmur_scale=predictor.murmur_scale)
    truth = {k: p.labels for k, p in zip(keys, split.patients)}
    if murmur_only:
        return {"murmur_weighted_accuracy": challenge_murmur_score([truth[k][L.MURMUR.name] for k in keys],
                                                                   frame.loc[keys, L.MURMUR.name].tolist())}
    result = evaluate_predictions(frame, truth, bootstrap=0)
    head = result["headline"]
    out = {"murmur_weighted_accuracy": head["murmur_weighted_accuracy"]["value"],
           "macro_f1": {name: result["features"][name]["all"]["macro_f1"] for name in L.FEATURE_NAMES},
           "mean_macro_f1": head["mean_macro_f1"]["value"]}
    out["score"] = 0.5 * out["murmur_weighted_accuracy"] + 0.5 * out["mean_macro_f1"]
    return out


def tune_murmur_scale(predictor: Predictor, rec_probs, split: SplitData) -> tuple[list[float], float]:
    """Per-class factors on recording P(Murmur) (Present, Unknown; Absent fixed at 1) that maximise
    the validation weighted accuracy, searched on a small log grid; ties keep the factor nearest 1."""
    grid = [0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
    best = (-1.0, 0.0, [1.0, 1.0, 1.0])
    for sp in grid:
        for su in grid:
            predictor.murmur_scale = np.array([sp, su, 1.0])
            wacc = patient_metrics(predictor, rec_probs, split, murmur_only=True)["murmur_weighted_accuracy"]
            dist = abs(math.log(sp)) + abs(math.log(su))
            if (wacc, -dist) > (best[0], -best[1]):
                best = (wacc, dist, [sp, su, 1.0])
    predictor.murmur_scale = np.array(best[2])
    return best[2], best[0]


# ---------------------------------------------------------------------------------------------
# the run


def train(cfg: TrainConfig, data_root: str | Path | CirCorDataset, out_dir: str | Path, train_ids: Sequence[str] | None = None,
          val_ids: Sequence[str] | None = None, resume: bool = False, progress: bool = True,
          on_step: Callable[[int], None] | None = None) -> dict:
    """Train, validate every epoch, keep ``best.pt``; returns the summary (also ``summary.json``).

    ``train_ids``/``val_ids`` select patients (default: all patients, a stratified ``val_fraction``
    of them held out for validation). ``on_step(step)`` is called after every optimiser step (tests
    use it to simulate an interruption).
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    set_deterministic(True)
    set_seed(cfg.seed)

    # -- setup: data
    data = open_circor(data_root)  # a CirCor folder, a manifest folder (murmurlm data prepare) or a dataset
    for p in data.problems:
        log.warning("%s", p)
    if train_ids is None or val_ids is None:
        pool = data.patients if train_ids is None else data.subset(train_ids).patients
        train_ids, val_ids = train_val_split(pool, cfg.val_fraction, cfg.seed)
    index = data.by_id()
    missing = [pid for pid in (*train_ids, *val_ids) if pid not in index]
    if missing:
        raise MurmurlmError(f"{len(missing)} requested patient(s) not readable in {data.root}: {', '.join(missing[:5])}")
    train_set = build_split([index[p] for p in train_ids], cfg, progress)
    val_set = build_split([index[p] for p in val_ids], cfg, progress)
    (out / "split.json").write_text(json.dumps({"train": list(train_ids), "val": list(val_ids)}))
    log.info("train: %d patients, %d recordings; val: %d patients, %d recordings", len(train_set.patients),
             len(train_set.features), len(val_set.patients), len(val_set.features))

    # -- setup: class weights, sampler weights, model, optimiser
    heads = head_names(cfg.model.aux_outcome)
    weights = {h: class_weights(train_set.targets[h], L.feature(h).num_classes, cfg.class_weight_power) for h in heads}
    cfg.model.class_weights = weights
    murmur_t = train_set.targets[L.MURMUR.name]
    counts = np.bincount(murmur_t, minlength=3).astype(np.float64)
    sample_w = torch.from_numpy((1.0 / np.maximum(counts[murmur_t], 1.0)) ** cfg.sampling_power)
    n_recordings = len(train_set.features)
    extra = noisy_copies(train_set.patients, cfg, progress) if cfg.noise.copies else []
    bank = CropBank(train_set.features + extra)
    del train_set.features, extra
    targets = {h: torch.from_numpy(v) for h, v in train_set.targets.items()}
    crop_frames = max(int(round(cfg.crop_seconds * cfg.front_end.frames_per_second)), 2 ** cfg.model.time_pools)
    steps_per_epoch = max(1, math.ceil(n_recordings * cfg.crops_per_recording / cfg.batch_size))
    total_steps = steps_per_epoch * cfg.epochs
    warmup = steps_per_epoch * cfg.warmup_epochs

    set_seed(cfg.seed)
    model = CompactModel(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None  # weight average: validated and kept
    # the cosine spans the whole run from step 0, multiplied by the warm-up ramp
    scheduler = warmup_cosine(optimizer, warmup, total_steps, decay_from="start")
    log.info("model: %d parameters; %d steps per epoch", model.num_params, steps_per_epoch)

    metrics_log = MetricsLog(out / "metrics.jsonl")
    start_epoch, step = 1, 0
    best = {"score": -math.inf, "epoch": 0, "metrics": None}
    bad_epochs = 0
    if resume and (out / "last.pt").exists():
        ckpt = load_checkpoint(out / "last.pt", kind=TRAIN_KIND)
        if ckpt["config"] != config_to_dict(cfg):
            raise ConfigError(f"{out / 'last.pt'}: --resume with a different config than the interrupted run; "
                              "use the same config and overrides, or a new --out")
        model.load_state_dict(ckpt["model"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        start_epoch, step, best, bad_epochs = ckpt["epoch"] + 1, ckpt["step"], ckpt["best"], ckpt["bad_epochs"]
        metrics_log.truncate(ckpt["epoch"])
        log.info("resumed from %s after epoch %d", out / "last.pt", ckpt["epoch"])
    elif resume:
        log.info("--resume: no %s yet; starting from scratch", out / "last.pt")
    else:
        metrics_log.path.unlink(missing_ok=True)
    save_config(cfg, out / "config.yaml")

    # -- the loop
    stopped = best["epoch"] > 0 and bad_epochs >= cfg.patience
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stopped:
            break
        t0 = time.time()
        es = epoch_seed(cfg.seed, epoch)
        torch.manual_seed(es)  # dropout masks
        gen = torch.Generator().manual_seed(es)  # batches and crops
        order = torch.multinomial(sample_w, steps_per_epoch * cfg.batch_size, replacement=True, generator=gen)
        model.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not progress)
        for i in bar:
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            rows = idx
            if cfg.noise.copies:  # a share p of the crops from a random noisy copy of the same recording
                noisy = torch.rand(len(idx), generator=gen) < cfg.noise.p
                which = torch.randint(cfg.noise.copies, (len(idx),), generator=gen)
                rows = torch.where(noisy, idx + n_recordings * (1 + which), idx)
            x = bank.crops(rows, crop_frames, gen)
            _, loss = model(x, {h: t[idx] for h, t in targets.items()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            if ema is not None:
                update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if on_step is not None:
                on_step(step)
        bar.close()

        kept = ema if ema is not None else model
        rec_probs = recording_probabilities(kept, cfg, val_set)
        val = patient_metrics(make_predictor(kept, cfg), rec_probs, val_set)
        # select: last keeps every epoch over the previous one, so best.pt ends as the final epoch
        improved = val["score"] > best["score"] or cfg.select == "last"
        if improved:
            best = {"score": val["score"], "epoch": epoch, "metrics": val}
            bad_epochs = 0
            _save_model(out / "best.pt", kept, cfg, epoch, val, cfg.murmur_scale)
        else:
            bad_epochs += 1
        record = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)),
                  "lr": scheduler.get_last_lr()[0], "val_score": val["score"],
                  "val_murmur_weighted_accuracy": val["murmur_weighted_accuracy"],
                  "val_mean_macro_f1": val["mean_macro_f1"], "val_macro_f1": val["macro_f1"],
                  "best_epoch": best["epoch"], "seconds": round(time.time() - t0, 2)}
        metrics_log.write(record)
        log.info("epoch %d: loss %.4f, val wacc %.3f, mean macro-F1 %.3f, score %.3f%s (%.1f s)", epoch,
                 record["train_loss"], val["murmur_weighted_accuracy"], val["mean_macro_f1"], val["score"],
                 " *" if improved else "", record["seconds"])
        save_checkpoint(out / "last.pt", kind=TRAIN_KIND, model=model.state_dict(),
                        ema=ema.state_dict() if ema is not None else None, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), rng=rng_state(), epoch=epoch, step=step, best=best,
                        bad_epochs=bad_epochs, config=config_to_dict(cfg))
        if bad_epochs >= cfg.patience:
            log.info("early stop: no improvement for %d epochs (best epoch %d)", cfg.patience, best["epoch"])
            stopped = True

    # -- cleanup: murmur calibration on the best model, summary
    ckpt = load_checkpoint(out / "best.pt", kind=CHECKPOINT_KIND)
    model.load_state_dict(ckpt["model"])
    summary = {"best_epoch": best["epoch"], "best_score": best["score"], "val": best["metrics"],
               "steps": step, "num_params": model.num_params, "murmur_scale": list(cfg.murmur_scale)}
    if cfg.tune_murmur_scale:
        predictor = make_predictor(model, cfg)
        rec_probs = recording_probabilities(model, cfg, val_set)
        scale, wacc = tune_murmur_scale(predictor, rec_probs, val_set)
        summary["murmur_scale"] = scale
        summary["val_tuned"] = patient_metrics(predictor, rec_probs, val_set)
        log.info("murmur scale %s: val weighted accuracy %.3f -> %.3f", scale,
                 best["metrics"]["murmur_weighted_accuracy"], wacc)
        _save_model(out / "best.pt", model, cfg, best["epoch"], summary["val_tuned"], scale)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def update_ema(ema: CompactModel, model: CompactModel, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (batch-norm statistics) copied."""
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1.0 - decay)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def _save_model(path: Path, model: CompactModel, cfg: TrainConfig, epoch: int, metrics: dict,
                murmur_scale: Sequence[float] | None = None) -> None:
    save_model(path, model, cfg.front_end, window_seconds=cfg.crop_seconds, hop_seconds=cfg.window_hop_seconds,
               config=config_to_dict(cfg), murmur_rule=cfg.murmur_rule, character_rule=cfg.character_rule,
               murmur_scale=murmur_scale, metrics=metrics, epoch=epoch)


def run(cfg: TrainConfig, *, data: str | Path, out: str | Path, split: str | Path | None = None,
        with_test: bool = False, resume: bool = False, progress: bool = True) -> dict:
    """The recipes' one entry: train on ``data`` into ``out``; ``split`` is a folder with
    ``train.txt`` and ``val.txt`` (default: a stratified ``val_fraction`` of all patients).
    ``with_test`` trains on the split's train + test patients (a release model, whose held-out
    figures then come from cross-validation)."""
    train_ids = val_ids = None
    if split is None and with_test:
        raise MurmurlmError("with_test needs a split folder")
    if split is not None:
        chosen = read_split(split)
        if not chosen.val:
            raise MurmurlmError(f"{split}: the split has no val.txt patients (needed for early stopping)")
        train_ids, val_ids = (chosen.train + chosen.test if with_test else chosen.train), chosen.val
    return train(cfg, data, out, train_ids=train_ids, val_ids=val_ids, resume=resume, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    return recipe_main(sys.modules[__name__], argv, "compact/default", "runs/compact")


if __name__ == "__main__":
    raise SystemExit(main())
