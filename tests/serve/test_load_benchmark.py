"""Smoke test of ``benchmarks/load_test.py``: a few requests against a real ``murmurlm serve``
subprocess on 127.0.0.1, results written as JSON and Markdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from predict_helpers import save_tiny_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"


@pytest.mark.slow
def test_load_test_runs(tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(ckpt), "--requests", "4", "--clients", "2",
         "--seconds", "3", "--distinct", "2", "--time-limit", "120", "--out", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "load_test.json").read_text())
    assert result["succeeded"] == 4 and result["failed"] == 0
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert result["throughput_rps"] > 0
    assert 0 < result["server_elapsed_ms"]["p50"] <= lat["max"]
    assert "| 4 | 0 |" in (out / "load_test.md").read_text()
