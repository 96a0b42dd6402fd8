"""The SSAMBA-style Mamba segmenter: shapes, checkpoints, and a few training steps on synthetic PCGs."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from murmurlm.errors import ConfigError  # noqa: E402
from murmurlm.signal.segment import pcg_segment  # noqa: E402
from murmurlm.signal.segment.frames import segments_to_frames  # noqa: E402
from murmurlm.signal.segment.hsmm import fit_hsmm_params, is_valid_sequence  # noqa: E402
from murmurlm.signal.segment.mamba import (  # noqa: E402
    MambaSegmenter, MambaSegmenterConfig, load_mamba_segmenter, save_mamba_segmenter,
)
from murmurlm.signal.segment.metrics import score_segmentation  # noqa: E402
from murmurlm.signal.synth import synth_pcg  # noqa: E402

torch.set_num_threads(1)  # small tensors; threads only contend on a shared machine

TINY = dict(d_model=32, n_layers=2, head_dim=16, d_state=8, n_mels=16, dropout=0.0)


def test_features_have_one_patch_per_output_frame():
    model = MambaSegmenter(MambaSegmenterConfig(**TINY))
    for seconds in (1.0, 2.37, 5.0):
        x = np.zeros(int(seconds * 4000), dtype=np.float32)
        feats = model.features(x, 4000)
        assert feats.shape == (int(np.ceil(seconds * 50 - 1e-9)), 2 * 16)
        assert torch.isfinite(feats).all()  # silence must not give NaN after standardisation


def test_backward_mixer_sees_the_future():
    """Bidirectional: changing the end of the input changes the output at the start."""
    torch.manual_seed(0)
    model = MambaSegmenter(MambaSegmenterConfig(**TINY)).eval()
    x = torch.randn(1, 64, model.cfg.patch_dim)
    y = x.clone()
    y[:, -5:] += 3.0
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert not torch.allclose(a[:, :5], b[:, :5])


def test_config_rejects_impossible_combinations():
    with pytest.raises(ValueError, match="head_dim"):
        MambaSegmenterConfig(d_model=30, head_dim=16)
    with pytest.raises(ValueError, match="fmax"):
        MambaSegmenterConfig(fmax=3000.0)


def _train_tiny(steps: int, seed: int = 0) -> MambaSegmenter:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MambaSegmenter(MambaSegmenterConfig(**TINY))
    pcgs = [synth_pcg(12.0, 4000, heart_rate=float(hr), noise=0.02, unannotated=1.5, seed=i)
            for i, hr in enumerate((65, 80, 95, 110, 125, 140))]
    feats = [model.features(p.waveform, 4000) for p in pcgs]
    labels = [torch.from_numpy(segments_to_frames(p.segments, len(f), 50)) for p, f in zip(pcgs, feats)]
    counts = torch.bincount(torch.cat(labels), minlength=5).double()
    model.priors.copy_((counts / counts.sum()).clamp_min(1e-6).float())
    model.hsmm = fit_hsmm_params([p.segments for p in pcgs])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    crop = 200
    for _ in range(steps):
        idx = rng.integers(0, len(pcgs), 4)
        starts = [int(rng.integers(0, len(feats[i]) - crop)) for i in idx]
        x = torch.stack([feats[i][s:s + crop] for i, s in zip(idx, starts)])
        y = torch.stack([labels[i][s:s + crop] for i, s in zip(idx, starts)])
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model.eval()


@pytest.mark.slow
def test_a_few_steps_learn_synthetic_pcgs(tmp_path):
    test = synth_pcg(15.0, 4000, heart_rate=90.0, noise=0.02, unannotated=1.5, seed=99)
    untrained = pcg_segment(test.waveform, 4000, method="mamba", model=_train_tiny(steps=0))
    before = score_segmentation(test.segments, untrained.segments, 15.0).summary()
    model = _train_tiny(steps=40)
    seg = pcg_segment(test.waveform, 4000, method="mamba", model=model)
    assert is_valid_sequence(seg.frame_states)
    scores = score_segmentation(test.segments, seg.segments, 15.0).summary()
    assert scores["s1_f1"] >= 0.85 and scores["s2_f1"] >= 0.85, scores
    assert before["s1_f1"] < 0.5, before  # the HSMM alone does not do it: the network learned
    assert abs(seg.heart_rate - 90.0) < 10

    # a checkpoint describes itself and reproduces the predictions
    path = tmp_path / "seg.pt"
    save_mamba_segmenter(model, path, extra={"step": 40})
    loaded = load_mamba_segmenter(path)
    again = pcg_segment(test.waveform, 4000, method="mamba", model=loaded)
    assert np.array_equal(again.frame_states, seg.frame_states)
    assert loaded.hsmm == model.hsmm
    assert torch.equal(loaded.priors, model.priors)


def test_pretrain_loss_is_finite_and_trainable():
    torch.manual_seed(0)
    model = MambaSegmenter(MambaSegmenterConfig(**TINY))
    x = model.features(synth_pcg(4.0, 4000, seed=0).waveform, 4000)[None]
    gen = torch.Generator().manual_seed(0)
    loss = model.pretrain_loss(x, 0.4, gen)
    loss.backward()
    assert torch.isfinite(loss) and model.mask_token.grad is not None


def test_loading_a_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(ConfigError, match="not a murmurlm Mamba"):
        load_mamba_segmenter(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_mamba_segmenter(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="springer"):
        pcg_segment(np.zeros(8000, np.float32), 4000, method="springer",
                    model=MambaSegmenter(MambaSegmenterConfig(**TINY)))


def test_shipped_checkpoint_is_small_and_segments_synthetic_audio():
    from murmurlm.signal.segment import default_model_path

    path = default_model_path("mamba")
    assert path.stat().st_size <= 2_000_000
    pcg = synth_pcg(12.0, 4000, heart_rate=95.0, noise=0.01, seed=31)
    seg = pcg_segment(pcg.waveform, 4000, method="mamba")
    assert is_valid_sequence(seg.frame_states)
    assert score_segmentation(pcg.segments, seg.segments, 12.0).summary()["s1_f1"] > 0.9


def test_chunk_size_changes_the_cost_not_the_output(tmp_path):
    torch.manual_seed(3)
    model = MambaSegmenter(MambaSegmenterConfig(**TINY, chunk_size=64)).eval()
    pcg = synth_pcg(9.0, 4000, heart_rate=80.0, seed=5)   # 450 frames: several chunks of each size
    reference = model.posteriors(pcg.waveform, 4000)
    for chunk in (16, 37, 500):
        model.set_chunk_size(chunk)
        assert model.cfg.chunk_size == chunk
        assert np.allclose(model.posteriors(pcg.waveform, 4000), reference, atol=1e-5)
    save_mamba_segmenter(model, tmp_path / "seg.pt")
    assert load_mamba_segmenter(tmp_path / "seg.pt").cfg.chunk_size == 500
    loaded = load_mamba_segmenter(tmp_path / "seg.pt", chunk_size=8)
    assert all(b.forward_mixer.chunk_size == 8 == b.backward_mixer.chunk_size for b in loaded.blocks)
    assert np.allclose(loaded.posteriors(pcg.waveform, 4000), reference, atol=1e-5)
    with pytest.raises(ValueError, match="chunk_size"):
        model.set_chunk_size(0)


def test_four_state_decoding_never_outputs_state_zero():
    model = _train_tiny(steps=0)
    model.use_unannotated = False
    seg = pcg_segment(synth_pcg(6.0, 4000, unannotated=1.0, seed=3).waveform, 4000, method="mamba", model=model)
    assert seg.frame_states.min() >= 1 and is_valid_sequence(seg.frame_states)


@pytest.mark.circor
def test_shipped_checkpoint_on_real_recordings(circor_root):
    from pathlib import Path

    from murmurlm.data.circor import load_circor
    from murmurlm.data.splits import read_patient_list
    from murmurlm.signal.segment import default_model_path
    from murmurlm.signal.segment.evaluation import evaluate_segmenter

    val = Path(__file__).resolve().parents[3] / "splits" / "circor-dev" / "val.txt"
    data = load_circor(circor_root, patient_ids=read_patient_list(val)[:3])
    summary = evaluate_segmenter("mamba", data.recordings[:6], progress=False).summary()
    assert summary["recordings"] == 6
    assert summary["s1_f1"] > 0.8 and summary["s2_f1"] > 0.8, summary
