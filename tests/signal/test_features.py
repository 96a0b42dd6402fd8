"""The log-mel front end against librosa, batching, the feature cache, windows."""

from __future__ import annotations

import os

import numpy as np
import pytest

from murmurlm.signal.features import (LOG_EPS, FeatureCache, FrontEnd, compute_features, frame_windows, log_mel,
                                      mel_filterbank, recording_features)

import librosa  # the dev extra: the reference implementation


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [(2000, 256, 64, 25.0, 800.0), (4000, 512, 40, 0.0, 2000.0),
                                                          (16000, 400, 80, 20.0, 7600.0)])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("fe", [FrontEnd(), FrontEnd(sample_rate=4000, n_fft=512, win_length=200, hop_length=80,
                                                     n_mels=40, fmin=20.0, fmax=1000.0)])
def test_log_mel_matches_librosa_melspectrogram(fe):
    import torch

    x = np.random.default_rng(0).standard_normal(fe.sample_rate * 3).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=x, sr=fe.sample_rate, n_fft=fe.n_fft, hop_length=fe.hop_length,
                                         win_length=fe.win_length, window="hann", center=True, pad_mode="constant",
                                         power=2.0, n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax)
    ours = log_mel(torch.from_numpy(x), fe).numpy()
    assert ours.shape == ref.shape == (fe.n_mels, fe.num_frames(3.0))
    np.testing.assert_allclose(ours, np.log(ref + LOG_EPS), atol=1e-3)


def test_batched_features_equal_one_at_a_time():
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (4000, 9000, 12345)]
    fe = FrontEnd()
    together = compute_features(waves, [4000] * 3, fe, batch_size=3)
    for w, t in zip(waves, together):
        alone = compute_features([w], [4000], fe)[0]
        assert t.shape == alone.shape == (64, len(w) // 2 // fe.hop_length + 1)
        np.testing.assert_allclose(t, alone, atol=1e-4)


def test_front_end_resamples_any_rate_to_the_same_features():
    fe = FrontEnd()
    t = np.arange(4000 * 2) / 4000
    x4 = np.sin(2 * np.pi * 120 * t).astype(np.float32)
    x8 = np.sin(2 * np.pi * 120 * np.arange(8000 * 2) / 8000).astype(np.float32)
    a, b = fe(x4, 4000), fe(x8, 8000)
    assert a.shape == b.shape
    assert np.abs(a - b)[:, 5:-5].mean() < 0.2


def test_front_end_rejects_impossible_settings():
    with pytest.raises(ValueError, match="preprocess"):
        FrontEnd(preprocess="magic")
    with pytest.raises(ValueError, match="fmax"):
        FrontEnd(fmax=5000.0)


def test_frame_windows_cover_the_recording():
    f = np.arange(50.0)[None, :].repeat(2, axis=0)
    w = frame_windows(f, 20, 20)
    assert w.shape == (3, 2, 20)
    assert w[-1, 0, -1] == 49.0  # the last window ends at the last frame
    assert frame_windows(f[:, :7], 20, 20).shape == (1, 2, 20)  # short: one wrapped window


def test_cache_serves_second_read_without_audio_and_notices_edits(synthetic_circor, tmp_path, monkeypatch):
    from murmurlm.data.circor import Recording, load_circor

    recs = load_circor(synthetic_circor).recordings[:3]
    fe = FrontEnd()
    first = recording_features(recs, fe, cache_dir=tmp_path)
    assert all(f.dtype == np.float16 and f.shape[0] == 64 for f in first)

    def no_audio(self):
        raise AssertionError("the cache should have served this")

    monkeypatch.setattr(Recording, "load_audio", no_audio)
    second = recording_features(recs, fe, cache_dir=tmp_path)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # another front end is another cache key
    assert FeatureCache(tmp_path, FrontEnd(n_mels=32, fmax=800.0)).get(recs[0].audio_path) is None
    # an edited file (new mtime) is not served from the cache
    st = os.stat(recs[0].audio_path)
    os.utime(recs[0].audio_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert FeatureCache(tmp_path, fe).get(recs[0].audio_path) is None


def test_unreadable_recording_is_reported_not_fatal_with_on_error(synthetic_circor, tmp_path):
    import shutil

    from murmurlm.data.circor import load_circor

    src = tmp_path / "data"
    shutil.copytree(synthetic_circor, src)
    recs = load_circor(src).recordings[:2]
    recs[0].audio_path.write_bytes(b"not audio at all")
    seen = []
    feats = recording_features(recs, FrontEnd(), use_cache=False, on_error=lambda r, e: seen.append((r.name, str(e))))
    assert feats[0] is None and feats[1] is not None
    assert seen and seen[0][0] == recs[0].name and "cannot decode" in seen[0][1]


@pytest.mark.parametrize("segmenter", ["springer", "mamba"])
def test_predicted_preprocess_crops_to_the_segmenters_clean_stretch(segmenter):
    from murmurlm.signal.segment import pcg_segment
    from murmurlm.signal.crop import crop_annotated
    from murmurlm.signal.synth import synth_pcg

    pcg = synth_pcg(12.0, 4000, heart_rate=75, noise=0.02, seed=4)
    front_end = FrontEnd(preprocess="predicted", segmenter=segmenter)
    cleaned = front_end.clean(pcg.waveform, 4000)
    whole = FrontEnd().clean(pcg.waveform, 4000)
    expected = crop_annotated(pcg.waveform, 4000, pcg_segment(pcg.waveform, 4000, method=segmenter).segments)
    # the model sees exactly the stretch the segmenter marks clean (resampled to 2 kHz), never more than the whole
    assert len(cleaned) == pytest.approx(len(expected) / 2, abs=2)
    assert 0 < len(cleaned) <= len(whole)
    assert front_end.key() != FrontEnd(preprocess="annotated").key()  # cached separately


def test_front_end_rejects_unknown_preprocess_and_segmenter():
    with pytest.raises(ValueError, match="preprocess must be one of"):
        FrontEnd(preprocess="oracle")
    with pytest.raises(ValueError, match="segmenter"):
        FrontEnd(preprocess="predicted", segmenter="hmm")
