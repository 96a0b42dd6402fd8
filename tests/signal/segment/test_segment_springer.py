"""The Springer baseline and pcg_segment: learns synthetic PCGs, ships a working default model."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.errors import ConfigError
from murmurlm.signal.segment import Segmentation, default_model_path, pcg_segment
from murmurlm.signal.segment.envelopes import FEATURE_NAMES, num_frames, spike_removal, springer_features
from murmurlm.signal.segment.hsmm import is_valid_sequence
from murmurlm.signal.segment.metrics import score_segmentation
from murmurlm.signal.segment.springer import load_springer, train_springer
from murmurlm.signal.synth import synth_pcg


@pytest.fixture(scope="module")
def synthetic_model():
    train = [synth_pcg(20.0, 4000, heart_rate=hr, noise=0.02, unannotated=2.0, seed=i)
             for i, hr in enumerate((60, 75, 90, 105, 120, 140))]
    return train_springer([(p.waveform, p.sampling_rate, p.segments) for p in train])


@pytest.mark.parametrize("bpm,seed", [(70, 11), (100, 12), (130, 13)])
def test_springer_learns_synthetic_pcgs(synthetic_model, bpm, seed):
    test = synth_pcg(20.0, 4000, heart_rate=bpm, noise=0.02, unannotated=2.0, seed=seed)
    seg = pcg_segment(test.waveform, 4000, method="springer", model=synthetic_model)
    assert is_valid_sequence(seg.frame_states)
    scores = score_segmentation(test.segments, seg.segments, 20.0).summary()
    assert scores["s1_f1"] >= 0.9 and scores["s2_f1"] >= 0.9, scores
    assert seg.heart_rate == pytest.approx(bpm, rel=0.1)


def test_saved_model_round_trips(synthetic_model, tmp_path):
    path = tmp_path / "m.npz"
    synthetic_model.save(path)
    loaded = load_springer(path)
    x = synth_pcg(8.0, 4000, seed=5).waveform
    a, b = synthetic_model.decode(x, 4000), loaded.decode(x, 4000)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert loaded.hsmm == synthetic_model.hsmm
    assert path.stat().st_size < 20_000


def test_default_model_ships_and_segments():
    assert default_model_path("springer").exists()
    assert default_model_path("springer").stat().st_size < 20_000
    pcg = synth_pcg(12.0, 4000, heart_rate=90, noise=0.01, seed=21)
    seg = pcg_segment(pcg.waveform, 4000)
    assert isinstance(seg, Segmentation) and seg.frame_rate == 50
    assert len(seg.frame_states) == num_frames(len(pcg.waveform), 4000)
    # segments tile the recording without gaps
    assert seg.segments[0].start == 0.0 and seg.segments[-1].end == pytest.approx(12.0)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(seg.segments, seg.segments[1:]))
    scores = score_segmentation(pcg.segments, seg.segments, 12.0).summary()
    assert scores["s1_f1"] > 0.8, scores


def test_other_sampling_rates_work():
    pcg = synth_pcg(10.0, 2000, heart_rate=80, seed=2)
    seg = pcg_segment(pcg.waveform, 2000)
    assert seg.segments[-1].end == pytest.approx(10.0)


def test_bad_inputs_are_clear_errors(tmp_path):
    x = np.zeros(8000, np.float32)
    with pytest.raises(ConfigError, match="springer, mamba"):
        pcg_segment(x, 4000, method="hmm")
    with pytest.raises(ValueError, match="at least 1 s"):
        pcg_segment(x[:1000], 4000)
    with pytest.raises(ValueError, match="1-D"):
        pcg_segment(np.zeros((2, 8000)), 4000)
    with pytest.raises(ValueError, match="NaN"):
        pcg_segment(np.full(8000, np.nan), 4000)
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ConfigError, match="missing"):
        load_springer(bad)
    with pytest.raises(ConfigError, match="unknown segmenter file type"):
        pcg_segment(x, 4000, model=tmp_path / "model.bin")


def test_features_and_spike_removal():
    x = synth_pcg(6.0, 4000, seed=0).waveform
    feats = springer_features(x, 4000)
    assert feats.shape == (300, len(FEATURE_NAMES)) and np.isfinite(feats).all()
    assert np.allclose(feats.mean(axis=0), 0, atol=1e-4) and np.allclose(feats.std(axis=0), 1, atol=1e-3)
    y = x.astype(np.float64).copy()
    y[10_000] = 40.0
    cleaned = spike_removal(y, 4000)
    assert abs(cleaned[10_000]) < 1.0 and np.abs(cleaned).max() < 5.0


@pytest.mark.circor
def test_default_model_on_real_recordings(circor_root):
    from murmurlm.data.circor import load_circor
    from murmurlm.data.splits import read_patient_list
    from murmurlm.signal.segment.evaluation import evaluate_segmenter

    from pathlib import Path
    val = Path(__file__).resolve().parents[3] / "splits" / "circor-dev" / "val.txt"
    ids = read_patient_list(val)[:4] if val.exists() else None
    data = load_circor(circor_root, patient_ids=ids) if ids else load_circor(circor_root)
    result = evaluate_segmenter("springer", data.recordings[:8], progress=False)
    summary = result.summary()
    assert summary["recordings"] > 0
    assert summary["s1_f1"] > 0.5 and summary["s2_f1"] > 0.5, summary
