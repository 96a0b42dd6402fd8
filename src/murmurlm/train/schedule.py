"""The learning-rate schedule of every training loop: linear warm-up, then cosine decay to zero.

:func:`lr_factor` is the schedule as a pure function of the step (0-based: the step about to be
taken); :func:`warmup_cosine` wraps it in a :class:`torch.optim.lr_scheduler.LambdaLR`, whose
learning rate is the optimiser's rate times the factor. The recipes differ in three details, kept
as options so that each reproduces its runs bit for bit:

- ``decay_from``: ``"warmup_end"`` (default) starts the cosine after the warm-up and spreads it over
  the remaining ``total_steps - warmup_steps`` steps (the segmenter, the audio-LM fine-tuning, the
  Whisper benchmark); ``"start"`` spreads it over all ``total_steps`` from step 0 and multiplies it
  by the warm-up ramp (the compact model: the first steps are already a little below the peak).
- ``peak_after_warmup``: False (default) ramps ``(step + 1) / warmup_steps``, so the last warm-up
  step is at the peak; True ramps ``(step + 1) / (warmup_steps + 1)``, so the peak is first reached
  on the step after the warm-up (the audio-LM fine-tuning).
- ``budget_fraction``: the share of a wall-clock budget already spent; the cosine then follows
  whichever of steps and time is further along, so the rate reaches zero when the budget ends even
  if the steps do not (the segmenter on a shared CPU). The schedule then depends on the clock.

``decay="constant"`` keeps the peak after the warm-up instead of decaying. Past ``total_steps`` the
factor stays at its end value (0 for the cosine).

Examples
--------
>>> [round(lr_factor(s, warmup_steps=2, total_steps=6), 3) for s in range(7)]
[0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
>>> [round(lr_factor(s, 2, 6, peak_after_warmup=True), 3) for s in range(3)]
[0.333, 0.667, 1.0]
>>> [round(lr_factor(s, 2, 6, decay_from="start"), 3) for s in range(4)]
[0.5, 0.933, 0.75, 0.5]
>>> import torch
>>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
>>> scheduler = warmup_cosine(optimizer, warmup_steps=2, total_steps=6)
>>> rates = []
>>> for _ in range(6):
...     rates.append(round(scheduler.get_last_lr()[0], 4))
...     optimizer.step(); scheduler.step()
>>> rates
[0.05, 0.1, 0.1, 0.0854, 0.05, 0.0146]
"""

from __future__ import annotations

import math

DECAYS = ("cosine", "constant")
DECAY_FROM = ("warmup_end", "start")


def lr_factor(step: int, warmup_steps: int, total_steps: int, *, decay: str = "cosine",
              decay_from: str = "warmup_end", peak_after_warmup: bool = False,
              budget_fraction: float | None = None, peak: float = 1.0) -> float:
    """The learning rate at ``step`` (0-based) as a multiple of ``peak``: a linear warm-up over the
    first ``warmup_steps`` steps, then a half cosine that ends at 0 at ``total_steps``.

    Parameters
    ----------
    step : int
        The optimiser step about to be taken, counted from 0.
    warmup_steps : int
        Steps of linear warm-up (0: none).
    total_steps : int
        The step at which the cosine reaches 0.
    decay : {"cosine", "constant"}
        What follows the warm-up.
    decay_from : {"warmup_end", "start"}
        Where the cosine begins: after the warm-up, over the remaining steps; or at step 0, over
        all ``total_steps``, multiplied by the warm-up ramp (see the module docstring).
    peak_after_warmup : bool
        Ramp by ``(step + 1) / (warmup_steps + 1)`` instead of ``(step + 1) / warmup_steps``: the
        peak is reached on the first step after the warm-up rather than on its last step.
    budget_fraction : float, optional
        The share of a time budget already spent (``decay_from="warmup_end"`` only): the cosine's
        progress is the larger of the steps' and this.
    peak : float
        The peak learning rate; 1.0 gives the factor :class:`~torch.optim.lr_scheduler.LambdaLR`
        multiplies the optimiser's rate by.

    Examples
    --------
    >>> lr_factor(0, 4, 100), lr_factor(3, 4, 100), lr_factor(52, 4, 100), lr_factor(100, 4, 100)
    (0.25, 1.0, 0.5, 0.0)
    >>> lr_factor(10, 4, 100, decay="constant")
    1.0
    >>> round(lr_factor(10, 4, 100, budget_fraction=0.5, peak=2e-3), 6)   # half the time spent
    0.001
    """
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {', '.join(DECAYS)}, got {decay!r}")
    if decay_from not in DECAY_FROM:
        raise ValueError(f"decay_from must be one of {', '.join(DECAY_FROM)}, got {decay_from!r}")
    ramp_steps = warmup_steps + 1 if peak_after_warmup else warmup_steps
    if decay_from == "start":
        if budget_fraction is not None:
            raise ValueError("budget_fraction needs decay_from='warmup_end'")
        warm = min(1.0, (step + 1) / max(1, ramp_steps))
        if decay == "constant":
            return peak * warm
        return peak * warm * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if step < warmup_steps:
        return peak * (step + 1) / ramp_steps
    if decay == "constant":
        return peak
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if budget_fraction is not None:
        progress = max(progress, budget_fraction)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int, *, decay: str = "cosine",
                  decay_from: str = "warmup_end", peak_after_warmup: bool = False):
    """A :class:`torch.optim.lr_scheduler.LambdaLR` over ``optimizer`` following :func:`lr_factor`:
    each parameter group's rate is its initial ``lr`` times the factor of the step. Call
    ``scheduler.step()`` after every ``optimizer.step()``; ``state_dict()`` holds the step count
    (the schedule itself is rebuilt from these arguments on resume).

    Examples
    --------
    >>> import torch
    >>> optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    >>> scheduler = warmup_cosine(optimizer, warmup_steps=10, total_steps=100)
    >>> scheduler.get_last_lr()                     # step 0: a tenth of the peak
    [0.0001]
    """
    from torch.optim.lr_scheduler import LambdaLR

    lr_factor(0, warmup_steps, total_steps, decay=decay, decay_from=decay_from,
              peak_after_warmup=peak_after_warmup)  # bad options fail here, not at the first step

    def factor(step: int) -> float:  # a plain function: LambdaLR's state_dict stores nothing of it
        return lr_factor(step, warmup_steps, total_steps, decay=decay, decay_from=decay_from,
                         peak_after_warmup=peak_after_warmup)

    return LambdaLR(optimizer, factor)
