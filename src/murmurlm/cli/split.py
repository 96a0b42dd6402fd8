"""``murmurlm data split``: patient-wise stratified splits written as patient-id lists.

    murmurlm data split DIR --out FOLDER [--seed 0] [--folds 5 | --fractions 0.7,0.15,0.15]

The ``data`` command group (``murmurlm.cli.data``) calls :func:`split_command`; ``register`` adds
nothing of its own.
"""

from __future__ import annotations

from pathlib import Path

import typer

from murmurlm.errors import ConfigError


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.7,0.15,0.15' -> (0.7, 0.15, 0.15); ConfigError for anything else."""
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--fractions: expected three comma-separated numbers like 0.7,0.15,0.15, got {text!r}") from None
    if len(values) != 3:
        raise ConfigError(f"--fractions: expected three numbers (train,val,test), got {len(values)} in {text!r}")
    return values  # type: ignore[return-value]


def split_command(data: Path, out: Path, seed: int = 0, folds: int | None = None,
                  fractions: str | None = None) -> None:
    """Split the patients of the CirCor folder ``data`` and write the patient lists to ``out``.

    ``folds``: k-fold split (``out/fold<i>/train.txt``, ``val.txt``); otherwise train/val/test with
    ``fractions`` (default 0.7,0.15,0.15). Prints part sizes and the rare classes' counts per part.
    """
    from murmurlm.data.circor import load_circor
    from murmurlm.data.splits import class_counts, kfold, train_val_test_split, write_kfold, write_split

    if folds is not None and fractions is not None:
        raise ConfigError("give either --folds or --fractions, not both")
    dataset = load_circor(data)
    out = Path(out)
    if folds is not None:
        try:
            splits = kfold(dataset, k=folds, seed=seed)
        except ValueError as err:
            raise ConfigError(f"--folds: {err}") from None
        write_kfold(splits, out)
        typer.echo(f"{len(dataset.patients)} patients in {folds} folds, held out: "
                   f"{', '.join(str(len(s.val)) for s in splits)}; written to {out}/fold0..fold{folds - 1}")
        return
    shares = parse_fractions(fractions or "0.7,0.15,0.15")
    try:
        split = train_val_test_split(dataset, shares, seed=seed)
    except ValueError as err:
        raise ConfigError(f"--fractions: {err}") from None
    write_split(split, out)
    typer.echo(f"{len(dataset.patients)} patients: {len(split.train)} train, {len(split.val)} val, "
               f"{len(split.test)} test; written to {out}")
    rare = {c: v for c, v in class_counts(split, dataset).items() if sum(v) <= 10}
    if rare:
        typer.echo("rare classes (train/val/test):")
        for name, counts in rare.items():
            typer.echo(f"  {name}: {'/'.join(map(str, counts))}")


def register(app: typer.Typer) -> None:
    """Nothing to add: ``murmurlm data split`` (in :mod:`murmurlm.cli.data`) calls :func:`split_command`."""
