"""HSMM decoding: never an invalid state order, durations normalised, heart rate recovered."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from murmurlm.signal.segment.hsmm import (
    HSMMParams, decode_posteriors, duration_tables, estimate_heart_rate, fit_hsmm_params,
    heart_rate_candidates, hsmm_decode, is_valid_sequence,
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    frames=st.integers(1, 400),
    heart_rate=st.floats(40.0, 200.0),
    systole_fraction=st.floats(0.1, 0.9),
    concentration=st.sampled_from([0.05, 0.3, 1.0, 5.0]),
    forbid_zero=st.booleans(),
)
def test_decoding_never_yields_an_invalid_order(seed, frames, heart_rate, systole_fraction, concentration, forbid_zero):
    rng = np.random.default_rng(seed)
    post = rng.dirichlet(np.full(5, concentration), size=frames)
    log_em = np.log(np.maximum(post, 1e-300))
    if forbid_zero:
        log_em[:, 0] = -np.inf
    cycle = 60.0 / heart_rate
    states = hsmm_decode(log_em, heart_rate, systole_fraction * cycle, 50, HSMMParams())
    assert states.shape == (frames,)
    assert is_valid_sequence(states)
    if forbid_zero:
        assert not np.any(states == 0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(60, 600))
def test_decode_posteriors_is_valid_too(seed, frames):
    post = np.random.default_rng(seed).dirichlet(np.ones(5), size=frames)
    states, hr, sys_int = decode_posteriors(post, np.full(5, 0.2), 50)
    assert is_valid_sequence(states) and 40 <= hr <= 200 and 0 < sys_int < 60 / hr


def test_is_valid_sequence_hand_cases():
    assert is_valid_sequence([1, 1, 2, 3, 4, 1, 2])
    assert is_valid_sequence([0, 0, 3, 4, 1, 0, 2, 3])      # 0 interrupts the cycle anywhere
    assert is_valid_sequence([])
    assert not is_valid_sequence([1, 3])                    # systole skipped
    assert not is_valid_sequence([2, 1])                    # backwards
    assert not is_valid_sequence([4, 2])
    assert not is_valid_sequence([1, 5])                    # unknown state


def test_decoding_recovers_a_noisy_but_clear_sequence():
    rng = np.random.default_rng(0)
    truth = np.concatenate([np.zeros(100, int), np.tile(np.repeat([1, 2, 3, 4], [6, 8, 5, 11]), 20), np.zeros(60, int)])
    post = np.full((len(truth), 5), 0.1)
    post[np.arange(len(truth)), truth] = 0.6
    post = np.stack([rng.dirichlet(row * 20) for row in post])   # noisy posteriors around the truth
    out = hsmm_decode(np.log(post), 100.0, 0.28, 50)
    assert (out == truth).mean() > 0.95


def test_duration_tables_are_distributions():
    logpmf, logsurv = duration_tables(100.0, 0.28, 50)
    pmf = np.exp(logpmf)
    assert np.allclose(pmf[:, 1:].sum(axis=0), 1.0)
    assert pmf[0, 0] == 1.0 and pmf[1:, 0].sum() == 0.0     # state 0 repeats by self-transition
    assert np.all(np.diff(np.exp(logsurv[:, 1:]), axis=0) <= 1e-12)  # survival never increases
    means = (np.arange(1, len(pmf) + 1)[:, None] * pmf).sum(axis=0) / 50
    cycle = means[1] + means[2] + means[3] + means[4]
    assert cycle == pytest.approx(0.6, abs=0.03)            # 100 bpm


def test_impossible_inputs_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        hsmm_decode(np.zeros((10, 4)), 80, 0.3, 50)
    with pytest.raises(ValueError, match="NaN"):
        hsmm_decode(np.full((10, 5), np.nan), 80, 0.3, 50)
    with pytest.raises(ValueError, match="heart_rate"):
        duration_tables(0.0, 0.3, 50)
    with pytest.raises(ValueError, match="positive"):
        HSMMParams(s1_mean=-1.0)


@pytest.mark.parametrize("bpm", [50, 80, 120, 170])
def test_heart_rate_from_envelope_and_posteriors(bpm):
    fr, cycle, width = 50, 60.0 / bpm, 0.03           # sounds ~0.12 s long (+-2 sd)
    t = np.arange(30 * fr) / fr
    since_s1 = t % cycle
    systolic = 0.35 * cycle

    def bump(centre):
        d = (since_s1 - centre + cycle / 2) % cycle - cycle / 2
        return np.exp(-0.5 * (d / width) ** 2)

    env = bump(0.05) + 0.6 * bump(0.05 + systolic)
    hr, _ = estimate_heart_rate(env, fr)
    assert hr == pytest.approx(bpm, rel=0.06)
    post = np.full((len(t), 5), 0.05)
    post[:, 1] += bump(0.05)
    post[:, 3] += bump(0.05 + systolic)
    post /= post.sum(axis=1, keepdims=True)
    (hr2, sys_int), *_ = heart_rate_candidates(post, fr)
    assert hr2 == pytest.approx(bpm, rel=0.06)
    assert sys_int == pytest.approx(systolic, abs=0.03)


def test_fit_hsmm_params_from_segments():
    from murmurlm.signal.synth import synth_pcg

    segs = [synth_pcg(10.0, 4000, heart_rate=80, unannotated=1.0, seed=i).segments for i in range(3)]
    p = fit_hsmm_params(segs)
    assert 0.09 < p.s1_mean < 0.14 and 0.07 < p.s2_mean < 0.12
    assert p.p_start_unannotated > 0.5
    with pytest.raises(ValueError, match="no annotated"):
        fit_hsmm_params([])
