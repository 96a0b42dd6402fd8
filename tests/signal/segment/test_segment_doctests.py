"""The Examples sections of the segmentation modules run (on synthetic audio)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["", ".envelopes", ".hsmm", ".springer", ".metrics", ".frames", ".io", ".cycles", ".data",
           ".evaluation", ".mamba"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    if name == ".mamba":
        pytest.importorskip("torch")
    module = importlib.import_module(f"murmurlm.signal.segment{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
