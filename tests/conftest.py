"""Shared fixtures: the real CirCor copy (skipped where absent) and a small synthetic CirCor folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repo_paths import REPO  # noqa: E402,F401  (also importable as conftest.REPO)


def circor_path() -> Path:
    """Where the real CirCor copy is expected: $MURMURLM_CIRCOR, else ../shared/circor-dev."""
    return Path(os.environ.get("MURMURLM_CIRCOR", REPO.parent / "shared" / "circor-dev"))


@pytest.fixture(autouse=True)
def _forget_cli_logging():
    """``murmurlm.cli.main`` configures the root logger (a RichHandler writing to stdout); remove it
    after each test, so that later tests comparing stdout (doctests) see no log lines."""
    import logging

    from rich.logging import RichHandler

    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h, RichHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def circor_root() -> Path:
    path = circor_path()
    if not (path / "training_data").is_dir():
        pytest.skip(f"real CirCor data not found at {path} (set MURMURLM_CIRCOR)")
    return path


@pytest.fixture(scope="session")
def synthetic_circor(tmp_path_factory) -> Path:
    """A synthetic dataset folder in CirCor's official layout (WAV audio, 4 kHz)."""
    from murmurlm.signal.synth import write_synthetic_circor

    root = tmp_path_factory.mktemp("synthetic_circor")
    write_synthetic_circor(root, num_patients=12, seed=0)
    return root


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium():
    """Debian's headless Chromium driven by Playwright (no browser download: scripts/install-system.sh
    installs the Debian package); skipped with a reason where it is missing, failed under
    MURMURLM_REQUIRE_SYSTEM_TOOLS=1 (CI)."""
    from playwright import sync_api  # the dev extra
    from system_tools import missing, need_tool

    exe = str(CHROMIUM) if CHROMIUM.exists() else need_tool("chromium")
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        except Exception as err:  # a chromium that playwright cannot drive
            missing(f"cannot start chromium through playwright: {err}")
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and much slower on two busy cores); use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
