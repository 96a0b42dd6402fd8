"""``murmurlm data``: check, download and split the CirCor dataset.

    murmurlm data check DIR [--json report.json]       exit 0 without errors, 1 with (warnings alone: 0)
    murmurlm data download DEST [--base-url URL] [--force]
    murmurlm data split DIR --out FOLDER [--seed 0] [--folds 5 | --fractions 0.7,0.15,0.15]
    murmurlm data prepare DIR --out MANIFEST_DIR     parse and check once; --data then takes MANIFEST_DIR
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from murmurlm.errors import MurmurlmError

data_app = typer.Typer(no_args_is_help=True, help="Check, download and split the CirCor dataset.")


@data_app.command("check")
def check(
    root: Path = typer.Argument(..., metavar="DIR", help="CirCor folder (holding training_data.csv and training_data/)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full report as JSON here."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Read every file of a CirCor folder and report counts and every problem found.

    Exit code 0 when no problem is an error (warnings alone are fine), 1 when errors were found.
    """
    from rich.console import Console

    from murmurlm.data.check import check_dataset

    report = check_dataset(root, progress=progress)
    Console().print(report, soft_wrap=True)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(report.to_json() + "\n", encoding="utf-8")
    if not report.ok:
        raise typer.Exit(code=1)


@data_app.command("prepare")
def prepare(
    root: Path = typer.Argument(..., metavar="DIR", help="CirCor folder (holding training_data.csv and training_data/)."),
    out: Path = typer.Option(..., "--out", help="Manifest folder to write (patients.jsonl, recordings.jsonl, ...)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Parse and check a CirCor folder once and write its manifests; every --data then accepts the
    manifest folder (refreshed by itself when the CirCor folder changes)."""
    import json

    from murmurlm.data.manifest import prepare_circor

    written = prepare_circor(root, out, progress=progress)
    summary = json.loads((written / "manifest.json").read_text())
    typer.echo(f"{written}: {summary['patients']} patients, {summary['recordings']} recordings, "
               f"{summary['errors']} error(s), {summary['warnings']} warning(s)")


@data_app.command("download")
def download(
    dest: Path = typer.Argument(..., metavar="DEST", help="Folder to download into (created when missing)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Folder URL holding SHA256SUMS.txt "
                                           "(default: PhysioNet's CirCor 1.0.3)."),
    force: bool = typer.Option(False, "--force", help="Ignore the .completed marker; check every file again."),
    workers: int = typer.Option(4, "--workers", min=1, max=16, help="Files downloaded at the same time."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Download CirCor DigiScope 1.0.3 from PhysioNet, resumably, checking every file's sha256."""
    from murmurlm.data.download import PHYSIONET_URL, download_circor

    target = download_circor(dest, base_url=base_url or PHYSIONET_URL, force=force, progress=progress,
                             workers=workers)
    typer.echo(f"CirCor is in {target}; check it with: murmurlm data check {target}")


@data_app.command("split")
def split(
    data: Path = typer.Argument(..., metavar="DIR", help="CirCor folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for train.txt/val.txt/test.txt (or fold<i>/)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the stratified split."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="k-fold split with this many folds."),
    fractions: Optional[str] = typer.Option(None, "--fractions", help="train,val,test fractions, "
                                            "e.g. 0.7,0.15,0.15 (default)."),
) -> None:
    """Patient-wise stratified split (train/val/test, or k folds) written as patient-id lists."""
    try:
        from murmurlm.cli.split import split_command
    except ImportError as err:
        raise MurmurlmError(f"the split command is not available in this installation ({err})") from None
    split_command(data, out, seed, folds, fractions)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
