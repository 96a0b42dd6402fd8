"""Train a heart-cycle segmenter on CirCor: the Springer baseline or the SSAMBA-style Mamba model.

    python -m murmurlm.recipes.train_segmenter --config segment/mamba data=../shared/circor-dev out=runs/segment-mamba
    murmurlm segment train --method mamba --data ../shared/circor-dev --out runs/segment-mamba   # the same

One readable unit (torchtune style): setup (data, split, features), optional self-supervised
pre-training by masked patch prediction (SSAMBA), supervised training with the loop written out
(forward, loss, backward, clipping, step, schedule, logging, evaluation, checkpoint), cleanup.
Seeded: the split, the crops, the masks and the weights all follow ``seed``.

Patients: ``train_patients``/``val_patients`` files when given (``splits/circor-dev/*.txt``), else the
stratified patient-wise split of :func:`murmurlm.data.splits.train_val_split` (the shipped models
were trained from the split files, so this fallback does not touch them).

Writes to ``out``: ``model.pt`` (mamba) or ``model.npz`` (springer), ``metrics.json`` (validation
scores), ``train_log.jsonl`` (one line per logged step), ``config.yaml`` (the resolved config).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from murmurlm.config import config_to_dict, load_config, save_config
from murmurlm.errors import ConfigError
from murmurlm.recipes import resolve_config
from murmurlm.signal.segment.mamba import MambaSegmenterConfig
from murmurlm.train.augment import NoiseAugment
from murmurlm.train.schedule import lr_factor

log = logging.getLogger("murmurlm.recipes.train_segmenter")


@dataclass
class TrainConfig:
    data: Path = Path("../shared/circor-dev")
    out: Path = Path("runs/segment")
    method: str = "mamba"              # mamba | springer
    seed: int = 0
    train_patients: Path | None = None  # file of patient ids; None: seeded split
    val_patients: Path | None = None
    val_fraction: float = 0.2
    model: MambaSegmenterConfig = field(default_factory=MambaSegmenterConfig)  # mamba: architecture, front end
    # optimisation (mamba)
    batch_size: int = 8
    crop_frames: int = 256             # 256 frames = 5.12 s per training example
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 3000
    max_minutes: float = 20.0          # wall-clock budget of pre-training + training
    grad_clip: float = 1.0
    log_every: int = 50
    eval_every: int = 250
    eval_recordings: int = 60          # validation recordings scored during training (all at the end)
    # self-supervised pre-training (masked patch prediction); 0 disables it
    pretrain_steps: int = 0
    mask_ratio: float = 0.4
    threads: int = 1                   # torch threads; 1 keeps a shared machine usable
    # noise augmentation (mamba; train/augment.py): noisy copies of the training recordings, used by
    # pre-training and training alike (SSAMBA's self-supervision on noisy audio); copies: 0 is off
    noise: NoiseAugment = field(default_factory=NoiseAugment)
    max_recordings: int = 0            # 0: all; >0: only the first N training recordings (smoke tests)
    half_precision_checkpoint: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("mamba", "springer"):
            raise ValueError(f"method must be 'mamba' or 'springer', got {self.method!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be within (0, 1), got {self.val_fraction}")
        for name in ("batch_size", "crop_frames", "max_steps", "log_every", "eval_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be within (0, 1), got {self.mask_ratio}")
        if self.noise.copies and self.method != "mamba":
            raise ValueError(f"noise augmentation (noise.copies={self.noise.copies}) is for method: mamba; "
                             "the Springer segmenter is fitted in closed form on clean recordings")


# ------------------------------------------------------------------------------------------ setup


def split_recordings(cfg: TrainConfig):
    from murmurlm.data.manifest import open_circor
    from murmurlm.data.splits import read_patient_list, train_val_split
    from murmurlm.signal.segment.data import annotated_recordings

    dataset = open_circor(cfg.data)
    ids = [p.patient_id for p in dataset]
    if cfg.train_patients is not None:
        train_ids = read_patient_list(cfg.train_patients)
        val_ids = read_patient_list(cfg.val_patients) if cfg.val_patients else [i for i in ids if i not in set(train_ids)]
        split = f"files {cfg.train_patients}, {cfg.val_patients}"
    else:
        train_ids, val_ids = train_val_split(dataset.patients, cfg.val_fraction, cfg.seed)
        split = f"stratified split (seed {cfg.seed}, {cfg.val_fraction:.0%} validation)"
    overlap = set(train_ids) & set(val_ids)
    if overlap:
        raise ConfigError(f"train and validation patients overlap: {sorted(overlap)[:5]}")
    train = annotated_recordings(dataset.subset([i for i in train_ids if i in set(ids)]))
    val = annotated_recordings(dataset.subset([i for i in val_ids if i in set(ids)]))
    if cfg.max_recordings:
        train, val = train[: cfg.max_recordings], val[: max(2, cfg.max_recordings // 4)]
    log.info("patients: %d train, %d validation (%s); recordings: %d train, %d validation",
             len(train_ids), len(val_ids), split, len(train), len(val))
    return train, val


def train_springer_recipe(cfg: TrainConfig, train, val) -> dict:
    from murmurlm.signal.segment.data import iter_examples
    from murmurlm.signal.segment.evaluation import evaluate_segmenter
    from murmurlm.signal.segment.springer import train_springer

    model = train_springer(iter_examples(train), seed=cfg.seed)
    model.save(cfg.out / "model.npz")
    return evaluate_segmenter(model, val).summary()


# ------------------------------------------------------------------------------------------ mamba


def noisy_features(model, train, cfg: TrainConfig) -> list[list]:
    """Segmenter features of ``cfg.noise.copies`` noisy copies of every training recording
    (:mod:`murmurlm.train.augment`). The ambient bank is the training recordings' unannotated
    stretches only: the recordings of Unknown patients hold other heartbeats, which would teach the
    segmenter to find cycles in the noise."""
    from murmurlm.signal.noise import circor_noise_bank
    from murmurlm.train.augment import noisy_recordings

    bank = circor_noise_bank(train)
    rate = min(r.sampling_rate for r in train)
    log.info("noise augmentation: %d cop%s per recording, SNR %g-%g dB, ambient bank of %d clips (%.0f s)",
             cfg.noise.copies, "y" if cfg.noise.copies == 1 else "ies", cfg.noise.min_snr_db, cfg.noise.max_snr_db,
             len(bank), sum(len(b) for b in bank) / rate)
    copies: list[list] = [[] for _ in range(cfg.noise.copies)]
    for rec, waves in noisy_recordings(train, cfg.noise, cfg.seed, bank, progress=True):
        for c, wave in enumerate(waves):
            copies[c].append(model.features(wave, rec.sampling_rate).half())
    return copies


def train_mamba_recipe(cfg: TrainConfig, train, val) -> dict:
    import torch
    import transformers
    from tqdm.auto import tqdm

    from murmurlm.signal.segment.evaluation import evaluate_segmenter
    from murmurlm.signal.segment.frames import segments_to_frames
    from murmurlm.signal.segment.hsmm import NUM_STATES, fit_hsmm_params
    from murmurlm.signal.segment.mamba import MambaSegmenter, save_mamba_segmenter

    transformers.logging.set_verbosity_error()  # the "falling back to PyTorch" notes, once per kernel
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    started = time.monotonic()
    budget = cfg.max_minutes * 60

    model = MambaSegmenter(replace(cfg.model))  # a copy: the run's config stays as given
    log.info("model: %d parameters", sum(p.numel() for p in model.parameters()))

    # features and frame labels of every training recording, once (float16 to halve the memory)
    feats, labels, segment_lists = [], [], []
    for rec in tqdm(train, desc="features", leave=False):
        segments = rec.load_segments()
        f = model.features(rec.load_audio(), rec.sampling_rate)
        feats.append(f.half())
        labels.append(torch.from_numpy(segments_to_frames(segments, len(f), model.frame_rate)))
        segment_lists.append(segments)
    noisy = noisy_features(model, train, cfg) if cfg.noise.copies else []  # noisy[c][i]: copy c of recording i
    counts = torch.bincount(torch.cat(labels), minlength=NUM_STATES).double()
    model.priors.copy_((counts / counts.sum()).clamp_min(1e-6).float())
    model.hsmm = fit_hsmm_params(segment_lists)
    lengths = np.array([len(f) for f in feats])
    weights = lengths / lengths.sum()  # sample recordings by length: every second equally likely

    def batch(with_labels: bool = True):
        x = torch.zeros(cfg.batch_size, cfg.crop_frames, model.cfg.patch_dim)
        y = torch.full((cfg.batch_size, cfg.crop_frames), -100, dtype=torch.long)
        for b, i in enumerate(rng.choice(len(feats), cfg.batch_size, p=weights)):
            n = min(cfg.crop_frames, lengths[i])
            s = int(rng.integers(0, lengths[i] - n + 1))
            source = feats
            if noisy and rng.random() < cfg.noise.p:  # a noisy copy of the same recording, same labels
                source = noisy[int(rng.integers(len(noisy)))]
            x[b, :n] = source[i][s:s + n].float()
            y[b, :n] = labels[i][s:s + n]
        return x, y

    def lr_at(step: int, total: int, phase_start: float, phase_budget: float) -> float:
        """Linear warm-up, then cosine decay over the steps or the time budget, whichever ends first
        (on a shared CPU the budget usually does, and the rate should still reach ~0 at the end)."""
        return lr_factor(step, cfg.warmup_steps, total, peak=cfg.lr,
                         budget_fraction=(time.monotonic() - phase_start) / phase_budget)

    log_file = (cfg.out / "train_log.jsonl").open("w")

    # -- optional self-supervised pre-training: masked patch prediction
    pretrain_done = 0
    if cfg.pretrain_steps:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        model.train()
        pretrain_start = time.monotonic()
        for step in range(cfg.pretrain_steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg.pretrain_steps, pretrain_start, budget / 2)
            x, _ = batch()
            loss = model.pretrain_loss(x, cfg.mask_ratio, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            pretrain_done = step + 1
            if step % cfg.log_every == 0:
                log.info("pretrain step %d: masked-patch MSE %.4f", step, loss.item())
                log_file.write(json.dumps({"phase": "pretrain", "step": step, "loss": loss.item()}) + "\n")
            if time.monotonic() - started > budget / 2:
                log.info("pre-training stopped at step %d: half of the %.1f min budget spent", step, cfg.max_minutes)
                break

    # -- supervised training
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    eval_subset = list(val)
    rng_eval = np.random.default_rng(cfg.seed + 1)
    if len(eval_subset) > cfg.eval_recordings:
        eval_subset = [eval_subset[i] for i in sorted(rng_eval.choice(len(val), cfg.eval_recordings, replace=False))]
    best, best_step, step = -1.0, 0, 0
    running = 0.0
    best_path = cfg.out / "model.pt"
    model.train()
    train_start = time.monotonic()
    train_budget = max(1.0, budget - (train_start - started))
    for step in range(1, cfg.max_steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, cfg.max_steps, train_start, train_budget)
        x, y = batch()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        running += loss.item()
        out_of_time = time.monotonic() - started > budget
        if step % cfg.log_every == 0:
            record = {"phase": "train", "step": step, "loss": running / cfg.log_every,
                      "grad_norm": float(grad_norm), "lr": opt.param_groups[0]["lr"],
                      "minutes": (time.monotonic() - started) / 60}
            log.info("step %d: loss %.4f (%.1f min)", step, record["loss"], record["minutes"])
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            running = 0.0
        if step % cfg.eval_every == 0 or step == cfg.max_steps or out_of_time:
            model.eval()
            scores = evaluate_segmenter(model, eval_subset, progress=False).summary()
            model.train()
            score = (scores["s1_f1"] + scores["s2_f1"]) / 2
            score = score if math.isfinite(score) else 0.0  # no validation events: keep the latest
            log.info("step %d: validation S1 F1 %.4f, S2 F1 %.4f, frame accuracy %.4f, clean accuracy %.4f",
                     step, scores["s1_f1"], scores["s2_f1"], scores["frame_accuracy"], scores["clean_accuracy"])
            log_file.write(json.dumps({"phase": "eval", "step": step, **scores}) + "\n")
            if score >= best:
                best, best_step = score, step
                save_mamba_segmenter(model, best_path, extra={
                    "step": step, "best_event_f1": best, "train_config": config_to_dict(cfg)},
                    half=cfg.half_precision_checkpoint)
        if out_of_time:
            log.info("training stopped at step %d: the %.1f min budget is spent", step, cfg.max_minutes)
            break
    log_file.close()

    from murmurlm.signal.segment.mamba import load_mamba_segmenter
    final = load_mamba_segmenter(best_path)
    scores = evaluate_segmenter(final, val).summary()
    scores.update({"best_step": best_step, "steps": step, "pretrain_steps": pretrain_done,
                   "train_minutes": round((time.monotonic() - started) / 60, 2),
                   "checkpoint_bytes": best_path.stat().st_size})
    return scores


def load_recipe_config(path: str | Path | None = None, overrides=()) -> TrainConfig:
    """The run config from a YAML file or shipped config name (``segment/mamba``) and ``key=value``
    overrides; ``None``: the dataclass defaults."""
    return load_config(TrainConfig, resolve_config(path), list(overrides))


def run(cfg: TrainConfig, *, data: str | Path | None = None, out: str | Path | None = None,
        split: str | Path | None = None, resume: bool = False, progress: bool = True) -> dict:
    """The recipes' one entry: train on ``data`` into ``out`` (default: the config's ``data`` and
    ``out``); ``split`` is a folder with ``train.txt`` and ``val.txt``. The segmenter trains in one
    bounded go (``max_minutes``) and keeps its best step; ``resume`` is refused rather than ignored."""
    if resume:
        raise ConfigError("the segmenter recipe does not resume; rerun it (it is bounded by max_minutes)")
    changes = {}
    if data is not None:
        changes["data"] = Path(data)
    if out is not None:
        changes["out"] = Path(out)
    if split is not None:
        changes.update(train_patients=Path(split) / "train.txt", val_patients=Path(split) / "val.txt")
    cfg = replace(cfg, **changes)
    cfg.out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, cfg.out / "config.yaml")
    train, val = split_recordings(cfg)
    if not train:
        raise ConfigError(f"no annotated training recordings found under {cfg.data}")
    if cfg.method == "springer":
        scores = train_springer_recipe(cfg, train, val)
    else:
        scores = train_mamba_recipe(cfg, train, val)
    scores = {"method": cfg.method, **scores}
    (cfg.out / "metrics.json").write_text(json.dumps(scores, indent=2) + "\n")
    log.info("validation: %s", scores)
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="segment/mamba", help="YAML file or shipped config name")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. max_steps=100 model.d_model=32")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        run(load_recipe_config(args.config, args.overrides))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
