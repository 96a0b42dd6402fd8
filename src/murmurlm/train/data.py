"""Recording-level training data for the compact model: targets, class weights, crops.

CirCor labels patients; the compact model sees one recording. :func:`recording_targets` gives
each recording targets derived from its patient's labels and ``Murmur locations``:

- Murmur: a Present patient's recording is Present where the murmur is heard (its location is in
  ``Murmur locations``; all locations when that list is empty) and Absent elsewhere; Unknown and
  Absent patients pass their label to every recording.
- Character features: a recording where the murmur is heard takes the patient's classes; an Absent
  recording takes ``"nan"`` (no murmur here), or is skipped (``IGNORE``) with
  ``character_targets="masked"``; an Unknown recording is always skipped (nothing is known).
- Outcome: the patient's, on every recording.

:class:`CropBank` holds every recording's log-mel frames in one contiguous float16 tensor and
cuts a batch of random fixed-length crops with one gather (no per-recording Python loop); a
recording shorter than the crop wraps around.

Examples
--------
>>> import numpy as np, torch
>>> bank = CropBank([np.zeros((4, 10), np.float16), np.ones((4, 3), np.float16)])
>>> x = bank.crops(torch.tensor([0, 1]), 5, torch.Generator().manual_seed(0))
>>> x.shape, float(x[1].mean())
(torch.Size([2, 4, 5]), 1.0)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from murmurlm.data import labels as L
from murmurlm.models.compact import IGNORE


def recording_targets(patient, recording, heads: Sequence[str], character_targets: str = "heard") -> dict[str, int]:
    """Class ids (or IGNORE) of one recording for each head in ``heads``."""
    if character_targets not in ("heard", "masked"):
        raise ValueError(f"character_targets must be 'heard' or 'masked', got {character_targets!r}")
    murmur = patient.labels[L.MURMUR.name]
    if murmur == "Present":
        heard = not patient.murmur_locations or recording.location in patient.murmur_locations
        rec_murmur = "Present" if heard else "Absent"
    else:
        rec_murmur = murmur
    out: dict[str, int] = {}
    for name in heads:
        f = L.feature(name)
        if name == L.MURMUR.name:
            out[name] = f.encode(rec_murmur)
        elif name in L.FEATURE_NAMES:
            if rec_murmur == "Present":
                out[name] = f.encode(patient.labels[name])
            elif rec_murmur == "Absent" and character_targets == "heard":
                out[name] = f.encode(L.NO_MURMUR)
            else:
                out[name] = IGNORE
        else:
            out[name] = f.encode(patient.labels[name])
    return out


def class_weights(targets: np.ndarray, num_classes: int, power: float = 0.5, max_weight: float = 20.0) -> list[float]:
    """Inverse-frequency class weights ``(N / (K n_c)) ** power``, clipped to ``max_weight``, then
    rescaled so that their frequency-weighted mean is 1 (the loss keeps its scale; the rescaling can
    lift a clipped weight above ``max_weight``).

    ``power=0`` gives plain cross-entropy, ``1`` full balancing. Classes absent from ``targets``
    get ``max_weight`` before the rescaling (they cannot contribute to the loss anyway).

    >>> class_weights(np.array([0, 0, 0, 1]), 2, power=1.0)
    [0.666667, 2.0]
    """
    t = targets[targets != IGNORE]
    counts = np.bincount(t, minlength=num_classes).astype(np.float64)
    if counts.sum() == 0:
        return [1.0] * num_classes
    present = counts > 0
    w = np.full(num_classes, max_weight)
    w[present] = np.minimum((counts.sum() / (num_classes * counts[present])) ** power, max_weight)
    w = w / (w[present] * counts[present]).sum() * counts.sum()
    return [round(float(v), 6) for v in w]


class CropBank:
    """All recordings' features in one ``(total_frames, n_mels)`` float16 tensor, cropped in batches."""

    def __init__(self, features: Sequence[np.ndarray]):
        import torch

        if not features:
            raise ValueError("CropBank needs at least one recording")
        lengths = np.array([f.shape[1] for f in features], dtype=np.int64)
        self.n_mels = int(features[0].shape[0])
        self.frames = torch.from_numpy(np.concatenate([np.asarray(f, np.float16).T for f in features], axis=0))
        self.lengths = torch.from_numpy(lengths)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]))

    def __len__(self) -> int:
        return int(self.lengths.numel())

    def crops(self, index, length: int, generator):
        """Random ``length``-frame crops of recordings ``index`` -> float32 ``(batch, n_mels, length)``."""
        import torch

        lens = self.lengths[index]
        span = (lens - length).clamp_min(0) + 1
        start = (torch.rand(len(index), generator=generator) * span).long()
        pos = (start[:, None] + torch.arange(length)[None, :]) % lens[:, None]
        rows = self.frames[self.offsets[index][:, None] + pos]  # (B, L, M)
        return rows.transpose(1, 2).float()
