"""Checkpoints that describe themselves, written atomically.

A checkpoint is one ``torch.save`` dict: ``model`` (state dict), ``optimizer``, ``scheduler``,
``rng`` (Python, numpy and torch states), ``epoch``, ``step``, ``best`` (metric and epoch),
``config`` (the resolved run config as plain data) and ``extra`` (whatever the recipe needs to
rebuild the model, e.g. class weights). :func:`save_checkpoint` writes a temporary file and renames
it, so a run killed while saving leaves the previous checkpoint intact.

Examples
--------
>>> import tempfile, pathlib, torch
>>> path = pathlib.Path(tempfile.mkdtemp()) / "last.pt"
>>> model = torch.nn.Linear(2, 1)
>>> save_checkpoint(path, model=model.state_dict(), epoch=1, config={"lr": 0.1})
>>> load_checkpoint(path)["epoch"]
1
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from murmurlm.errors import MurmurlmError


class CheckpointError(MurmurlmError):
    """A checkpoint is missing, unreadable or not of the expected kind."""


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states, to restore with :func:`set_rng_state`."""
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: str | Path, **contents: Any) -> None:
    """Save a checkpoint dict (keys as in the module docstring) atomically."""
    atomic_save(contents, path)


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint on the CPU. ``kind``, when given, must match the checkpoint's ``kind``."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt file
        raise CheckpointError(f"{path}: cannot read checkpoint: {err}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a murmurlm checkpoint (no dict inside)")
    if kind is not None and ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: a {ckpt.get('kind')!r} checkpoint, expected {kind!r}")
    return ckpt
