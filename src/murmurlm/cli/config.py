"""``murmurlm config``: the shipped run configs (torchtune's ``tune ls`` / ``tune cp``).

    murmurlm config list                 # names, with the first comment line of each
    murmurlm config cp NAME DEST         # copy one out to edit it, e.g. compact/default my.yaml

A ``--config`` of ``train``, ``pipeline``, ``finetune`` and ``segment train`` takes either a file or
one of these names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from murmurlm.errors import ConfigError

config_app = typer.Typer(no_args_is_help=True, help="The shipped run configs: list them, copy one out to edit.")


def _summary(path: Path) -> str:
    """The config's first comment line that is not a command (its one-line description)."""
    for line in path.read_text().splitlines():
        text = line.lstrip("# ").rstrip()
        if line.startswith("#") and text and not text.startswith(("murmurlm ", "accelerate ", "python ")):
            return text
    return ""


@config_app.command("list")
def list_command(
    all_files: bool = typer.Option(False, "--all", help="Also the files configs refer to (prompts, accelerate)."),
) -> None:
    """List the shipped configs (what --config NAME accepts)."""
    from murmurlm.recipes import config_names, config_path

    for name in config_names(include_support=all_files):
        typer.echo(f"{name:<28} {_summary(config_path(name))}")


@config_app.command("cp")
def cp_command(
    name: str = typer.Argument(..., help="A shipped config name (murmurlm config list)."),
    dest: Path = typer.Argument(..., help="File or folder to copy it to."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Copy a shipped config out, to edit it and pass it back with --config."""
    from murmurlm.recipes import config_path

    source = config_path(name)
    target = dest / source.name if dest.is_dir() else dest
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    typer.echo(f"{name} -> {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
