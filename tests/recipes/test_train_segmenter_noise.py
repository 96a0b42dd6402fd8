"""The segmenter recipe's noise augmentation (configs/segment/mamba-noise.yaml): noisy copies of the
training recordings feed pre-training and training; the Springer segmenter refuses it."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("audiomentations", reason="noise augmentation needs the augment extra (audiomentations)")

from murmurlm.recipes import train_segmenter  # noqa: E402
from murmurlm.signal.synth import write_synthetic_circor  # noqa: E402

TINY = ["model.d_model=16", "model.n_layers=1", "model.head_dim=8", "batch_size=2", "crop_frames=64",
        "max_steps=4", "pretrain_steps=2", "eval_every=2", "log_every=1", "max_minutes=3", "warmup_steps=1",
        "train_patients=null", "val_patients=null", "val_fraction=0.34"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_noise")
    write_synthetic_circor(root, num_patients=6, seed=3, locations=("MV",), duration=(4.0, 5.0))
    return root


def test_noisy_copies_match_the_clean_features_and_differ_from_them(synthetic, tmp_path):
    cfg = train_segmenter.load_recipe_config("segment/mamba-noise", [*TINY, f"data={synthetic}", f"out={tmp_path}"])
    assert cfg.noise.copies == 2
    train, _ = train_segmenter.split_recordings(cfg)
    from murmurlm.signal.segment.mamba import MambaSegmenter

    model = MambaSegmenter(cfg.model)
    copies = train_segmenter.noisy_features(model, train, cfg)
    assert len(copies) == 2 and all(len(c) == len(train) for c in copies)
    for i, rec in enumerate(train):
        clean = model.features(rec.load_audio(), rec.sampling_rate)
        assert copies[0][i].shape == copies[1][i].shape == clean.shape  # the clean labels fit frame for frame
        assert not np.allclose(copies[0][i].float().numpy(), clean.numpy(), atol=1e-2)
        assert not np.array_equal(copies[0][i].numpy(), copies[1][i].numpy())


def test_a_noise_augmented_segmenter_trains_and_keeps_its_config(synthetic, tmp_path):
    cfg = train_segmenter.load_recipe_config("segment/mamba-noise", TINY)
    scores = train_segmenter.run(cfg, data=synthetic, out=tmp_path, progress=False)
    assert (tmp_path / "model.pt").exists() and scores["pretrain_steps"] == 2 and scores["steps"] == 4
    saved = train_segmenter.load_recipe_config(tmp_path / "config.yaml")
    assert saved.noise.copies == 2
    assert json.loads((tmp_path / "metrics.json").read_text())["method"] == "mamba"


def test_springer_refuses_noise_augmentation():
    with pytest.raises(ValueError, match="noise augmentation"):
        train_segmenter.load_recipe_config("segment/mamba", ["method=springer", "noise.copies=1"])
