"""``murmurlm evaluate``: score predictions files against a CirCor folder and write reports.

    murmurlm evaluate PRED.csv [PRED2.csv ...] --data DIR [--patients FILE] [--out reports/]
                      [--baselines/--no-baselines] [--bootstrap 1000] [--seed 0]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from murmurlm.errors import DataFormatError

log = logging.getLogger(__name__)


def _unique_names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        name = p.stem
        if name in names:
            name = f"{p.parent.name}/{p.stem}"
        base, k = name, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def evaluate(
    predictions: Optional[list[Path]] = typer.Argument(None, help="Predictions CSV file(s) (see docs/evaluation.md).",
                                                      show_default=False),
    data: Path = typer.Option(..., "--data", help="CirCor folder (with training_data.csv and/or training_data/)."),
    patients: Optional[Path] = typer.Option(None, "--patients", help="Evaluate only these patient ids (one per line, # comments); "
                                            "baselines are then fitted on the dataset's other patients."),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for report.md, report.html, metrics.json."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Add the majority and class-prior baselines."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples of patients (0: no intervals)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of the class-prior baseline."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Confusion-matrix figures in the reports."),
) -> None:
    """Score predictions files (patient level) and write Markdown, HTML and JSON reports."""
    from rich.console import Console
    from rich.table import Table

    from murmurlm.evaluate.predictions import read_predictions
    from murmurlm.evaluate.report import HEADLINE, dataset_labels, evaluate_with_baselines, write_reports

    paths = list(predictions or [])
    if not paths and not baselines:
        raise typer.BadParameter("give at least one predictions file, or --baselines", param_hint="PREDICTIONS")
    truth_all = dataset_labels(data)
    if patients is not None:
        from murmurlm.data.splits import read_patient_list

        wanted = read_patient_list(patients)
        if not wanted:
            raise DataFormatError(patients, "no patient ids in the list")
        unknown = [pid for pid in wanted if pid not in truth_all]
        if unknown:
            raise DataFormatError(patients, f"{len(unknown)} patient id(s) not in {data}: "
                                  f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
        truth = {pid: truth_all[pid] for pid in wanted}
        train = [labels for pid, labels in truth_all.items() if pid not in truth]
        if baselines and not train:
            raise DataFormatError(patients, "lists every patient of the dataset: no other patients to fit the baselines on; "
                                  "use --no-baselines")
    else:
        truth = truth_all
        train = list(truth_all.values())

    frames = {name: read_predictions(p) for name, p in zip(_unique_names(paths), paths)}
    results = evaluate_with_baselines(frames, truth, train if baselines else None, known_ids=list(truth_all),
                                      bootstrap=bootstrap, seed=seed, predictions_dir=out / "predictions")
    context = {"data": str(data), "patients": str(patients) if patients else f"all {len(truth)} patients",
               "baselines fitted on": ("the dataset's other patients" if patients else "the evaluated patients (in-sample)")
               if baselines else "no baselines"}
    written = write_reports(results, out, context=context, plots=plots)

    table = Table(title=f"murmurlm evaluate: {len(truth)} patients, 95% bootstrap CI ({bootstrap} resamples)")
    table.add_column("metric")
    for name in results:
        table.add_column(name, justify="right")
    for key, (label, higher, _) in HEADLINE.items():
        cells = []
        for res in results.values():
            h = res["headline"][key]
            fmt = "{:.0f}" if h["value"] is not None and abs(h["value"]) >= 100 else "{:.3f}"
            if h["value"] is None:
                cells.append("–")
            elif h["ci"] and h["ci"][0] is not None:
                cells.append(f"{fmt.format(h['value'])}\n[{fmt.format(h['ci'][0])}, {fmt.format(h['ci'][1])}]")
            else:
                cells.append(fmt.format(h["value"]))
        table.add_row(label + (" ↑" if higher else " ↓"), *cells)
    table.caption = "costs: the challenge's mean cost per patient; ↑ higher is better, ↓ lower is better"
    console = Console()
    console.print(table)
    for res in results.values():
        for note in res["challenge"].get("notes", []):
            console.print(f"note: {res['name']}: {note}")
    console.print(f"reports: {written['markdown']}, {written['html']}, {written['json']}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
