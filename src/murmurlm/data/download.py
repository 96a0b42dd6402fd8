"""Download CirCor DigiScope 1.0.3 from PhysioNet, resumably, every file checked by sha256.

PhysioNet serves each project version as plain files with a ``SHA256SUMS.txt`` listing every file.
:func:`download_circor` fetches that list first, then every file on it (a few at a time), into
``target_dir`` with the same relative paths:

- a file already there with the right checksum is skipped;
- a download goes to ``<file>.part`` and continues where it stopped (HTTP ``Range``) when re-run, or
  when the connection drops (network errors and HTTP 408/429/5xx are retried with backoff);
- a finished ``.part`` whose sha256 differs from the list is deleted and the file refused with a
  :class:`~murmurlm.errors.DownloadError` naming it (a resumed file gets one fresh try first);
- when every file is in place, a ``.completed`` marker is written; re-running is then a no-op unless
  ``force=True``, which checks every file again and fetches whatever is missing or wrong.

Dataset: J. Oliveira et al., "The CirCor DigiScope Dataset: From Murmur Detection to Murmur
Classification", IEEE JBHI 26(6), 2022; PhysioNet (Goldberger et al., Circulation 2000). Licence
ODC-By 1.0: credit the authors when you use or share it.

Examples
--------
>>> parse_checksums("a3" * 32 + "  training_data/1_AV.wav\\n", "SHA256SUMS.txt")
{'training_data/1_AV.wav': 'a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3'}
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from murmurlm import __version__
from murmurlm.errors import DownloadError

log = logging.getLogger(__name__)

PHYSIONET_URL = "https://physionet.org/files/circor-heart-sound/1.0.3/"
"""PhysioNet's file server for CirCor DigiScope 1.0.3."""

CHECKSUMS = "SHA256SUMS.txt"
COMPLETED = ".completed"
_CHUNK = 1 << 16
_USER_AGENT = f"murmurlm/{__version__} (+https://physionet.org/content/circor-heart-sound/1.0.3/)"
_LINE = re.compile(r"^(?P<sha>[0-9a-fA-F]{64}) [ *]?(?P<path>.+)$")


class _Retry(Exception):
    """A transient failure: the connection dropped, timed out, or the server was busy."""


def parse_checksums(text: str, source: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <path>`` lines) into {relative path: lowercase hex}.

    Paths must be relative and stay inside the download folder (no ``..``, no absolute paths);
    anything else is a DownloadError naming ``source`` and the line.
    """
    sums: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise DownloadError(f"{source}:{lineno}: expected '<sha256> <path>', got {line[:80]!r}")
        rel = m.group("path").strip()
        parts = PurePosixPath(rel).parts
        if rel.startswith("/") or "\\" in rel or "\0" in rel or not parts or any(p in ("..", ".") for p in parts):
            raise DownloadError(f"{source}:{lineno}: unsafe path {rel!r} (must be relative, inside the folder)")
        if rel in sums and sums[rel] != m.group("sha").lower():
            raise DownloadError(f"{source}:{lineno}: {rel} listed twice with different checksums")
        sums[rel] = m.group("sha").lower()
    if not sums:
        raise DownloadError(f"{source}: lists no files")
    return sums


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _request(url: str, offset: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.Request(url, headers=headers)


def _open(url: str, offset: int, timeout: float):
    """urlopen with transient failures as _Retry and the rest as DownloadError; None for HTTP 416."""
    try:
        return urllib.request.urlopen(_request(url, offset), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return None  # the .part already holds the whole file (or more): let the checksum decide
        if err.code in (408, 429) or err.code >= 500:
            raise _Retry(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise _Retry(str(getattr(err, "reason", err)) or type(err).__name__) from None


def _fetch(url: str, part: Path, timeout: float, counter: "_Bytes") -> None:
    """Append the rest of ``url`` to ``part`` (Range from its current size), or restart it when the
    server ignores the Range. Raises _Retry when the transfer stops early."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout)
    if response is None:
        return
    with response:
        mode = "wb"
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise _Retry(f"server answered range {content_range!r} to 'bytes={offset}-'")
            mode = "ab"
        elif offset:
            log.debug("%s: server ignored the Range request; starting over", url)
            offset = 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        with open(part, mode) as out:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (http.client.HTTPException, OSError) as err:
                    raise _Retry(f"connection lost after {offset + received} bytes: {err or type(err).__name__}") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                counter.add(len(chunk))
        if expected is not None and received != expected:
            raise _Retry(f"connection closed after {offset + received} of {offset + expected} bytes")


class _Bytes:
    """A thread-safe byte counter for the progress bar."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.total += n


def _download_one(url: str, dest: Path, sha: str, rel: str, retries: int, timeout: float,
                  counter: _Bytes) -> str:
    """Make ``dest`` a verified copy of ``url``; returns 'present' or 'downloaded'."""
    if dest.is_file():
        if sha256_file(dest) == sha:
            return "present"
        log.warning("%s exists but its sha256 differs from %s; downloading it again", rel, CHECKSUMS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    fresh_tries = 2 if part.exists() else 1  # a resumed file that fails its checksum gets one fresh try
    for fresh in range(fresh_tries):
        for attempt in range(retries + 1):
            try:
                _fetch(url, part, timeout, counter)
                break
            except _Retry as err:
                if attempt == retries:
                    raise DownloadError(f"{rel}: download failed after {retries + 1} attempts: {err}; "
                                        f"re-run to resume from {part.name}") from None
                log.info("%s: %s; retrying (%d/%d)", rel, err, attempt + 1, retries)
                time.sleep(min(0.25 * 2 ** attempt, 8.0))
        digest = sha256_file(part) if part.exists() else hashlib.sha256().hexdigest()
        if digest == sha:
            os.replace(part, dest)
            return "downloaded"
        part.unlink(missing_ok=True)
        if fresh + 1 < fresh_tries:
            log.warning("%s: resumed download fails its checksum; downloading it from the start", rel)
    raise DownloadError(f"{rel}: corrupted download refused: sha256 {digest}, {CHECKSUMS} says {sha}; "
                        f"the partial file was deleted")


def download_circor(target_dir: str | Path, base_url: str = PHYSIONET_URL, force: bool = False,
                    progress: bool = True, workers: int = 4, retries: int = 5,
                    timeout: float = 60.0) -> Path:
    """Download CirCor DigiScope 1.0.3 (or any folder with a ``SHA256SUMS.txt``) into ``target_dir``.

    Parameters
    ----------
    target_dir
        Where the files go, with their relative paths (``training_data.csv``, ``training_data/...``).
    base_url
        The folder URL holding ``SHA256SUMS.txt``; PhysioNet's by default (a mirror works too).
    force
        Ignore the ``.completed`` marker: check every file again, fetch what is missing or wrong.
        Files already present with the right checksum are never fetched again.
    progress
        Show a tqdm progress bar.
    workers
        Files downloaded at the same time.
    retries
        Further attempts per file after a network error (each resumes from the ``.part`` file).
    timeout
        Seconds without an answer before an attempt is abandoned.

    Returns
    -------
    Path
        ``target_dir``, now holding every file of the list, each with its listed checksum.

    Raises
    ------
    DownloadError
        The list cannot be fetched or parsed, a file cannot be fetched after its retries, or a file
        fails its checksum. Every file is tried before the error is raised; it names them all.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (target / COMPLETED).write_text("done")
    >>> download_circor(target, progress=False) == target   # complete already: nothing to do
    True
    """
    target = Path(target_dir)
    marker = target / COMPLETED
    if marker.exists() and not force:
        log.info("%s is complete (%s exists); nothing to do (use force to check again)", target, COMPLETED)
        return target
    if workers < 1 or retries < 0 or timeout <= 0:
        raise ValueError(f"need workers >= 1, retries >= 0, timeout > 0; got {workers}, {retries}, {timeout}")
    base = base_url if base_url.endswith("/") else base_url + "/"
    target.mkdir(parents=True, exist_ok=True)

    sums_url = urllib.parse.urljoin(base, CHECKSUMS)
    sums_part = target / (CHECKSUMS + ".part")
    sums_part.unlink(missing_ok=True)
    counter = _Bytes()
    for attempt in range(retries + 1):
        try:
            _fetch(sums_url, sums_part, timeout, counter)
            break
        except _Retry as err:
            sums_part.unlink(missing_ok=True)
            if attempt == retries:
                raise DownloadError(f"{sums_url}: cannot fetch the checksum list: {err}") from None
            time.sleep(min(0.25 * 2 ** attempt, 8.0))
    try:
        text = sums_part.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        sums_part.unlink(missing_ok=True)
        raise DownloadError(f"{sums_url}: not a text file") from None
    sums = parse_checksums(text, sums_url)
    sums.pop(CHECKSUMS, None)
    os.replace(sums_part, target / CHECKSUMS)
    log.info("%s lists %d files", CHECKSUMS, len(sums))

    status: dict[str, int] = {"present": 0, "downloaded": 0}
    failures: list[str] = []
    bar = tqdm(total=len(sums), desc="download", unit="file", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {
            pool.submit(_download_one, urllib.parse.urljoin(base, urllib.parse.quote(rel)), target / rel, sha,
                        rel, retries, timeout, counter): rel
            for rel, sha in sums.items()
        }
        for future in as_completed(futures):
            try:
                status[future.result()] += 1
            except DownloadError as err:
                failures.append(str(err))
                log.error("%s", err)
            bar.update(1)
            bar.set_postfix_str(f"{counter.total / 1e6:.1f} MB")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    log.info("%d files downloaded, %d already present; %.1f MB transferred", status["downloaded"],
             status["present"], counter.total / 1e6)
    if failures:
        shown = " | ".join(sorted(failures)[:3])
        more = f" | ... and {len(failures) - 3} more (logged above)" if len(failures) > 3 else ""
        raise DownloadError(f"{len(failures)} of {len(sums)} file(s) failed (re-run to try again; "
                            f"partial files resume): {shown}{more}")
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    marker.write_text(f"{base}\n{len(sums)} files verified against {CHECKSUMS} "
                      f"(sha256 {sha256_file(target / CHECKSUMS)}) at {stamp}\n")
    return target
