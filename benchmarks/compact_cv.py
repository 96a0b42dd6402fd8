"""Benchmark: the compact model in 5-fold patient-wise cross-validation on a CirCor folder.

    nice -n 10 .venv/bin/python benchmarks/compact_cv.py --data $MURMURLM_CIRCOR \
        [--config compact/default] [--folds 0,1,2,3,4] [key=value ...]

For each fold (``splits/circor-dev-5fold/`` when it matches the dataset, else
:func:`murmurlm.data.splits.kfold`): train on the fold's training patients (a stratified 15 % of
them held out for early stopping), predict the held-out fold, and fit the majority and class-prior
baselines (:mod:`murmurlm.evaluate.baselines`) on the same training patients. The out-of-fold
predictions of all folds are pooled and scored once with
:func:`murmurlm.evaluate.report.evaluate_predictions` (every patient predicted exactly once, by a
model that never saw it). Then inference speed (seconds of audio per second, one CPU core, file
reading + front end + model) and peak memory (``resource.getrusage``).

Writes ``benchmarks/results/compact_cv.json`` and ``.md``; fold runs and out-of-fold predictions go
to ``runs/compact_cv/`` (a re-run skips finished folds; ``--fresh`` redoes them).

Ensembles: ``--members runs/cv_s0,runs/cv_s1,runs/cv_s2`` trains nothing; each fold's model is the
:class:`~murmurlm.models.compact.CompactEnsemble` of those runs' fold models (runs of one config
with different ``seed=`` and the same ``--split-seed``, so that they share their inner validation
patients), written to ``--runs`` and scored like a single model.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from murmurlm.recipes import train_compact  # noqa: E402  (the recipe)
from summary import summarise_all  # noqa: E402

from murmurlm.data import labels as L  # noqa: E402
from murmurlm.data.circor import load_circor  # noqa: E402
from murmurlm.data.splits import kfold, repository_split, train_val_split  # noqa: E402
from murmurlm.evaluate.baselines import baseline_frames  # noqa: E402
from murmurlm.evaluate.predictions import read_predictions, write_predictions  # noqa: E402
from murmurlm.evaluate.report import evaluate_predictions, evaluate_with_baselines  # noqa: E402
from murmurlm.inference.predict import combine_models, load_model, predict_dataset  # noqa: E402

log = logging.getLogger("benchmarks.compact_cv")
RESULTS = REPO / "benchmarks" / "results"


def get_folds(dataset, data: Path, k: int, seed: int):
    found = repository_split(data, (p.patient_id for p in dataset.patients), k=k)
    if found is not None:
        return found[0], str(found[1].relative_to(REPO))
    return kfold(dataset, k=k, seed=seed), f"murmurlm.data.splits.kfold(k={k}, seed={seed})"


def pooled_murmur_scale(cfg, dataset, k: int, runs: Path) -> tuple[list[float], float, int]:
    """Murmur scale tuned on the pooled inner validation patients of all folds (never the held-out
    folds): raw recording probabilities of each fold's model on its own early-stopping patients,
    then one grid search (``train_compact.tune_murmur_scale``) over all of them."""
    probs, patients, owner = [], [], []
    predictor = None
    for i in range(k):
        val_ids = json.loads((runs / f"fold{i}" / "split.json").read_text())["val"]
        predictor = load_model(runs / f"fold{i}" / "best.pt")
        predictor.murmur_scale = np.ones(3)
        part = train_compact.build_split(dataset.subset(val_ids).patients, cfg, progress=False)
        owner.extend((part.recording_patient + len(patients)).tolist())
        patients.extend(part.patients)
        probs.extend(predictor.predict_features(part.features))
    pooled = train_compact.SplitData(patients, [], {}, np.asarray(owner))
    scale, wacc = train_compact.tune_murmur_scale(predictor, probs, pooled)
    return scale, wacc, len(patients)


def train_fold(args, cfg, dataset, fold, fold_dir: Path) -> None:
    """Train one fold's model (early-stopped on 15 % of its training patients); record its cost."""
    tr, va = train_val_split(dataset.subset(fold.train).patients, 0.15, args.split_seed)
    t0, c0 = time.time(), time.process_time()
    summary = train_compact.train(cfg, args.data, fold_dir, train_ids=tr, val_ids=va, resume=True, progress=False)
    wall, cpu = time.time() - t0, time.process_time() - c0
    (fold_dir / "timing.json").write_text(json.dumps({"train_wall_seconds": wall, "train_cpu_seconds": cpu,
                                                      "best_epoch": summary["best_epoch"]}))
    log.info("fold %s: trained in %.0f s wall, %.0f s CPU", fold_dir.name, wall, cpu)


def combine_fold(members: list[str], i: int, fold_dir: Path) -> None:
    """Fold ``i``'s ensemble of the members' fold models; their inner validation split must agree
    (it is what the murmur scale is tuned on). Training cost: the members' costs added up."""
    dirs = [Path(m) / f"fold{i}" for m in members]
    splits = [json.loads((d / "split.json").read_text()) for d in dirs]
    for d, sp in zip(dirs[1:], splits[1:]):
        if sorted(sp["val"]) != sorted(splits[0]["val"]):
            raise SystemExit(f"{d}: its inner validation patients differ from {dirs[0]}'s; train the members "
                             "with the same --split-seed")
    fold_dir.mkdir(parents=True, exist_ok=True)
    combine_models([d / "best.pt" for d in dirs], fold_dir / "best.pt", murmur_scale=[1.0, 1.0, 1.0])
    (fold_dir / "split.json").write_text(json.dumps(splits[0]))
    timings = [json.loads((d / "timing.json").read_text()) for d in dirs]
    (fold_dir / "timing.json").write_text(json.dumps({
        "train_wall_seconds": sum(t["train_wall_seconds"] for t in timings),
        "train_cpu_seconds": sum(t["train_cpu_seconds"] for t in timings),
        "best_epoch": "/".join(str(t["best_epoch"]) for t in timings)}))


def inference_speed(model_path: Path, dataset, num: int = 60) -> dict:
    """Seconds of audio per wall second on one core: read file, front end, model, per recording."""
    torch.set_num_threads(1)
    predictor = load_model(model_path)
    recs = dataset.recordings[:num]
    predictor.predict_waveform(recs[0].load_audio(), recs[0].sampling_rate)  # warm-up
    audio_s = 0.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for rec in recs:
        wave = rec.load_audio()
        audio_s += len(wave) / rec.sampling_rate
        predictor.predict_waveform(wave, rec.sampling_rate)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"recordings": len(recs), "audio_seconds": round(audio_s, 1), "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3), "realtime_factor_wall": round(audio_s / wall, 1),
            "realtime_factor_cpu": round(audio_s / cpu, 1), "ms_per_recording": round(1000 * wall / len(recs), 2),
            "num_params": predictor.model.num_params, "checkpoint_bytes": model_path.stat().st_size}


def fmt(v, d: int = 3) -> str:
    return "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))


def write_markdown(report: dict, path: Path) -> None:
    cv = report["cv"]
    ms = report["murmur_scale"]
    models = [("compact", "compact"), ("compact-scaled", "compact, murmur scale"), ("baseline-majority", "majority"),
              ("baseline-prior", "prior")]
    lines = [f"# Compact model: {report['k']}-fold patient-wise CV on {report['data']}", "",
             f"Command: `{report['command']}`", "",
             f"Folds: {report['folds_source']}; {report['num_patients']} patients, each predicted once by a model "
             "that never saw it (pooled out-of-fold predictions). Each fold's model is early-stopped on 15 % of its "
             "own training patients. Baselines are fitted on each fold's training patients.", "",
             f"*compact, murmur scale*: recording P(Murmur) multiplied by {ms['scale']} (Present, Unknown, Absent) "
             f"before the patient rule, the factors chosen by grid search on the pooled inner validation patients of "
             f"the 5 folds ({ms['inner_val_patients']} patients, weighted accuracy {ms['inner_val_weighted_accuracy']:.3f}); "
             "the held-out folds play no part in the choice.", "",
             "| | " + " | ".join(label for _, label in models) + " |", "|---|" + "---:|" * len(models)]
    for key, label in [("murmur_weighted_accuracy", "Murmur weighted accuracy (challenge) ↑"),
                       ("murmur_cost", "Murmur cost (challenge) ↓"), ("outcome_cost", "Outcome cost (challenge) ↓"),
                       ("mean_macro_f1", "Mean macro-F1, 11 features ↑"),
                       ("systolic_char_uar", "Mean UAR, systolic features, murmur patients ↑")]:
        d = 0 if "cost" in key else 3
        lines.append(f"| {label} | " + " | ".join(fmt(cv[m][key], d) for m, _ in models) + " |")
    lines += ["", "Per feature: macro-F1 over all patients, and over the patients with that murmur (systolic or "
              "diastolic; *murmur pts*); rare-class recall for classes with at most 10 patients:", "",
              "| feature | compact | compact, murmur scale | murmur pts | majority | prior | prior, murmur pts | rare-class recall (murmur scale) |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for f in L.FEATURES:
        c, cs = cv["compact"]["features"][f.name], cv["compact-scaled"]["features"][f.name]
        m, p = cv["baseline-majority"]["features"][f.name], cv["baseline-prior"]["features"][f.name]
        rare = ", ".join(f"{k} {fmt(v, 2)} (n={cs['support'][k]})" for k, v in cs["rare_class_recall"].items()) or "–"
        lines.append(f"| {f.name} | {fmt(c['macro_f1'])} | {fmt(cs['macro_f1'])} | {fmt(cs['macro_f1_murmur_patients'])} | "
                     f"{fmt(m['macro_f1'])} | {fmt(p['macro_f1'])} | {fmt(p['macro_f1_murmur_patients'])} | {rare} |")
    lines += ["", "Per fold (held-out fold, compact without scale):", "",
              "| fold | patients | Murmur WA | mean macro-F1 | best epoch | train wall s | train CPU s |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for f in report["folds"]:
        lines.append(f"| {f['fold']} | {f['num_patients']} | {fmt(f['murmur_weighted_accuracy'])} | {fmt(f['mean_macro_f1'])} | "
                     f"{f['best_epoch']} | {fmt(f['train_wall_seconds'], 0)} | {fmt(f['train_cpu_seconds'], 0)} |")
    s = report["speed"]
    lines += ["", f"Inference, one CPU core ({s['recordings']} recordings, {s['audio_seconds']} s of audio, file reading "
              f"+ front end + model): {s['realtime_factor_wall']}x real time by wall clock "
              f"({s['realtime_factor_cpu']}x by CPU time), {s['ms_per_recording']} ms per recording; model "
              f"{s['num_params']} parameters, checkpoint {s['checkpoint_bytes'] / 1e6:.2f} MB.",
              f"Peak resident memory of the benchmark process: {report['peak_rss_mb']:.0f} MB.",
              f"Training: {report['threads']} torch thread(s), nice 10, on a {report['machine']} machine shared with "
              "other jobs (wall times include waiting for the CPU; CPU seconds are the work).", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "compact" / "default.yaml")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--folds", default=None, help="comma-separated folds to run (default: all)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "compact_cv")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--fresh", action="store_true", help="retrain folds that already finished")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the folds (when splits/ has none) and of each fold's inner early-stopping split; apart from the config's seed "
                             "so that runs of several seeds share their inner validation patients (ensembles)")
    parser.add_argument("--members", default=None,
                        help="comma-separated finished CV run folders whose fold models are combined into ensembles")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = train_compact.load_train_config(args.config, args.overrides)
    dataset = load_circor(args.data, on_error="skip")
    folds, source = get_folds(dataset, args.data, args.k, args.split_seed)
    wanted = range(args.k) if args.folds is None else [int(x) for x in args.folds.split(",")]
    labels = {p.patient_id: p.labels for p in dataset.patients}
    for i in wanted:
        fold_dir = args.runs / f"fold{i}"
        pred_path = fold_dir / "oof.csv"
        if pred_path.exists() and not args.fresh:
            log.info("fold %d done before; skipping (use --fresh to redo)", i)
            continue
        fold = folds[i]
        if args.members:
            combine_fold(args.members.split(","), i, fold_dir)
        else:
            train_fold(args, cfg, dataset, fold, fold_dir)
        frame, problems = predict_dataset(load_model(fold_dir / "best.pt"), args.data, fold.val, progress=False,
                                          cache_dir=cfg.cache_dir, use_cache=True)
        write_predictions(frame, pred_path)

    done = [i for i in range(args.k) if (args.runs / f"fold{i}" / "oof.csv").exists()]
    if len(done) < args.k:
        log.info("folds finished: %s of %d; the report needs all of them", done, args.k)
        return 0
    oof = pd.concat([read_predictions(args.runs / f"fold{i}" / "oof.csv") for i in range(args.k)])
    truth = {pid: labels[pid] for pid in oof.index}
    scale, inner_wacc, inner_n = pooled_murmur_scale(cfg, dataset, args.k, args.runs)
    log.info("murmur scale tuned on %d pooled inner-validation patients: %s (weighted accuracy %.3f)", inner_n, scale, inner_wacc)
    scaled = []
    for i in range(args.k):
        predictor = load_model(args.runs / f"fold{i}" / "best.pt")
        predictor.murmur_scale = np.asarray(scale, dtype=np.float64)
        frame, _ = predict_dataset(predictor, args.data, folds[i].val, progress=False, cache_dir=cfg.cache_dir,
                                   use_cache=True)
        write_predictions(frame, args.runs / f"fold{i}" / "oof-scaled.csv")
        scaled.append(frame)
    # the baselines of each fold are fitted on its training patients, then pooled like the models
    per_fold_baselines = [baseline_frames([labels[p] for p in folds[i].train], folds[i].val, seed=cfg.seed)
                          for i in range(args.k)]
    baselines = {name: pd.concat([b[name] for b in per_fold_baselines]) for name in per_fold_baselines[0]}
    results = summarise_all(evaluate_with_baselines({"compact": oof, "compact-scaled": pd.concat(scaled), **baselines},
                                                    truth, known_ids=list(labels), bootstrap=0))
    per_fold = []
    for i in range(args.k):
        f = read_predictions(args.runs / f"fold{i}" / "oof.csv")
        r = evaluate_predictions(f, {p: labels[p] for p in f.index}, known_ids=list(labels), bootstrap=0)
        t = json.loads((args.runs / f"fold{i}" / "timing.json").read_text())
        per_fold.append({"fold": i, "num_patients": len(f), "murmur_weighted_accuracy": r["headline"]["murmur_weighted_accuracy"]["value"],
                         "mean_macro_f1": r["headline"]["mean_macro_f1"]["value"], **t})
    speed = inference_speed(args.runs / "fold0" / "best.pt", dataset)
    import platform

    report = {"command": "nice -n 10 .venv/bin/python benchmarks/compact_cv.py --data " + str(args.data)
              + (f" --config {args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config}")
              + (f" --split-seed {args.split_seed}" if args.split_seed else "")
              + (f" --members {args.members}" if args.members else "")
              + (f" --runs {args.runs}" if args.runs != REPO / "runs" / "compact_cv" else "")
              + (f" --out {args.out}" if args.out != RESULTS else "")
              + "".join(f" {o}" for o in args.overrides),
              "data": str(args.data), "k": args.k, "folds_source": source, "num_patients": len(oof),
              "config": train_compact.config_to_dict(cfg), "cv": results, "folds": per_fold, "speed": speed,
              "murmur_scale": {"scale": scale, "inner_val_patients": inner_n, "inner_val_weighted_accuracy": inner_wacc},
              "threads": cfg.threads, "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs (shared)",
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compact_cv.json").write_text(json.dumps(report, indent=2, default=float))
    write_markdown(report, args.out / "compact_cv.md")
    print((args.out / "compact_cv.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
