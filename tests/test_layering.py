"""Data flows one way: data -> signal -> models -> testing (tiny test doubles) -> train -> evaluate ->
inference -> recipes (the training loops) -> serve -> cli.
No module imports from a layer above its own (``errors`` and ``config`` are below everything).
Imports inside functions count too: a lazy import from a higher layer is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import murmurlm

ROOT = Path(murmurlm.__file__).parent
LAYERS = ["errors", "config", "data", "signal", "models", "testing", "train", "evaluate", "inference", "recipes", "serve",
          "cli"]


def imported_layers(path: Path) -> set[tuple[str, int]]:
    """``(layer, line)`` of every ``murmurlm.<layer>`` import in ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "murmurlm" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def test_every_module_belongs_to_a_known_layer():
    for path in ROOT.rglob("*.py"):
        if path.name != "__init__.py" or path.parent != ROOT:
            assert layer_of(path) in LAYERS, path


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent == ROOT and path.name == "__init__.py":
            continue
        own = LAYERS.index(layer_of(path))
        for layer, line in imported_layers(path):
            assert layer in LAYERS, f"{path}:{line}: unknown layer murmurlm.{layer}"
            if LAYERS.index(layer) > own:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports murmurlm.{layer}")
    assert upward == []


def test_the_checker_sees_a_lazy_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from murmurlm.serve.app import create_app\n    import murmurlm.cli\n")
    assert imported_layers(module) == {("serve", 2), ("cli", 3)}
