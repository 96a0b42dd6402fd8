"""Noise augmentation (train/augment.py): the SNR asked for, the noise source, reproducibility."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("audiomentations", reason="noise augmentation needs the augment extra (audiomentations)")

from murmurlm.errors import ConfigError  # noqa: E402
from murmurlm.train.augment import NoiseAugment, NoiseAugmenter, copy_seed  # noqa: E402

RATE = 4000


def heart_like(seconds: float = 6.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    bursts = (np.sin(2 * np.pi * 1.3 * t) > 0.95).astype(np.float64)
    return (0.3 * bursts * np.sin(2 * np.pi * 60 * t) + 0.01 * np.sin(2 * np.pi * 7 * t)).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(clean.astype(np.float64) ** 2)) /
                               np.sqrt(np.mean((noisy.astype(np.float64) - clean) ** 2))))


@pytest.mark.parametrize("snr", [0.0, 5.0, 10.0, 20.0])
@pytest.mark.parametrize("ambient", [0.0, 1.0])
def test_noise_is_added_at_the_asked_snr(tmp_path, snr, ambient):
    bank = [np.random.default_rng(1).normal(size=3 * RATE).astype(np.float32)]
    aug = NoiseAugmenter(NoiseAugment(copies=1, min_snr_db=snr, max_snr_db=snr, ambient=ambient), bank, RATE, tmp_path)
    x = heart_like()
    y = aug(x, RATE, seed=3)
    assert y.shape == x.shape and y.dtype == np.float32
    assert snr_db(x, y) == pytest.approx(snr, abs=0.3)


def test_ambient_noise_comes_from_the_bank(tmp_path):
    # the bank holds a 333 Hz tone only: with ambient=1 the added noise is that tone, with 0 it is broadband
    t = np.arange(2 * RATE) / RATE
    bank = [np.sin(2 * np.pi * 333 * t).astype(np.float32)]
    x = heart_like()
    for ambient, tonal in ((1.0, True), (0.0, False)):
        aug = NoiseAugmenter(NoiseAugment(copies=1, min_snr_db=0, max_snr_db=0, ambient=ambient), bank, RATE,
                             tmp_path / str(ambient))
        noise = aug(x, RATE, seed=5) - x
        spectrum = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
        near = spectrum[(freqs > 320) & (freqs < 346)].sum() / spectrum.sum()
        assert bool(near > 0.9) is tonal, (ambient, near)


def test_copies_are_reproducible_and_leave_the_global_random_state_alone(tmp_path):
    aug = NoiseAugmenter(NoiseAugment(copies=2, min_snr_db=0, max_snr_db=20), [], RATE, tmp_path)
    x = heart_like()
    random.seed(11)
    np.random.seed(11)
    before = (random.random(), np.random.rand())
    random.seed(11)
    np.random.seed(11)
    a = aug(x, RATE, seed=copy_seed("1_AV", 0, 0))
    assert (random.random(), np.random.rand()) == before  # the caller's streams go on untouched
    assert np.array_equal(a, aug(x, RATE, seed=copy_seed("1_AV", 0, 0)))
    assert not np.array_equal(a, aug(x, RATE, seed=copy_seed("1_AV", 1, 0)))
    assert copy_seed("1_AV", 0, 0) != copy_seed("1_AV", 0, 1) != copy_seed("2_AV", 0, 0)


def test_silence_stays_silent(tmp_path):
    aug = NoiseAugmenter(NoiseAugment(copies=1), [], RATE, tmp_path)
    assert not np.any(aug(np.zeros(RATE, np.float32), RATE, seed=0))


@pytest.mark.parametrize("bad", [dict(copies=-1), dict(p=1.5), dict(ambient=-0.1), dict(min_snr_db=10, max_snr_db=5)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        NoiseAugment(**bad)
