"""``murmurlm train``: train the compact multi-task model (the recipe ``recipes/train_compact.py``).

    murmurlm train --config configs/compact/default.yaml --data DIR [--out RUN_DIR] [--split DIR]
                   [--resume] [key=value ...]
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from murmurlm.errors import MurmurlmError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "recipes" / "train_compact.py"
DEFAULT_CONFIG = REPO / "configs" / "compact" / "default.yaml"


def load_recipe(path: Path = RECIPE):
    """Import the training recipe from the repository's ``recipes/`` folder."""
    if not path.exists():
        raise MurmurlmError(f"training recipe not found: {path} (murmurlm train needs the repository checkout, "
                            "e.g. `pip install -e .` from a clone)")
    name = f"murmurlm_recipe_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def split_ids(split: Optional[Path], with_test: bool = False) -> tuple[list[str] | None, list[str] | None]:
    """(train, val) ids of a split folder (``train.txt``, ``val.txt``), or (None, None).
    ``with_test`` adds the test patients to train (for a release model, evaluated by CV instead)."""
    if split is None:
        if with_test:
            raise MurmurlmError("--with-test needs --split")
        return None, None
    from murmurlm.data.splits import read_split

    s = read_split(split)
    if not s.val:
        raise MurmurlmError(f"{split}: the split has no val.txt patients (needed for early stopping)")
    return (s.train + s.test if with_test else s.train), s.val


def train_command(
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR)."),
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="YAML run config."),
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
    recipe = load_recipe()
    cfg = recipe.load_train_config(config, overrides or [])
    train_ids, val_ids = split_ids(split, with_test)
    summary = recipe.train(cfg, data, out, train_ids=train_ids, val_ids=val_ids, resume=resume, progress=progress)
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
