"""Admission control under real concurrency: with ``max_pending`` uploads held open on real sockets
(headers and part of the body sent, the rest withheld), the next request gets 503 ``busy`` with
``Retry-After``; once one held upload finishes (or its client goes away) a fresh request is served.
Real uvicorn on 127.0.0.1, raw sockets for the stalled clients."""

from __future__ import annotations

import json
import logging
import socket
import time

from murmurlm.serve.app import create_app
from predict_helpers import encode, serving, synthetic_wave, tiny_predictor

MAX_PENDING = 2


def request_head(length: int, content_type: str = "audio/wav") -> bytes:
    return (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode("ascii")


def read_response(conn: socket.socket) -> tuple[int, dict[str, str], dict]:
    """One HTTP/1.1 response with a Content-Length body: (status, headers, JSON body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before the response headers: {data[:200]!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return status, headers, json.loads(body[:length])


def post(port: int, data: bytes) -> tuple[int, dict[str, str], dict]:
    """A complete raw-body upload on a fresh connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request_head(len(data)) + data)
        return read_response(conn)


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_held_uploads_fill_the_slots_then_503_then_a_freed_slot_serves(tmp_path, caplog):
    app = create_app(tiny_predictor(), tmp_dir=tmp_path / "svc", max_pending=MAX_PENDING, body_timeout_s=60.0)
    service = app.state.service
    wav = encode(synthetic_wave(4.0, 4000, seed=2), 4000)
    half = len(wav) // 2
    stalled: list[socket.socket] = []
    caplog.set_level(logging.WARNING)
    with serving(app) as port:
        try:
            for _ in range(MAX_PENDING):  # admitted, then held: the rest of the body never comes
                conn = socket.create_connection(("127.0.0.1", port), timeout=30)
                stalled.append(conn)
                conn.sendall(request_head(len(wav)) + wav[:half])
            wait_for(lambda: service.pending == MAX_PENDING, f"{MAX_PENDING} uploads are admitted")

            status, headers, body = post(port, wav)
            assert status == 503, body
            assert body["reason"] == "busy" and "busy" in body["detail"]
            assert headers["retry-after"] == "1"
            assert service.pending == MAX_PENDING  # the refused request took no slot

            # the first held upload sends the rest of its body: answered, its slot freed
            stalled[0].sendall(wav[half:])
            status, _, body = read_response(stalled[0])
            assert status == 200, body
            assert len(body["features"]) == 11 and body["input"]["bytes"] == len(wav)
            wait_for(lambda: service.pending == MAX_PENDING - 1, "the finished upload frees its slot")

            status, _, body = post(port, wav)  # a fresh request fits in the freed slot
            assert status == 200, body
            assert len(body["features"]) == 11

            # the other held client goes away mid-upload: its slot is freed too
            stalled[1].close()
            wait_for(lambda: service.pending == 0, "the disconnected upload frees its slot")
            status, _, _ = post(port, wav)
            assert status == 200
        finally:
            for conn in stalled:
                conn.close()
    assert list((tmp_path / "svc").iterdir()) == []
    # a client that hangs up is not a server fault: nothing logged as an unexpected error
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
