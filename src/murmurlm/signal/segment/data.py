"""Patient lists and training examples for the segmenters.

The official split of circor-dev lives in ``splits/circor-dev/{train,val,test}.txt`` (one patient id a
line). Where a split file is absent, :func:`seeded_split` gives a reproducible patient-wise split:
patients sorted by id, shuffled with ``numpy.random.default_rng(seed)``, the first
``val_fraction`` of them for validation.

Examples
--------
>>> train, val = seeded_split([str(i) for i in range(10)], val_fraction=0.2, seed=0)
>>> len(train), len(val), sorted(set(train) & set(val))
(8, 2, [])
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from murmurlm.data.circor import CirCorDataset, Recording, Segment
from murmurlm.data.splits import read_patient_list  # noqa: F401  (re-exported for the recipe)

log = logging.getLogger(__name__)


def seeded_split(patient_ids: Sequence[str], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, validation)`` patient ids: sorted, shuffled with ``seed``, the first fraction held out."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be within (0, 1), got {val_fraction!r}")
    ids = sorted(set(patient_ids), key=lambda s: (len(s), s))
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = max(1, int(round(val_fraction * len(ids))))
    val = sorted((ids[i] for i in order[:n_val]), key=lambda s: (len(s), s))
    train = sorted((ids[i] for i in order[n_val:]), key=lambda s: (len(s), s))
    return train, val


def annotated_recordings(dataset: CirCorDataset) -> list[Recording]:
    """Recordings that have a segmentation file."""
    return [r for r in dataset.recordings if r.segmentation_path is not None]


def iter_examples(recordings: Sequence[Recording]) -> Iterator[tuple[np.ndarray, int, list[Segment]]]:
    """``(waveform, sampling_rate, segments)`` per recording that has a segmentation."""
    for rec in recordings:
        if rec.segmentation_path is None:
            continue
        yield rec.load_audio(), rec.sampling_rate, rec.load_segments()
