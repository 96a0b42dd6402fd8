"""Patient lists and training examples for the segmenters.

Patient lists and splits come from :mod:`murmurlm.data.splits` (``read_patient_list``,
``train_val_split``), as for every other recipe.

Examples
--------
>>> from murmurlm.data.circor import load_circor
>>> from murmurlm.signal.synth import write_synthetic_circor
>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> _ = write_synthetic_circor(root, num_patients=2, seed=0, duration=(2.0, 2.0))
>>> recs = annotated_recordings(load_circor(root))
>>> wave, rate, segments = next(iter_examples(recs))
>>> rate, len(wave) == 2 * rate, segments[0].state in (0, 1, 2, 3, 4)
(4000, True, True)
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from murmurlm.data.circor import CirCorDataset, Recording, Segment

log = logging.getLogger(__name__)


def annotated_recordings(dataset: CirCorDataset) -> list[Recording]:
    """Recordings that have a segmentation file."""
    return [r for r in dataset.recordings if r.segmentation_path is not None]


def iter_examples(recordings: Sequence[Recording]) -> Iterator[tuple[np.ndarray, int, list[Segment]]]:
    """``(waveform, sampling_rate, segments)`` per recording that has a segmentation."""
    for rec in recordings:
        if rec.segmentation_path is None:
            continue
        yield rec.load_audio(), rec.sampling_rate, rec.load_segments()
