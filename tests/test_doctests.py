"""The Examples sections of every module under ``src/murmurlm`` run, and print what they promise.

Modules are found by walking the package, so a new module's examples are collected without editing
this file. A module whose source holds an example (``>>>``) must also run at least one, so that a
docstring that doctest cannot see (e.g. one that is not the first statement) is caught."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import murmurlm

MODULES = sorted(m.name for m in pkgutil.walk_packages(murmurlm.__path__, "murmurlm."))


def test_the_package_walk_finds_every_layer():
    for layer in ("data", "signal", "models", "evaluate", "inference", "serve", "cli", "train"):
        assert any(name.startswith(f"murmurlm.{layer}.") for name in MODULES), layer


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
    if ">>>" in inspect.getsource(module):
        assert result.attempted > 0, f"{name} has examples that doctest does not collect"
