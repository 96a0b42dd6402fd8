"""``murmurlm segment``: heart-cycle segmentation (train, predict, evaluate).

    murmurlm segment train --method springer|mamba --data DIR --out DIR [--config FILE] [key=value ...]
    murmurlm segment predict AUDIO_OR_DIR... --out DIR [--method mamba|springer] [--model FILE]
    murmurlm segment evaluate --data DIR [--patients FILE] [--method mamba|springer] [--model FILE] [--json FILE]

``--method`` picks a shipped segmenter (default ``mamba``, the better one); ``--model FILE`` a trained
one (``.pt`` Mamba, ``.npz`` Springer), whose kind sets the method.

``predict`` writes one CirCor-format ``.tsv`` per audio file (``<name>.tsv``); ``evaluate`` scores a
segmenter against a CirCor folder's ``.tsv`` files (S1/S2 event F1 at 60 ms, frame accuracy per
state, clean-stretch agreement).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from murmurlm.errors import ConfigError, MurmurlmError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")
METHODS = ("springer", "mamba")

segment_app = typer.Typer(no_args_is_help=True, help="Heart-cycle segmentation: S1, systole, S2, diastole, unannotated.")


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    return method


@segment_app.command("train")
def train_command(
    method: str = typer.Option("mamba", "--method", help="springer or mamba."),
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR)."),
    out: Path = typer.Option(..., "--out", help="Run folder: model.npz|model.pt, metrics.json, train_log.jsonl."),
    config: Optional[str] = typer.Option(None, "--config", help="YAML config: a file or a shipped name (segment/mamba)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Config overrides key=value (max_minutes=5)."),
) -> None:
    """Train a segmenter on the training patients and score it on the validation patients."""
    from murmurlm.recipes import load_recipe

    recipe = load_recipe("train_segmenter")
    cfg = recipe.load_recipe_config(config, [*(overrides or []), f"method={_check_method(method)}"])
    scores = recipe.run(cfg, data=data, out=out)
    log.info("validation S1 F1 %.3f, S2 F1 %.3f, frame accuracy %.3f; model in %s",
             scores["s1_f1"], scores["s2_f1"], scores["frame_accuracy"], out)


def _audio_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            if (p / "training_data").is_dir():  # a CirCor dataset folder
                p = p / "training_data"
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise MurmurlmError(f"{p}: no .wav or .flac files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise MurmurlmError(f"{p}: no such file or folder")
    return files


def _model_and_method(method: str, model_file: Optional[Path]):
    """The segmenter to use: a model file (its kind is the method), else the shipped ``method``."""
    from murmurlm.signal.segment import _method_of, load_segmenter

    if model_file is None:
        _check_method(method)
        return None, method
    model = load_segmenter(Path(model_file))
    return model, _method_of(model)


@segment_app.command("predict")
def predict_command(
    inputs: list[Path] = typer.Argument(..., help="Audio files (WAV/FLAC), folders of them, or a CirCor folder."),
    out: Path = typer.Option(..., "--out", help="Folder for the .tsv files (<name>.tsv)."),
    method: str = typer.Option("mamba", "--method", help="mamba (the better) or springer (faster)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (.pt Mamba, .npz Springer; default: the "
                                                               "shipped model of --method)."),
) -> None:
    """Segment recordings and write CirCor-format .tsv files."""
    from tqdm.auto import tqdm

    from murmurlm.data.audio import read_pcg
    from murmurlm.signal.segment import pcg_segment, write_tsv

    loaded, method = _model_and_method(method, model)
    files = _audio_files(inputs)

    failures = 0
    for path in tqdm(files, desc="segment", disable=len(files) < 2):
        try:
            rec = read_pcg(path)  # at the file's rate: the segmenter resamples once, to its own
            seg = pcg_segment(rec.waveform, rec.sampling_rate, method=method, model=loaded)
        except (MurmurlmError, ValueError) as err:
            log.error("%s: %s", path, err)
            failures += 1
            continue
        write_tsv(out / f"{path.stem}.tsv", seg.segments)
        log.info("%s: %.0f bpm, systolic interval %.3f s, %d segments -> %s", path.name, seg.heart_rate,
                 seg.systolic_interval, len(seg.segments), out / f"{path.stem}.tsv")
    if failures == len(files):
        raise MurmurlmError(f"no recording could be segmented ({failures} failed)")


@segment_app.command("evaluate")
def evaluate_command(
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR)."),
    patients: Optional[Path] = typer.Option(None, "--patients", help="Patient list (e.g. splits/circor-dev/val.txt); default: all."),
    method: str = typer.Option("mamba", "--method", help="mamba (the better) or springer (faster)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (.pt Mamba, .npz Springer; default: the "
                                                               "shipped model of --method)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON here."),
) -> None:
    """Score a segmenter against the .tsv files of a CirCor folder."""
    from rich.console import Console
    from rich.table import Table

    from murmurlm.data.circor import load_circor
    from murmurlm.data.splits import read_patient_list
    from murmurlm.signal.segment import load_segmenter
    from murmurlm.signal.segment.evaluation import evaluate_segmenter

    loaded, method = _model_and_method(method, model)
    ids = read_patient_list(patients) if patients else None
    dataset = load_circor(data, patient_ids=ids)
    result = evaluate_segmenter(loaded if loaded is not None else method, dataset.recordings, method=method)
    if result.recordings == 0:
        why = f" ({len(result.failed)} failed, e.g. {result.failed[0][0]}: {result.failed[0][1]})" if result.failed else ""
        raise MurmurlmError(f"{data}: no recording with a .tsv segmentation could be scored among the selected "
                            f"patients{why}")
    summary = {"method": method, "model": str(model) if model else "default", **result.summary()}
    for name, err in result.failed:
        typer.echo(f"not scored: {name}: {err}", err=True)
    table = Table(title=f"segmentation: {method} on {len(dataset.patients)} patients")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    Console(stderr=False).print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({**summary, "failed": [list(f) for f in result.failed]}, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(segment_app, name="segment")
