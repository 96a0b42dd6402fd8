"""The Examples sections of the evaluate modules run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["aggregate", "predictions", "metrics", "baselines", "report"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"murmurlm.evaluate.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
