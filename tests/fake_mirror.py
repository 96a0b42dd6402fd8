"""A fake PhysioNet file server on 127.0.0.1 for the downloader's tests: serves a folder, answers
HTTP Range requests (which SimpleHTTPRequestHandler does not), and can misbehave on purpose —
drop the connection mid-file, answer 503, or ignore Range."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def build_mirror(root: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write ``files`` (relative path -> bytes) under ``root`` with a SHA256SUMS.txt; return the sums."""
    sums = {}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sums[rel] = hashlib.sha256(data).hexdigest()
    (root / "SHA256SUMS.txt").write_text("".join(f"{sha}  {rel}\n" for rel, sha in sums.items()))
    return sums


class _RangeHandler(SimpleHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def do_GET(self):
        mirror = self.server.mirror
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        with mirror.lock:
            mirror.requests.append((rel, rng))
            failures = mirror.fail_with.get(rel)
            status = failures.pop(0) if failures else None
            drop = mirror.drop_after.get(rel)
            if drop is not None:
                after, times = drop
                if times <= 1:
                    del mirror.drop_after[rel]
                else:
                    mirror.drop_after[rel] = (after, times - 1)
        if status is not None:
            self.send_error(status)
            return
        path = mirror.root / rel
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = path.read_bytes()
        start, code = 0, HTTPStatus.OK
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not mirror.ignore_range:
            start, code = int(m.group(1)), HTTPStatus.PARTIAL_CONTENT
            if start >= len(data):
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if code == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if drop is not None:
            self.wfile.write(body[: drop[0]])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mirror: "FakeMirror"


class FakeMirror:
    """Serve ``root`` at ``self.url`` while used as a context manager.

    ``requests`` logs (relative path, Range header) per request; ``drop_after[rel] = (n, times)``
    sends only n bytes of the next ``times`` answers for ``rel`` then closes the connection;
    ``fail_with[rel] = [503, ...]`` answers those statuses first; ``ignore_range`` answers 200 to Range.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: dict[str, tuple[int, int]] = {}
        self.fail_with: dict[str, list[int]] = {}
        self.ignore_range = False
        self.lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the mirror first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> "FakeMirror":
        self._server = _Server(("127.0.0.1", 0), _RangeHandler)
        self._server.mirror = self
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
