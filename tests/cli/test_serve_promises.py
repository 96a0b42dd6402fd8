"""Promises of docs/serve.md about ``murmurlm serve`` start-up that need no server: it listens on
127.0.0.1:8000 unless told otherwise, loads the model once before serving, and passes the documented
default limits to the service."""

from __future__ import annotations

import pytest

from murmurlm.cli import main
from predict_helpers import save_tiny_checkpoint


@pytest.fixture
def started(monkeypatch):
    import uvicorn

    runs = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append((app, kw)))
    return runs


def test_defaults_listen_on_localhost_port_8000_with_the_documented_limits(started, tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    assert main(["serve", "--model", str(ckpt)]) == 0
    [(app, kw)] = started
    assert (kw["host"], kw["port"]) == ("127.0.0.1", 8000)
    service = app.state.service
    assert service.model_name == "tiny.pt"  # loaded before uvicorn starts
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["ask"] is False and health["segmentation"] is True
    limits = health["limits"]
    assert limits == {**limits, "max_upload_mb": 20.0, "max_duration_s": 120.0, "min_duration_s": 2.0}, limits


def test_host_and_port_are_passed_through(started, tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pt")
    assert main(["serve", "--model", str(ckpt), "--host", "0.0.0.0", "--port", "8123"]) == 0
    [(_, kw)] = started
    assert (kw["host"], kw["port"]) == ("0.0.0.0", 8123)
