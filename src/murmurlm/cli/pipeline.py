"""``murmurlm pipeline``: the main job — data, split, train, predict the held-back patients, report.

    murmurlm pipeline --data $MURMURLM_CIRCOR --out runs/main [--config FILE_OR_NAME] [--split DIR] [key=value ...]

1. Data: an empty (or missing) ``--data`` folder is filled by
   :func:`murmurlm.data.download.download_circor` (PhysioNet; needs the network).
2. Split (patient-wise, :func:`murmurlm.data.splits.resolve_split`): ``--split DIR``, else the
   repository's recommended ``splits/<folder name>/`` when it matches the dataset, else
   :func:`murmurlm.data.splits.train_val_test_split` (70/15/15, seed 0). The split used is written
   to ``RUN_DIR/split/``.
3. Train the compact model with the default config on train, validated on val: ``--members N``
   (default 3) models of seeds ``seed``, ``seed + 1``, ... (``RUN_DIR/model/member<i>/``: metrics.jsonl,
   last.pt, best.pt each), combined into one ensemble checkpoint ``RUN_DIR/model/best.pt`` (the mean
   of their probabilities); with ``--members 1`` the single model is trained in ``RUN_DIR/model/``.
4. Fit the descriptor head (:mod:`murmurlm.recipes.train_descriptor_head`, its default config) on the
   training patients (``RUN_DIR/descriptor-head/``), as the packaged default carries one: the
   systolic character from the average heartbeat, blended with the CNN's. With fewer than 10
   systolic-murmur patients in train (or ``--no-descriptor-head``) there is none, with a warning.
5. Predict the test patients: ``RUN_DIR/predictions/compact.csv`` (the CNN with its descriptor head,
   the product as it ships), ``cnn_only.csv`` (the CNN alone, when a head was fitted), and the
   majority and class-prior baselines fitted on train.
   Before predicting, one temperature per feature is fitted on the validation patients
   (:func:`murmurlm.inference.predict.calibrate_checkpoint`) and stored in ``model/best.pt``: the
   probabilities are calibrated, the labels unchanged.
6. Evaluate them side by side (``RUN_DIR/report/``: report.md, report.html, metrics.json, with the
   calibration of the probabilities and where the murmur is heard).

The folder is parsed and checked once, into ``RUN_DIR/manifests/``
(:func:`murmurlm.data.manifest.prepare_circor`); every stage then uses that one dataset.

Re-running with the same ``--out`` resumes an interrupted training run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from murmurlm.cli.train import CONFIG_HELP, DEFAULT_CONFIG
from murmurlm.recipes import load_recipe
from murmurlm.errors import DataFormatError

log = logging.getLogger(__name__)


def _needs_download(data: Path) -> bool:
    return not data.exists() or not any(data.iterdir())


def choose_split(dataset, data: Path, split: Optional[Path], seed: int = 0):
    """The split to use (see the module docstring) and a line saying where it came from
    (:func:`murmurlm.data.splits.resolve_split`)."""
    from murmurlm.data.splits import resolve_split

    return resolve_split(dataset, data, split, seed=seed)


def pipeline_command(
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR); "
                              "downloaded from PhysioNet first when empty."),
    out: Path = typer.Option(Path("runs/main"), "--out", help="Run folder."),
    config: str = typer.Option(DEFAULT_CONFIG, "--config", help=CONFIG_HELP),
    split: Optional[Path] = typer.Option(None, "--split", help="Split folder (train.txt, val.txt, test.txt)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples for the report's intervals."),
    members: int = typer.Option(3, "--members", min=1, help="Models of consecutive seeds combined into an ensemble "
                                "(1: a single model). More: steadier predictions, proportionally longer training."),
    descriptor_head: bool = typer.Option(True, "--descriptor-head/--no-descriptor-head",
                                         help="Fit the descriptor head on the training patients and blend it in "
                                              "(as the packaged default does)."),
    head_transplants: Optional[int] = typer.Option(None, "--head-transplants", min=0,
                                                   help="Murmur transplants per rare class for the head "
                                                        "(default: the recipe's, 15; 0: none)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Config overrides key=value."),
) -> None:
    """Train the compact model on CirCor, evaluate it on the held-back patients, write the report."""
    from murmurlm.data.manifest import circor_manifest
    from murmurlm.data.splits import write_split
    from murmurlm.evaluate.predictions import write_predictions
    from murmurlm.evaluate.report import evaluate_with_baselines, write_reports
    from murmurlm.evaluate.scoring import patient_truth
    from murmurlm.inference.predict import load_model, predict_dataset

    if _needs_download(data):
        from murmurlm.data.download import download_circor

        log.info("%s is empty: downloading CirCor DigiScope 1.0.3 from PhysioNet", data)
        download_circor(data, progress=progress)
    # parsed and checked once; training, prediction and evaluation all use this one dataset
    dataset = circor_manifest(data, out / "manifests", progress=progress)
    for p in dataset.problems:
        log.warning("%s", p)
    if not dataset.patients:
        raise DataFormatError(data, "no readable patients")
    chosen, source = choose_split(dataset, data, split)
    if not chosen.test:
        raise DataFormatError(split or data, "the split has no test patients to evaluate on")
    write_split(chosen, out / "split")
    log.info("%s: %d train, %d val, %d test patients", source, len(chosen.train), len(chosen.val), len(chosen.test))

    recipe = load_recipe("train_compact")
    cfg = recipe.load_recipe_config(config, overrides or [])
    if members == 1:
        summary = recipe.train(cfg, dataset, out / "model", train_ids=chosen.train, val_ids=chosen.val, resume=True,
                               progress=progress)
        kept_epoch = summary["best_epoch"]
    else:
        import dataclasses

        from murmurlm.inference.predict import combine_models

        epochs = []
        for i in range(members):
            member_cfg = dataclasses.replace(cfg, seed=cfg.seed + i)
            log.info("ensemble member %d of %d (seed %d)", i + 1, members, member_cfg.seed)
            summary = recipe.train(member_cfg, dataset, out / "model" / f"member{i}", train_ids=chosen.train,
                                   val_ids=chosen.val, resume=True, progress=progress)
            epochs.append(str(summary["best_epoch"]))
        combine_models([out / "model" / f"member{i}" / "best.pt" for i in range(members)], out / "model" / "best.pt")
        kept_epoch = "/".join(epochs)

    head = _fit_head(dataset, chosen.train, out / "descriptor-head", head_transplants, progress) \
        if descriptor_head else None
    temperatures = None
    if chosen.val:  # probabilities that mean what they say: temperatures fitted on the validation patients
        from murmurlm.inference.predict import calibrate_checkpoint

        temperatures = calibrate_checkpoint(out / "model" / "best.pt", dataset, chosen.val, descriptor_head=head,
                                            progress=progress)
        log.info("calibration on %d validation patients: Murmur temperature %.2f", len(chosen.val),
                 temperatures.get("Murmur", 1.0))
    model = load_model(out / "model" / "best.pt")
    frames = {}
    frame, problems = predict_dataset(model, dataset, chosen.test, progress=progress, cache_dir=cfg.cache_dir,
                                      use_cache=True, descriptor_head=head)
    for p in problems:
        log.warning("%s", p)
    frames["compact"] = frame
    write_predictions(frame, out / "predictions" / "compact.csv")
    if head is not None:
        frames["cnn only"], _ = predict_dataset(model, dataset, chosen.test, progress=progress,
                                                cache_dir=cfg.cache_dir, use_cache=True, descriptor_head=None)
        write_predictions(frames["cnn only"], out / "predictions" / "cnn_only.csv")

    labels = {p.patient_id: patient_truth(p) for p in dataset.patients}
    truth = {pid: labels[pid] for pid in chosen.test if pid in set(frame.index.astype(str))}
    train_labels = [labels[pid] for pid in chosen.train]
    results = evaluate_with_baselines(frames, truth, train_labels, known_ids=list(labels),
                                      bootstrap=bootstrap, seed=0, predictions_dir=out / "predictions")
    context = {"data": str(data), "split": source, "test patients": len(truth),
               "model": str(out / "model" / "best.pt"), "ensemble members": members, "kept epoch": kept_epoch,
               "descriptor head": str(out / "descriptor-head" / "descriptor-head.json") if head is not None else "none",
               "calibration (temperatures, fitted on the validation patients)": temperatures or "none",
               "config": str(config), "overrides": " ".join(overrides or []) or "none"}
    written = write_reports(results, out / "report", title="murmurlm main job: compact model", context=context)
    head = results["compact"]["headline"]
    log.info("test: murmur weighted accuracy %.3f, mean macro-F1 %.3f; report: %s",
             head["murmur_weighted_accuracy"]["value"], head["mean_macro_f1"]["value"], written["markdown"])


def _fit_head(dataset, train_ids, out: Path, transplants: Optional[int], progress: bool):
    """The descriptor head on the training patients, or None (with a warning) when they are too few."""
    from murmurlm.errors import MurmurlmError

    recipe = load_recipe("train_descriptor_head")
    cfg = recipe.load_recipe_config(None, [] if transplants is None else [f"transplants_per_class={transplants}"])
    try:
        head, summary = recipe.train(cfg, dataset, out, patient_ids=train_ids, progress=progress)
    except MurmurlmError as err:
        log.warning("no descriptor head: %s; the CNN describes the murmur alone", err)
        return None
    log.info("descriptor head: %d murmur patients, %.0f CPU s", summary["patients"], summary["cpu_seconds"])
    return head


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline_command)
