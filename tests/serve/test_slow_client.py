"""A client that stops sending its body gets 408 and frees its slot (real uvicorn, raw socket):
with ``max_pending=1``, the next upload is served."""

from __future__ import annotations

import socket
import time

from murmurlm.serve.app import create_app
from predict_helpers import encode, serving, synthetic_wave, tiny_predictor


def test_stalled_upload_gets_408(tmp_path):
    app = create_app(tiny_predictor(), tmp_dir=tmp_path / "svc", body_timeout_s=1.0, max_pending=1)
    with serving(app) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
            conn.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                         b"Content-Length: 100000\r\n\r\nRIFF")  # ... and nothing more
            start = time.monotonic()
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                reply += chunk
            waited = time.monotonic() - start
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b'"reason":"timeout"' in reply and b"4 bytes received" in reply
        assert waited < 10
        assert app.state.service.pending == 0  # the slot is free again ...
        wav = encode(synthetic_wave(3.0, 4000, seed=0), 4000)
        with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:  # ... and serves the next one
            conn.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nConnection: close\r\n"
                         + f"Content-Length: {len(wav)}\r\n\r\n".encode() + wav)
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert b'"features":[' in reply and f'"bytes":{len(wav)}'.encode() in reply
        assert list((tmp_path / "svc").iterdir()) == []
