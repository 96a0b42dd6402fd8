"""Class weights and crop bank (murmurlm.train.data): behaviour that the mutation benchmark
(benchmarks/mutation.py) showed untested. Expected weights are worked out by hand from the
docstring's formula: raw ``(N / (K n_c)) ** power`` clipped to ``max_weight``, absent classes
``max_weight``, then all scaled by ``N / sum_c(w_c n_c)``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from murmurlm.models.compact import IGNORE
from murmurlm.train.data import CropBank, class_weights


def test_default_power_is_a_square_root():
    # counts 3, 1 (N 4, K 2): raw sqrt(4/6), sqrt(4/2); scale 4 / (3 sqrt(2/3) + sqrt(2))
    a, b = math.sqrt(2 / 3), math.sqrt(2)
    scale = 4 / (3 * a + b)
    assert class_weights(np.array([0, 0, 0, 1]), 2) == pytest.approx([a * scale, b * scale], abs=1e-6)
    assert class_weights(np.array([0, 0, 0, 1]), 2, power=1.0) == pytest.approx([2 / 3, 2.0], abs=1e-6)


def test_default_clip_is_twenty():
    # counts 99, 1 (N 100): raw 100/198 and 50 -> clipped to 20; scale 100 / (99 * 100/198 + 20) = 100/70
    t = np.array([0] * 99 + [1])
    assert class_weights(t, 2, power=1.0) == pytest.approx([100 / 198 * 100 / 70, 20 * 100 / 70], abs=1e-6)
    assert class_weights(t, 2, power=1.0, max_weight=5.0) == pytest.approx(
        [100 / 198 * 100 / 55, 5 * 100 / 55], abs=1e-6)  # scale 100 / (50 + 5)


def test_an_absent_class_gets_max_weight_before_the_rescale():
    t = np.array([0, 0, 1, 1])  # class 2 (the last) never occurs
    # raw 4/6, 4/6, 20; scale 4 / (2 * 4/6 + 2 * 4/6) = 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by the zero count
        assert class_weights(t, 3, power=1.0) == pytest.approx([1.0, 1.0, 30.0])
    # power 0 (plain cross-entropy) for the classes present; the absent one still gets max_weight
    assert class_weights(t, 3, power=0.0) == [1.0, 1.0, 20.0]
    # IGNORE is not counted: counts 0, 2, 0 (N 2); raw 20, 2/6, 20; scale 2 / (2 * 1/3) = 3
    assert class_weights(np.array([1, 1, IGNORE]), 3, power=1.0) == pytest.approx([60.0, 1.0, 60.0])


def test_a_single_target():
    # counts 0, 1 (N 1): raw 20 (absent), 1/2; scale 1 / (1/2) = 2
    assert class_weights(np.array([1]), 2, power=1.0) == [40.0, 1.0]


def test_no_targets_give_unit_weights():
    assert class_weights(np.array([IGNORE, IGNORE]), 3) == [1.0, 1.0, 1.0]
    assert class_weights(np.array([], dtype=np.int64), 2, power=1.0) == [1.0, 1.0]


def features(*lengths, n_mels=3):
    """Recording r has value 100 r + frame index in every mel band."""
    return [np.tile(100 * r + np.arange(n, dtype=np.float32), (n_mels, 1)) for r, n in enumerate(lengths)]


def test_crop_bank_layout():
    bank = CropBank(features(5, 2, 4, n_mels=3))
    assert len(bank) == 3
    assert bank.n_mels == 3
    assert bank.frames.dtype == torch.float16 and tuple(bank.frames.shape) == (11, 3)
    assert bank.offsets.tolist() == [0, 5, 7] and bank.lengths.tolist() == [5, 2, 4]
    one = CropBank([np.zeros((7, 2), np.float32)])  # n_mels comes from the rows, not the frames
    assert one.n_mels == 7 and len(one) == 1
    with pytest.raises(ValueError, match=r"^CropBank needs at least one recording$"):
        CropBank([])


def test_crop_bank_stores_float16():
    x = np.full((2, 3), 0.1, dtype=np.float32)
    bank = CropBank([x])
    crop = bank.crops(torch.tensor([0]), 3, torch.Generator().manual_seed(0))
    assert crop.dtype == torch.float32
    assert torch.all(crop == float(np.float16(0.1)))
    assert float(np.float16(0.1)) != float(np.float32(0.1))


def test_full_length_crops_are_the_recordings():
    bank = CropBank(features(5, 2, 4))
    g = torch.Generator().manual_seed(0)
    for r, n in enumerate((5, 2, 4)):
        crop = bank.crops(torch.tensor([r]), n, g)
        assert crop.shape == (1, 3, n)
        assert crop[0, 0].tolist() == [100 * r + k for k in range(n)]


def test_crops_are_uniform_windows_over_every_start():
    bank = CropBank(features(10, 10))
    g = torch.Generator().manual_seed(1)
    starts = set()
    for _ in range(300):
        crop = bank.crops(torch.tensor([1, 0]), 5, g)
        assert crop.shape == (2, 3, 5)
        for row, r in zip(crop[:, 0], (1, 0)):
            s = int(row[0]) - 100 * r
            assert row.tolist() == [100 * r + s + k for k in range(5)]  # consecutive frames, no wrap
            starts.add(s)
    assert starts == set(range(6))  # 10 - 5 + 1 possible starts, each drawn


def test_a_short_recording_wraps_from_its_start():
    bank = CropBank(features(3, 8))
    g = torch.Generator().manual_seed(2)
    for _ in range(50):
        crop = bank.crops(torch.tensor([0]), 7, g)
        assert crop[0, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_crops_follow_the_generator():
    bank = CropBank(features(50, 40))
    idx = torch.tensor([0, 1, 0, 1])
    a = bank.crops(idx, 5, torch.Generator().manual_seed(3))
    torch.manual_seed(123)
    b = bank.crops(idx, 5, torch.Generator().manual_seed(3))
    torch.manual_seed(456)
    c = bank.crops(idx, 5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(a, c)
