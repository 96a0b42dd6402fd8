"""``murmurlm train``: train the compact multi-task model (the recipe :mod:`murmurlm.recipes.train_compact`).

    murmurlm train [--config compact/default] --data DIR [--out RUN_DIR] [--split DIR]
                   [--resume] [key=value ...]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from murmurlm.recipes import load_recipe

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "compact/default"
CONFIG_HELP = "YAML run config: a file or a shipped name (murmurlm config list)."


def train_command(
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR)."),
    config: str = typer.Option(DEFAULT_CONFIG, "--config", help=CONFIG_HELP),
    out: Path = typer.Option(Path("runs/compact"), "--out", help="Run folder: metrics.jsonl, last.pt, best.pt."),
    split: Optional[Path] = typer.Option(None, "--split", help="Split folder with train.txt and val.txt "
                                         "(default: a stratified val_fraction of all patients)."),
    with_test: bool = typer.Option(False, "--with-test", help="Train on the split's train + test patients "
                                   "(a release model; its held-out figures then come from cross-validation)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from RUN_DIR/last.pt."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Config overrides key=value (model.dropout=0.3)."),
) -> None:
    """Train the compact multi-task murmur model; best.pt is what `murmurlm predict --model` reads."""
    recipe = load_recipe("train_compact")
    cfg = recipe.load_recipe_config(config, overrides or [])
    summary = recipe.run(cfg, data=data, out=out, split=split, with_test=with_test, resume=resume, progress=progress)
    val = summary.get("val_tuned") or summary["val"]
    log.info("best epoch %d: val murmur weighted accuracy %.3f, mean macro-F1 %.3f; model: %s",
             summary["best_epoch"], val["murmur_weighted_accuracy"], val["mean_macro_f1"], out / "best.pt")


def ensemble_command(
    checkpoints: list[Path] = typer.Argument(..., help="Two or more compact checkpoints of one config "
                                             "(e.g. runs trained with seed=0, seed=1, ...)."),
    out: Path = typer.Option(..., "--out", help="Ensemble checkpoint to write (what --model reads)."),
) -> None:
    """Combine compact models of one config into one ensemble checkpoint (their probabilities averaged)."""
    from murmurlm.inference.predict import combine_models

    predictor = combine_models(checkpoints, out)
    log.info("%s: %d members, %d parameters", out, len(predictor.model.members), predictor.model.num_params)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("ensemble")(ensemble_command)
