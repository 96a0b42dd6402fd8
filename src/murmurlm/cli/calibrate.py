"""``murmurlm calibrate``: probabilities that mean what they say.

    murmurlm calibrate CHECKPOINT --data DIR --patients VAL_LIST [--descriptor-head default|none|FILE]

Fits one temperature per feature on the listed patients (validation patients the model did not
train on; :func:`murmurlm.inference.predict.calibrate_checkpoint`) and stores them in the checkpoint,
which then applies them to every patient answer; the labels do not change. ``murmurlm pipeline``
does this itself on its validation patients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from murmurlm.errors import MurmurlmError


def calibrate_command(
    checkpoint: Path = typer.Argument(..., help="Compact checkpoint (best.pt, an ensemble) to calibrate in place."),
    data: Path = typer.Option(..., "--data", envvar="MURMURLM_CIRCOR", help="CirCor folder ($MURMURLM_CIRCOR)."),
    patients: Path = typer.Option(..., "--patients", help="Patients to fit on, one id per line: validation "
                                                          "patients the model never trained on."),
    descriptor_head: Optional[str] = typer.Option("none", "--descriptor-head",
                                                  help="The head the model will be used with: 'none', 'default' "
                                                       "(the packaged one) or a head JSON."),
) -> None:
    """Fit per-feature temperatures on validation patients and store them in the checkpoint."""
    from murmurlm.data.splits import read_patient_list
    from murmurlm.inference.predict import calibrate_checkpoint
    from murmurlm.models.descriptor_head import load_descriptor_head

    if not checkpoint.is_file():
        raise MurmurlmError(f"{checkpoint}: no such checkpoint")
    ids = read_patient_list(patients)
    if not ids:
        raise MurmurlmError(f"{patients}: no patient ids in the list")
    head = None if descriptor_head in (None, "none") else \
        load_descriptor_head(None if descriptor_head == "default" else Path(descriptor_head))
    temperatures = calibrate_checkpoint(checkpoint, data, ids, descriptor_head=head)
    for name, t in temperatures.items():
        typer.echo(f"{name}: temperature {t:.3f}")
    typer.echo(f"stored in {checkpoint}", err=True)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_command)
