"""The CirCor downloader against a fake PhysioNet mirror on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_mirror import FakeMirror, build_mirror
from murmurlm.data.download import COMPLETED, download_circor, parse_checksums, sha256_file
from murmurlm.errors import DownloadError

WAV = "training_data/1_AV.wav"


def _files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "training_data.csv": b"Patient ID,Murmur\n1,Absent\n",
        "training_data/1.txt": b"1 1 4000\nAV 1_AV.hea 1_AV.wav 1_AV.tsv\n#Murmur: Absent\n",
        "training_data/1_AV.hea": b"1_AV 1 4000 100000\r\n1_AV.wav 16+44 1 16 0 0 0 0 AV\r\n",
        WAV: rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes(),
        "LICENSE.txt": b"ODC-By 1.0\n",
    }


@pytest.fixture
def mirror(tmp_path):
    files = _files()
    root = tmp_path / "mirror"
    sums = build_mirror(root, files)
    with FakeMirror(root) as server:
        server.files, server.sums = files, sums
        yield server


def _download(mirror, target, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("timeout", 10.0)
    return download_circor(target, base_url=mirror.url, **kw)


def _assert_complete(mirror, target):
    for rel, data in mirror.files.items():
        assert (target / rel).read_bytes() == data, rel
    assert not list(target.rglob("*.part"))
    assert (target / COMPLETED).is_file()
    assert (target / "SHA256SUMS.txt").read_bytes() == (mirror.root / "SHA256SUMS.txt").read_bytes()


def test_downloads_every_listed_file_and_rerun_is_a_noop(mirror, tmp_path):
    target = tmp_path / "circor"
    assert _download(mirror, target) == target
    _assert_complete(mirror, target)
    assert sorted(rel for rel, _ in mirror.requests) == sorted([*mirror.files, "SHA256SUMS.txt"])

    mirror.requests.clear()
    _download(mirror, target)
    assert mirror.requests == []  # the .completed marker: nothing fetched, not even the list

    _download(mirror, target, force=True)
    assert [rel for rel, _ in mirror.requests] == ["SHA256SUMS.txt"]  # every file verified locally


def test_resumes_a_partial_file_with_a_range_request(mirror, tmp_path):
    target = tmp_path / "circor"
    part = target / (WAV + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(mirror.files[WAV][:70_000])
    _download(mirror, target)
    _assert_complete(mirror, target)
    assert [rng for rel, rng in mirror.requests if rel == WAV] == ["bytes=70000-"]


def test_connection_dropped_mid_file_is_resumed(mirror, tmp_path):
    mirror.drop_after[WAV] = (50_000, 2)  # two answers cut short, then a whole one
    target = tmp_path / "circor"
    _download(mirror, target, retries=3)
    _assert_complete(mirror, target)
    assert [rng for rel, rng in mirror.requests if rel == WAV] == [None, "bytes=50000-", "bytes=100000-"]


def test_server_errors_are_retried(mirror, tmp_path):
    mirror.fail_with[WAV] = [503, 500]
    mirror.fail_with["SHA256SUMS.txt"] = [503]
    _download(mirror, tmp_path / "circor", retries=2)
    _assert_complete(mirror, tmp_path / "circor")


def test_server_ignoring_range_restarts_the_file(mirror, tmp_path):
    mirror.ignore_range = True
    target = tmp_path / "circor"
    part = target / (WAV + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(mirror.files[WAV][:70_000])
    _download(mirror, target)
    _assert_complete(mirror, target)


def test_stale_partial_file_gets_one_fresh_download(mirror, tmp_path):
    target = tmp_path / "circor"
    part = target / (WAV + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 70_000)  # not the start of the real file: the resumed result is corrupt
    _download(mirror, target)
    _assert_complete(mirror, target)
    assert [rng for rel, rng in mirror.requests if rel == WAV] == ["bytes=70000-", None]


def test_corrupted_file_is_refused_and_deleted(mirror, tmp_path):
    (mirror.root / WAV).write_bytes(b"corrupted on the server" * 100)
    target = tmp_path / "circor"
    with pytest.raises(DownloadError, match=r"(?s)1 of 5 file\(s\) failed.*1_AV\.wav: corrupted download refused"):
        _download(mirror, target)
    assert not (target / WAV).exists()
    assert not (target / (WAV + ".part")).exists()
    assert not (target / COMPLETED).exists()
    assert (target / "training_data.csv").read_bytes() == mirror.files["training_data.csv"]  # the rest is in


def test_existing_file_with_wrong_checksum_is_fetched_again(mirror, tmp_path):
    target = tmp_path / "circor"
    _download(mirror, target)
    (target / COMPLETED).unlink()
    (target / WAV).write_bytes(b"damaged")
    mirror.requests.clear()
    _download(mirror, target)
    _assert_complete(mirror, target)
    assert sorted(rel for rel, _ in mirror.requests) == ["SHA256SUMS.txt", WAV]


def test_gives_up_after_retries_and_keeps_the_part_to_resume(mirror, tmp_path):
    mirror.drop_after[WAV] = (10_000, 100)
    target = tmp_path / "circor"
    with pytest.raises(DownloadError, match=r"1_AV\.wav: download failed after 2 attempts.*re-run to resume"):
        _download(mirror, target, retries=1)
    assert (target / (WAV + ".part")).stat().st_size == 20_000
    mirror.drop_after.clear()
    _download(mirror, target)
    _assert_complete(mirror, target)


def test_missing_file_on_server_names_it(mirror, tmp_path):
    (mirror.root / "LICENSE.txt").unlink()
    with pytest.raises(DownloadError, match=r"LICENSE\.txt: HTTP 404"):
        _download(mirror, tmp_path / "circor")


def test_unreachable_server_is_a_download_error(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot fetch the checksum list"):
        download_circor(tmp_path / "circor", base_url=f"http://127.0.0.1:{port}/", progress=False, retries=0)


def test_parse_checksums_formats_and_errors():
    sha = hashlib.sha256(b"x").hexdigest()
    assert parse_checksums(f"{sha}  a/b.wav\n{sha.upper()} *c.txt\r\n\n", "S") == {"a/b.wav": sha, "c.txt": sha}
    for bad, message in [(f"{sha}  ../etc/passwd", "unsafe path"), (f"{sha}  /abs", "unsafe path"),
                         ("deadbeef  short.txt", "expected '<sha256> <path>'"), ("", "lists no files"),
                         (f"{sha}  a\n{'0' * 64}  a", "listed twice")]:
        with pytest.raises(DownloadError, match=message):
            parse_checksums(bad, "S")
    with pytest.raises(DownloadError, match=r"^S:2: "):
        parse_checksums(f"{sha}  ok\nnot a line", "S")


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()


@settings(max_examples=80, deadline=None, database=None)
@given(st.lists(st.one_of(st.text(max_size=90), st.builds(
    lambda sha, sep, path: f"{sha}{sep}{path}",
    st.text("0123456789abcdefABCDEF", min_size=63, max_size=65), st.sampled_from([" ", "  ", " *", "\t"]),
    st.text(min_size=0, max_size=20))), max_size=6))
def test_parse_checksums_raises_only_download_error(lines):
    try:
        sums = parse_checksums("\n".join(lines), "S")
    except DownloadError:
        return
    for rel, sha in sums.items():
        assert len(sha) == 64 and not rel.startswith("/") and ".." not in rel.split("/")
