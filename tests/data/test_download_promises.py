"""Promises of docs/data.md about ``murmurlm data download`` that test_download.py does not pin:
HTTP 408 and 429 are retried like 5xx (other statuses are not), and by default a file gets 5 retries
with a growing backoff."""

from __future__ import annotations

import numpy as np
import pytest

from fake_mirror import FakeMirror, build_mirror
from murmurlm.data import download as D
from murmurlm.errors import DownloadError, MurmurlmError

WAV = "training_data/1_AV.wav"


@pytest.fixture
def mirror(tmp_path):
    files = {"training_data.csv": b"Patient ID,Murmur\n1,Absent\n",
             WAV: np.random.default_rng(1).integers(0, 256, 30_000, dtype=np.uint8).tobytes()}
    build_mirror(tmp_path / "mirror", files)
    with FakeMirror(tmp_path / "mirror") as server:
        server.files = files
        yield server


@pytest.fixture
def sleeps(monkeypatch):
    """The backoff waits, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(D.time, "sleep", waited.append)
    return waited


def _requests(mirror, rel):
    return [r for r, _ in mirror.requests if r == rel]


def test_408_and_429_are_retried(mirror, tmp_path, sleeps):
    mirror.fail_with[WAV] = [408, 429, 503]
    target = D.download_circor(tmp_path / "c", base_url=mirror.url, progress=False, timeout=10.0)
    assert (target / WAV).read_bytes() == mirror.files[WAV]
    assert len(_requests(mirror, WAV)) == 4  # three refusals, then the file


def test_a_client_error_is_not_retried(mirror, tmp_path, sleeps):
    mirror.fail_with[WAV] = [403]
    with pytest.raises(DownloadError, match=r"1_AV\.wav: HTTP 403"):
        D.download_circor(tmp_path / "c", base_url=mirror.url, progress=False, timeout=10.0)
    assert len(_requests(mirror, WAV)) == 1
    assert (tmp_path / "c" / "training_data.csv").is_file()  # every other file is still fetched


def test_five_retries_by_default_with_a_growing_backoff(mirror, tmp_path, sleeps):
    mirror.fail_with[WAV] = [503] * 5
    D.download_circor(tmp_path / "ok", base_url=mirror.url, progress=False, timeout=10.0)
    assert len(_requests(mirror, WAV)) == 6
    assert sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1] and len(sleeps) == 5

    mirror.requests.clear()
    mirror.fail_with[WAV] = [503] * 6
    with pytest.raises(DownloadError, match=r"1_AV\.wav: download failed after 6 attempts"):
        D.download_circor(tmp_path / "fails", base_url=mirror.url, progress=False, timeout=10.0)
    assert len(_requests(mirror, WAV)) == 6


def test_download_errors_are_murmurlm_errors():
    assert issubclass(DownloadError, MurmurlmError)
