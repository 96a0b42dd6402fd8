"""Where the checkout is, for tests that read its committed files (splits, scripts, the Makefile).
A module of its own: test files import it by name, which a nested ``conftest.py`` would shadow."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
