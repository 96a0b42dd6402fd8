"""The one learning-rate schedule (murmurlm.train.schedule): hand-computed values, and bit-for-bit
equality with the four copies it replaced (the compact and segmenter recipes, the audio-LM
fine-tuning, the Whisper benchmark), kept here verbatim as references."""

from __future__ import annotations

import math

import pytest
import torch

from murmurlm.train.schedule import lr_factor, warmup_cosine

# ------------------------------------------------------------------------------------------------
# the replaced copies, as they were written


def old_compact(s, warmup, total_steps):  # recipes/train_compact.py (LambdaLR)
    return min(1.0, (s + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))


def old_finetune(step, warmup_steps, total_steps, schedule):  # recipes/finetune_audio_lm.py (LambdaLR)
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def old_whisper(step, warmup, steps):  # benchmarks/whisper_lm.py (LambdaLR)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))


def old_segmenter(step, warmup_steps, total, peak, by_time):  # recipes/train_segmenter.py (the lr itself)
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    by_steps = (step - warmup_steps) / max(1, total - warmup_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, max(by_steps, by_time))))


GRID = [(w, t) for w in (0, 1, 2, 3, 7, 10, 100) for t in (1, 2, 5, 13, 50, 150, 1000, 4000) if w <= t]


def steps(total):
    return sorted({*range(min(total + 3, 60)), *range(0, total + 3, max(1, total // 97)), total - 1, total, total + 5})


# ------------------------------------------------------------------------------------------------
# hand-computed values


def test_warmup_then_cosine_by_hand():
    # 4 warm-up steps, cosine over the 96 after them
    assert [lr_factor(s, 4, 100) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]  # start .. end of warm-up
    assert lr_factor(4, 4, 100) == 1.0  # the cosine starts at the peak
    assert lr_factor(52, 4, 100) == 0.5  # half way through the cosine: cos(pi / 2) = 0
    assert lr_factor(28, 4, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # a quarter: 0.854
    assert lr_factor(100, 4, 100) == 0.0 and lr_factor(130, 4, 100) == 0.0  # the end, and past it
    assert lr_factor(0, 0, 10) == 1.0  # no warm-up
    assert lr_factor(50, 4, 100, peak=2e-3) == pytest.approx(2e-3 * lr_factor(50, 4, 100), rel=1e-15)


def test_peak_after_warmup_by_hand():
    assert [lr_factor(s, 3, 10, peak_after_warmup=True) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(10, 3, 10, peak_after_warmup=True) == 0.0
    assert [lr_factor(s, 3, 10, decay="constant", peak_after_warmup=True) for s in (3, 10, 99)] == [1.0] * 3


def test_decay_from_start_by_hand():
    # the cosine over all 8 steps times the ramp (s + 1) / 2
    assert lr_factor(0, 2, 8, decay_from="start") == 0.5  # cos(0) = 1, half the ramp
    assert lr_factor(1, 2, 8, decay_from="start") == pytest.approx(0.5 * (1 + math.cos(math.pi / 8)))  # 0.962
    assert lr_factor(4, 2, 8, decay_from="start") == pytest.approx(0.5)  # half way
    assert lr_factor(8, 2, 8, decay_from="start") == 0.0 and lr_factor(9, 2, 8, decay_from="start") == 0.0
    assert lr_factor(0, 2, 8, decay_from="start", decay="constant") == 0.5
    assert lr_factor(5, 2, 8, decay_from="start", decay="constant") == 1.0


def test_the_time_budget_can_end_the_cosine_first():
    assert lr_factor(10, 4, 100, budget_fraction=0.5) == 0.5  # steps say 6 %, the clock says 50 %
    assert lr_factor(10, 4, 100, budget_fraction=1.2) == 0.0
    assert lr_factor(52, 4, 100, budget_fraction=0.0) == 0.5  # the steps are further along
    assert lr_factor(2, 4, 100, budget_fraction=0.9) == 0.75  # the warm-up does not look at the clock


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="decay must be one of cosine, constant"):
        lr_factor(0, 1, 10, decay="linear")
    with pytest.raises(ValueError, match="decay_from"):
        lr_factor(0, 1, 10, decay_from="end")
    with pytest.raises(ValueError, match="budget_fraction"):
        lr_factor(0, 1, 10, decay_from="start", budget_fraction=0.5)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="decay must be"):
        warmup_cosine(optimizer, 1, 10, decay="linear")


# ------------------------------------------------------------------------------------------------
# equal to the replaced copies, bit for bit


@pytest.mark.parametrize("warmup,total", GRID)
def test_equal_to_the_replaced_copies(warmup, total):
    for s in steps(total):
        assert lr_factor(s, warmup, total, decay_from="start") == old_compact(s, warmup, total), (s, "compact")
        for schedule in ("cosine", "constant"):
            assert lr_factor(s, warmup, total, decay=schedule, peak_after_warmup=True) == \
                old_finetune(s, warmup, total, schedule), (s, "finetune", schedule)
        if warmup >= 1:  # the benchmark's warm-up is max(1, steps // 20)
            assert lr_factor(s, warmup, total) == old_whisper(s, warmup, total), (s, "whisper")
        for peak in (2e-3, 1e-4, 0.1, 3e-3):
            for by_time in (0.0, 0.013, 0.37, 0.5, 0.999, 1.0, 1.7):
                assert lr_factor(s, warmup, total, peak=peak, budget_fraction=by_time) == \
                    old_segmenter(s, warmup, total, peak, by_time), (s, "segmenter", peak, by_time)


@pytest.mark.parametrize("warmup,total", [(0, 5), (1, 1), (3, 20), (17, 400)])
def test_the_lambdalr_follows_lr_factor(warmup, total):
    base = 2e-3
    optimizer = torch.optim.AdamW([torch.zeros(3, requires_grad=True)], lr=base)
    scheduler = warmup_cosine(optimizer, warmup, total, decay_from="start")
    old = torch.optim.lr_scheduler.LambdaLR(torch.optim.AdamW([torch.zeros(3, requires_grad=True)], lr=base),
                                            lambda s: old_compact(s, warmup, total))
    for s in range(total + 3):
        assert scheduler.get_last_lr() == [base * lr_factor(s, warmup, total, decay_from="start")]
        assert scheduler.get_last_lr() == old.get_last_lr(), s
        optimizer.step(), old.optimizer.step()
        scheduler.step(), old.step()
    # the state a resume restores is the step count alone, as with the old lambda
    assert scheduler.state_dict() == old.state_dict()
