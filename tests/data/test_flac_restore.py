"""The FLAC copy of circor-dev is the official download: a few recordings decoded with Debian's
``flac`` tool (the way ``restore.sh`` rebuilds the WAV files) match PhysioNet's SHA-256 sums, and the
reader gives the same samples from the FLAC and from the restored WAV."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pytest

from murmurlm.data.circor import load_circor, read_audio
from system_tools import need_tool

pytestmark = pytest.mark.circor

SAMPLE = ["13918_AV", "13918_MV"]  # the first patient of circor-dev, two of its sites


def official_sums(root) -> dict[str, str]:
    sums = {}
    for line in (root / "SHA256SUMS.txt").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name] = digest
    return sums


@pytest.mark.parametrize("stem", SAMPLE)
def test_flac_restores_the_official_wav_and_reads_the_same(circor_root, stem, tmp_path):
    flac = need_tool("flac")
    src = circor_root / "training_data" / f"{stem}.flac"
    wav = tmp_path / f"{stem}.wav"
    subprocess.run([flac, "-d", "-s", "-f", "-o", str(wav), str(src)], check=True)
    assert hashlib.sha256(wav.read_bytes()).hexdigest() == official_sums(circor_root)[f"training_data/{stem}.wav"]
    from_flac, from_wav = read_audio(src), read_audio(wav)
    assert from_flac.dtype == np.float32 and len(from_flac) > 4000
    assert np.array_equal(from_flac, from_wav)


def test_the_reader_finds_the_flac_recordings(circor_root):
    data = load_circor(circor_root, patient_ids=["13918"])
    assert sorted(r.audio_path.name for r in data.patients[0].recordings) >= [f"{s}.flac" for s in SAMPLE]
