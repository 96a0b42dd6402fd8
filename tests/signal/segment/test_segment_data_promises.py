"""docs/segmentation.md: without ``train_patients`` / ``val_patients``, ``segment train`` holds out a
seeded 80/20 patient-wise split (``murmurlm.signal.segment.data.seeded_split``)."""

from __future__ import annotations

import pytest

from murmurlm.signal.segment.data import seeded_split


def test_seeded_split_is_80_20_patient_wise_and_seeded():
    ids = [str(10000 + i) for i in range(50)]
    train, val = seeded_split(ids, seed=0)
    assert (len(train), len(val)) == (40, 10)
    assert set(train) | set(val) == set(ids) and not set(train) & set(val)
    assert seeded_split(list(reversed(ids)) + ids[:5], seed=0) == (train, val)  # order and repeats do not matter
    assert seeded_split(ids, seed=1) != (train, val)
    with pytest.raises(ValueError, match="val_fraction"):
        seeded_split(ids, val_fraction=1.0)
