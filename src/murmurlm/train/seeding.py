"""Seeding and determinism for CPU training.

:func:`set_seed` seeds Python, numpy and torch; :func:`set_deterministic` asks torch for
deterministic kernels. The compact recipe re-seeds at the start of every epoch from
``(seed, epoch)`` (:func:`epoch_seed`), so an epoch's batches, crops and dropout masks do not depend
on what ran before it: a run resumed from the checkpoint of epoch ``k`` replays epoch ``k + 1``
exactly as the uninterrupted run did.

Examples
--------
>>> import torch
>>> set_seed(3); a = torch.rand(2)
>>> set_seed(3); b = torch.rand(2)
>>> bool((a == b).all())
True
>>> epoch_seed(0, 1) != epoch_seed(0, 2)
True
"""

from __future__ import annotations

import random

import numpy as np


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Deterministic torch kernels (warn, rather than fail, where none exists)."""
    import torch

    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = False


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for epoch ``epoch`` of a run seeded ``seed`` (stable, well mixed)."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])
