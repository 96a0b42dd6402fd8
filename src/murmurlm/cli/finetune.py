"""``murmurlm finetune``: LoRA fine-tuning of an audio language model (``recipes/finetune_audio_lm.py``).

    murmurlm finetune --config configs/audio_lm/qwen2_audio_7b.yaml --data DIR [--out RUN_DIR]
                      [--split DIR] [--resume] [--cpu] [key=value ...]

Several GPUs: launch the recipe (or this command) with ``accelerate launch``, e.g.
``accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml "$(which murmurlm)" finetune ...``
(or the recipe script itself, ``recipes/finetune_audio_lm.py``, with the same arguments).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "recipes" / "finetune_audio_lm.py"
DEFAULT_CONFIG = REPO / "configs" / "audio_lm" / "tiny.yaml"


def finetune_command(
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR)."),
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="YAML run config (configs/audio_lm/*.yaml)."),
    out: Path = typer.Option(Path("runs/audio_lm"), "--out", help="Run folder: adapter/, checkpoints/, "
                             "metrics.jsonl, predictions_val.csv."),
    split: Optional[Path] = typer.Option(None, "--split", help="Split folder with train.txt and val.txt "
                                         "(default: a stratified data.val_fraction of the patients)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest RUN_DIR/checkpoints/step_N."),
    cpu: bool = typer.Option(False, "--cpu", help="Run on the CPU even where a GPU is present."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Config overrides key=value (train.lr=2e-4)."),
) -> None:
    """Fine-tune Qwen2-Audio (or another audio-LM backend) with LoRA on CirCor questions."""
    from murmurlm.cli.train import load_recipe, split_ids

    recipe = load_recipe(RECIPE)
    cfg = recipe.load_finetune_config(config, overrides or [])
    train_ids, val_ids = split_ids(split)
    summary = recipe.finetune(cfg, data, out, train_ids=train_ids, val_ids=val_ids, resume=resume,
                              progress=progress, cpu=cpu)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate launch: one summary line
        return
    val = summary.get("val") or {}
    log.info("%d steps, last loss %s; adapter: %s; val mean macro-F1: %s", summary["steps"], summary["loss"],
             summary["adapter"], val.get("mean_macro_f1"))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
