"""Debian tools that some tests need (chromium, espeak-ng, flac; installed by scripts/install-system.sh).

Where a tool is missing the test skips with the reason, except when ``MURMURLM_REQUIRE_SYSTEM_TOOLS=1``
(set by ``.ci/run``): then the test fails, so that a green CI run really covers the web page, the
spoken-sentence check and the FLAC restore."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "MURMURLM_REQUIRE_SYSTEM_TOOLS"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def missing(reason: str) -> None:
    """Skip (or, where tools are required, fail) the running test because of ``reason``."""
    if required():
        pytest.fail(f"{reason} [{REQUIRE_ENV}=1: this run requires the system tools]", pytrace=False)
    pytest.skip(reason)


def need_tool(name: str, package: str | None = None) -> str:
    """The path of command ``name``; skips or fails (see :func:`missing`) when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (Debian package {package or name}; scripts/install-system.sh installs it)")
    return path
