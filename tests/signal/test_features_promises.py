"""docs/compact.md: features are cached as one float16 ``.npy`` per recording under
``$MURMURLM_CACHE/features/<config hash>/`` (``~/.cache/murmurlm`` without it); another front-end
config gets another folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from murmurlm.signal.features import FrontEnd, default_cache_dir, recording_features


def test_the_cache_lives_under_murmurlm_cache(monkeypatch, tmp_path, synthetic_circor):
    from murmurlm.data.circor import load_circor

    monkeypatch.delenv("MURMURLM_CACHE", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "murmurlm" / "features"
    monkeypatch.setenv("MURMURLM_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "features"

    [rec] = load_circor(synthetic_circor).recordings[:1]
    [first] = recording_features([rec], FrontEnd())  # cache_dir None: the default
    [folder] = (tmp_path / "c" / "features").iterdir()
    [npy] = folder.glob("*.npy")
    assert np.load(npy).dtype == np.float16 and np.array_equal(np.load(npy), first)
    recording_features([rec], FrontEnd(n_mels=32))
    assert len(list((tmp_path / "c" / "features").iterdir())) == 2  # one folder per front-end config
