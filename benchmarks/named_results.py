"""``NAME=FOLDER`` arguments of the side-by-side table scripts (``cv_table.py``, ``whisper_table.py``):
each folder holds one benchmark's JSON results file, read as is; and where their table goes."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load_named_results(specs: list[str], filename: str, tool: str, producer: str) -> dict[str, dict]:
    """``{NAME: results}`` for every ``NAME=FOLDER`` in ``specs``, read from ``FOLDER/filename``; a
    malformed spec or a missing file stops with a message saying which (``producer`` writes it)."""
    runs = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"{tool}: expected NAME=FOLDER, got {spec!r}")
        path = Path(folder) / filename
        if not path.exists():
            raise SystemExit(f"{tool}: {path} not found (run {producer} --out {folder} first)")
        runs[name] = json.loads(path.read_text())
        runs[name]["results_folder"] = folder
    return runs


def write_or_print(text: str, out: Path | None) -> None:
    """The table into ``out`` (its folder created), or on standard output when ``out`` is None."""
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
