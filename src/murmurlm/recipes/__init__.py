"""The training recipes and their shipped configs, inside the package (as torchtune ships its own).

A recipe is a module that writes its training loop out over library pieces and has one entry::

    run(cfg, *, data, out, split=None, resume=False, progress=True) -> dict   # a summary

with ``cfg`` its own config dataclass, read by ``load_config(path_or_name, overrides)``.

=====================  ===============================  ===========================
recipe                 what it trains                   ``murmurlm`` command
=====================  ===============================  ===========================
``train_compact``      the compact multi-task CNN       ``train``, ``pipeline``
``finetune_audio_lm``  LoRA on an audio language model  ``finetune``
``train_segmenter``    the Mamba / Springer segmenter   ``segment train``
=====================  ===============================  ===========================

The configs are package data under ``murmurlm/recipes/configs/<family>/<name>.yaml`` (in a
checkout also reachable as ``configs/``). A ``--config`` takes a file path or a shipped name such as
``compact/default``; ``murmurlm config list`` lists the names and ``murmurlm config cp NAME DEST``
copies one out for editing.

Examples
--------
>>> "compact/default" in config_names()
True
>>> config_path("compact/default").name
'default.yaml'
>>> resolve_config("compact/default") == config_path("compact/default")
True
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType

from murmurlm.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent / "configs"
"""The shipped configs (package data)."""

RECIPES = ("train_compact", "finetune_audio_lm", "train_segmenter", "train_descriptor_head")

# Shipped files under configs/ that are not run configs of a recipe (they are read by one).
_NOT_RUN_CONFIGS = {"audio_lm/prompts"}


def config_names(include_support: bool = False) -> list[str]:
    """Names of the shipped configs (``family/name``), sorted. ``include_support`` adds the files a
    config refers to (the prompt file, the accelerate launch configs)."""
    names = sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.yaml"))
    if include_support:
        return names
    return [n for n in names if n not in _NOT_RUN_CONFIGS and not n.startswith("accelerate/")]


def config_path(name: str) -> Path:
    """The file of a shipped config name (``compact/default``, with or without ``.yaml``)."""
    stem = name.removesuffix(".yaml").removeprefix("configs/")
    path = CONFIGS / f"{stem}.yaml"
    if not path.is_file():
        raise ConfigError(f"no shipped config named {name!r}; shipped: {', '.join(config_names(True))}")
    return path


def resolve_config(path_or_name: str | Path | None) -> Path | None:
    """A ``--config`` value as a file: an existing path as it is, else a shipped config name;
    ``None`` stays ``None`` (the recipe's dataclass defaults)."""
    if path_or_name is None:
        return None
    path = Path(path_or_name)
    if path.is_file():
        return path
    try:
        return config_path(str(path_or_name))
    except ConfigError:
        raise ConfigError(f"config not found: {path_or_name} (neither a file nor a shipped config; "
                          f"shipped: {', '.join(config_names())})") from None


def shipped_file(path: str | Path) -> Path:
    """A file that a config names (``prompts: audio_lm/prompts.yaml``): as it is when it exists
    (absolute, or relative to the working folder), else inside the shipped configs. The checkout's
    spelling ``configs/audio_lm/prompts.yaml`` is accepted too."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    shipped = CONFIGS / p.as_posix().removeprefix("configs/")
    if shipped.exists():
        return shipped
    raise ConfigError(f"file not found: {path} (neither relative to {Path.cwd()} nor in the shipped configs)")


def load_recipe(name: str) -> ModuleType:
    """Import a recipe by name (one of :data:`RECIPES`)."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    return importlib.import_module(f"murmurlm.recipes.{name}")


def recipe_arguments(doc: str, default_config: str, default_out: str) -> argparse.ArgumentParser:
    """The command line every recipe script shares (``python -m murmurlm.recipes.<name>``):
    ``--config``, ``--data``, ``--out``, ``--split``, ``--resume``, ``--no-progress`` and trailing
    ``key=value`` overrides; a recipe adds its own options to the parser it gets."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--config", default=default_config, help="YAML file or shipped config name")
    parser.add_argument("--data", type=Path, required=True, help="CirCor folder or manifest folder")
    parser.add_argument("--out", type=Path, default=Path(default_out), help="run folder")
    parser.add_argument("--split", type=Path, default=None, help="folder with train.txt and val.txt")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    return parser


def recipe_main(recipe: ModuleType, argv, default_config: str, default_out: str) -> int:
    """A recipe script's ``main``: :func:`recipe_arguments`, logging, ``load_recipe_config`` and
    ``run``; a murmurlm error is one line and exit code 2."""
    import logging

    from murmurlm.errors import MurmurlmError

    args = recipe_arguments(recipe.__doc__ or "", default_config, default_out).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = recipe.load_recipe_config(args.config or None, args.overrides)
        recipe.run(cfg, data=args.data, out=args.out, split=args.split, resume=args.resume,
                   progress=not args.no_progress)
    except MurmurlmError as err:
        print(f"error: {err}")
        return 2
    return 0
