"""Duration-dependent decoding of heart-cycle states (hidden semi-Markov model, Viterbi).

States follow CirCor: 0 unannotated/noisy, 1 S1, 2 systole, 3 S2, 4 diastole. The annotated states
cycle S1 -> systole -> S2 -> diastole -> S1; state 0 (a stretch the annotators left out) may
interrupt the cycle anywhere and the cycle may resume at any state after it, as in CirCor's files.
A decoded sequence therefore never contains an annotated state followed directly by anything but its
successor or 0 (:func:`is_valid_sequence`).

Durations follow Springer, Tarassenko and Clifford (IEEE TBME 2016): Gaussian durations of S1 and S2
(means and deviations fitted on training annotations), systole = systolic interval - S1, diastole =
cycle - systolic interval - S2, where the heart rate and the systolic interval are estimated per
recording from the autocorrelation of an envelope (Schmidt et al. 2010; :func:`estimate_heart_rate`).
State 0 has a geometric duration (self-transition), so stretches of any length cost no extra work.

The Viterbi recursion loops over frames only; each step is vectorised with numpy over all states and
durations, so a minute of audio at 50 frames per second takes a few tens of milliseconds.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> probs = rng.dirichlet(np.ones(5), size=300)
>>> states = hsmm_decode(np.log(probs), heart_rate=100.0, systolic_interval=0.25, frame_rate=50)
>>> is_valid_sequence(states)
True
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Sequence

import numpy as np
from scipy import signal as sps
from scipy.stats import norm

log = logging.getLogger(__name__)

NUM_STATES = 5
NEXT_STATE = {1: 2, 2: 3, 3: 4, 4: 1}
"""The successor of each annotated state in the cardiac cycle."""


@dataclass
class HSMMParams:
    """Duration and transition parameters of the decoder (seconds and per-segment probabilities).

    Defaults are the statistics of circor-dev's annotations; :func:`fit_hsmm_params` re-estimates them.
    """

    s1_mean: float = 0.118
    s1_sd: float = 0.023
    s2_mean: float = 0.105
    s2_sd: float = 0.023
    systole_sd: float = 0.025        # Springer: 25 ms
    diastole_sd_rel: float = 0.07    # Springer: sd = 7 % of the mean diastole + 6 ms
    diastole_sd_abs: float = 0.006
    min_duration: float = 0.02       # no segment shorter than one 20 ms frame
    p_leave_cycle: float = 0.0125    # P(an annotated segment is followed by state 0)
    mean_unannotated: float = 5.7    # mean length of a state-0 stretch (s)
    p_start_unannotated: float = 0.5  # P(recording starts in state 0)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"HSMMParams.{f.name} must be a positive number, got {v!r}")
        for name in ("p_leave_cycle", "p_start_unannotated"):
            if getattr(self, name) >= 1:
                raise ValueError(f"HSMMParams.{name} must be below 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def fit_hsmm_params(segment_lists: Iterable[Sequence]) -> HSMMParams:
    """Estimate :class:`HSMMParams` from annotated recordings (lists of ``Segment``)."""
    durations: dict[int, list[float]] = {s: [] for s in range(NUM_STATES)}
    leave = annotated = starts0 = recordings = 0
    for segs in segment_lists:
        segs = list(segs)
        if not segs:
            continue
        recordings += 1
        starts0 += segs[0].state == 0
        for i, seg in enumerate(segs):
            durations[seg.state].append(seg.end - seg.start)
            if seg.state != 0 and i + 1 < len(segs):
                annotated += 1
                leave += segs[i + 1].state == 0
    if recordings == 0 or not durations[1] or not durations[3]:
        raise ValueError("fit_hsmm_params: no annotated S1/S2 segments to fit")
    d = {s: np.asarray(v) for s, v in durations.items()}
    params = HSMMParams(
        s1_mean=float(np.median(d[1])), s1_sd=float(max(d[1].std(), 0.01)),
        s2_mean=float(np.median(d[3])), s2_sd=float(max(d[3].std(), 0.01)),
        p_leave_cycle=float(np.clip((leave + 1) / (annotated + 2), 1e-4, 0.5)),
        mean_unannotated=float(d[0].mean()) if len(d[0]) else HSMMParams.mean_unannotated,
        p_start_unannotated=float(np.clip((starts0 + 1) / (recordings + 2), 0.01, 0.99)),
    )
    return params


# --------------------------------------------------------------------------------------------
# heart rate and systolic interval


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    n = len(x)
    ac = sps.fftconvolve(x, x[::-1], mode="full")[n - 1:]
    return ac / ac[0] if ac[0] > 0 else ac


def estimate_heart_rate(envelope: np.ndarray, frame_rate: float, min_bpm: float = 40.0,
                        max_bpm: float = 200.0, min_systole: float = 0.15) -> tuple[float, float]:
    """Heart rate (bpm) and systolic interval (s) from an envelope's autocorrelation.

    As Springer's ``getHeartRateSchmidt``: the cycle is the lag of the autocorrelation's highest peak
    between ``60 / max_bpm`` and ``60 / min_bpm`` seconds; the systolic interval (S1 start to S2 start)
    is the lag of the highest autocorrelation between ``min_systole`` and half the cycle. Ranges are
    widened from Springer's adult 30-120 bpm to CirCor's children.

    Examples
    --------
    >>> import numpy as np
    >>> fr = 50
    >>> env = np.zeros(20 * fr)
    >>> for start in np.arange(0, 19, 0.6):               # 100 bpm, S2 0.26 s after S1
    ...     env[round(start * fr)] = 1.0
    ...     env[round((start + 0.26) * fr)] = 0.6
    >>> hr, sys_int = estimate_heart_rate(env, fr)
    >>> round(hr), round(sys_int, 2)
    (100, 0.26)
    """
    env = np.asarray(envelope, dtype=np.float64)
    lo = int(math.floor(60.0 / max_bpm * frame_rate))
    hi = int(math.ceil(60.0 / min_bpm * frame_rate))
    if len(env) < lo + 3:
        raise ValueError(f"estimate_heart_rate: {len(env) / frame_rate:.2f} s of envelope is too short")
    ac = _autocorrelation(env)
    hi = min(hi, len(ac) - 1)
    lag = _highest_peak(ac, lo, hi)
    cycle = lag / frame_rate
    s_lo = int(round(min_systole * frame_rate))
    s_hi = max(s_lo + 1, int(round(lag / 2)))
    sys_lag = _highest_peak(ac, s_lo, s_hi)
    return 60.0 / cycle, sys_lag / frame_rate


SUBHARMONIC_RATIO = 0.9
"""A shorter lag whose autocorrelation peak reaches this fraction of the highest peak wins: a signal
periodic at T also peaks at 2T, 3T, and a period that is not a whole number of frames splits its first
peak while a multiple may land exactly on a frame."""


def _ranked_peaks(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Local maxima of ``x`` within ``[lo, hi]``, best first: the shortest lag within
    :data:`SUBHARMONIC_RATIO` of the highest peak, then the others by height. A maximum at the range's
    edge only counts when it is a true peak (the smooth decay of an autocorrelation from lag 0 would
    otherwise put the "maximum" at ``lo``); without any peak, the argmax of the range."""
    peaks, _ = sps.find_peaks(x[: hi + 2])
    peaks = peaks[(peaks >= lo) & (peaks <= hi)]
    if len(peaks) == 0:
        return np.array([lo + int(np.argmax(x[lo:hi + 1]))])
    best = x[peaks].max()
    # Within SUBHARMONIC_RATIO of the best peak. In noise every peak of the autocorrelation can be
    # negative, where best * ratio lies above best and no peak would qualify: then the best alone.
    strong = peaks[x[peaks] >= SUBHARMONIC_RATIO * best] if best > 0 else peaks[x[peaks] == best]
    first = int(strong.min())
    rest = peaks[peaks != first]
    return np.concatenate([[first], rest[np.argsort(-x[rest])]]).astype(int)


def _highest_peak(x: np.ndarray, lo: int, hi: int) -> int:
    return int(_ranked_peaks(x, lo, hi)[0])


def heart_rate_candidates(posteriors: np.ndarray, frame_rate: float, max_candidates: int = 3,
                          min_bpm: float = 40.0, max_bpm: float = 200.0) -> list[tuple[float, float]]:
    """Candidate ``(heart rate bpm, systolic interval s)`` pairs from per-frame posteriors ``(T, 5)``,
    best first: cycles from the highest peaks of the autocorrelation of P(S1) (S1 recurs once per
    cycle, so half-cycle confusions are rarer than with an envelope), each with the systolic interval
    maximising the cross-correlation of P(S1) with the later P(S2) below 0.7 cycle."""
    p = np.asarray(posteriors, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != NUM_STATES:
        raise ValueError(f"heart_rate_candidates: posteriors must have shape (T, {NUM_STATES}), got {p.shape}")
    lo = int(math.floor(60.0 / max_bpm * frame_rate))
    hi = min(int(math.ceil(60.0 / min_bpm * frame_rate)), len(p) - 2)
    if hi <= lo:
        raise ValueError(f"heart_rate_candidates: {len(p) / frame_rate:.2f} s is too short")
    ac = _autocorrelation(p[:, 1])
    peaks = _ranked_peaks(ac, lo, hi)[:max_candidates]
    s1, s2 = p[:, 1] - p[:, 1].mean(), p[:, 3] - p[:, 3].mean()
    n = len(s1)
    xc = sps.fftconvolve(s2, s1[::-1], mode="full")[n - 1:]  # xc[k] = sum_t s1[t] s2[t + k]
    out = []
    for lag in peaks.tolist():
        k_lo, k_hi = max(1, int(round(0.08 * frame_rate))), max(2, int(round(0.7 * lag)))
        sys_lag = k_lo + int(np.argmax(xc[k_lo:k_hi + 1]))
        out.append((60.0 * frame_rate / lag, sys_lag / frame_rate))
    return out


def estimate_from_posteriors(posteriors: np.ndarray, frame_rate: float, min_bpm: float = 40.0,
                             max_bpm: float = 200.0) -> tuple[float, float]:
    """The best of :func:`heart_rate_candidates`: heart rate (bpm) and systolic interval (s)."""
    return heart_rate_candidates(posteriors, frame_rate, 1, min_bpm, max_bpm)[0]


def decode_posteriors(posteriors: np.ndarray, priors: np.ndarray, frame_rate: float,
                      params: HSMMParams | None = None, max_candidates: int = 3,
                      allow_unannotated: bool = True) -> tuple[np.ndarray, float, float]:
    """HSMM-decode per-frame posteriors ``(T, 5)``: emissions ``log P(state | frame) - log P(state)``;
    each candidate heart rate of :func:`heart_rate_candidates` is decoded and the one whose best path
    scores highest wins (a wrong rate forces sounds into wrong places, which costs likelihood).
    Returns ``(states, heart_rate, systolic_interval)``."""
    post = np.asarray(posteriors, dtype=np.float64)
    priors = np.asarray(priors, dtype=np.float64)
    # a floor on the priors keeps a rare state's emissions from exploding; a state never seen in
    # training (prior ~0, e.g. state 0 of data annotated end to end) is not decoded at all
    log_em = np.log(np.maximum(post, 1e-8)) - np.log(np.maximum(priors, 1e-3))
    log_em[:, priors < 1e-4] = -np.inf
    if not allow_unannotated:
        log_em[:, 0] = -np.inf
    p = params or HSMMParams()
    candidates = heart_rate_candidates(post, frame_rate, max_candidates)
    tables = [duration_tables(hr, sys_int, frame_rate, p) for hr, sys_int in candidates]
    init = np.log(np.array([p.p_start_unannotated] + [(1 - p.p_start_unannotated) / 4] * 4))
    B = np.maximum(log_em, -1e4)
    decoded = _viterbi(B, tables, log_transitions(p, frame_rate), init)
    best = int(np.argmax([score for _, score in decoded]))
    return decoded[best][0], candidates[best][0], candidates[best][1]


# --------------------------------------------------------------------------------------------
# durations and transitions


def duration_tables(heart_rate: float, systolic_interval: float, frame_rate: float,
                    params: HSMMParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log duration pmf and log survival ``(D, 5)`` (row ``d - 1`` for a duration of ``d`` frames).

    State 0 only has duration 1 (it repeats by self-transition).
    """
    p = params or HSMMParams()
    if not (math.isfinite(heart_rate) and heart_rate > 0):
        raise ValueError(f"duration_tables: heart_rate must be positive, got {heart_rate!r}")
    cycle = 60.0 / heart_rate
    systolic_interval = float(np.clip(systolic_interval, p.s1_mean + p.min_duration, 0.8 * cycle))
    systole = max(systolic_interval - p.s1_mean, p.min_duration)
    diastole = max(cycle - systolic_interval - p.s2_mean, p.min_duration)
    spec = {  # state: (mean, sd) in seconds
        1: (p.s1_mean, p.s1_sd), 2: (systole, p.systole_sd), 3: (p.s2_mean, p.s2_sd),
        4: (diastole, p.diastole_sd_rel * diastole + p.diastole_sd_abs),
    }
    max_d = max(int(math.ceil((m + 3.5 * s) * frame_rate)) for m, s in spec.values())
    max_d = max(max_d, 2)
    d = np.arange(1, max_d + 1, dtype=np.float64)
    logpmf = np.full((max_d, NUM_STATES), -np.inf)
    logsurv = np.full((max_d, NUM_STATES), -np.inf)
    logpmf[0, 0] = logsurv[0, 0] = 0.0
    min_frames = max(1, int(round(p.min_duration * frame_rate)))
    for state, (mean, sd) in spec.items():
        mu, sigma = mean * frame_rate, max(sd * frame_rate, 0.5)
        lo, hi = max(min_frames, int(math.floor(mu - 3.5 * sigma))), int(math.ceil(mu + 3.5 * sigma))
        ok = (d >= lo) & (d <= hi)
        # probability mass of [d - 0.5, d + 0.5] under the Gaussian, renormalised on the allowed range
        mass = norm.cdf(d + 0.5, mu, sigma) - norm.cdf(d - 0.5, mu, sigma)
        mass = np.where(ok, np.maximum(mass, 1e-300), 0.0)
        mass /= mass.sum()
        surv = np.cumsum(mass[::-1])[::-1]
        with np.errstate(divide="ignore"):
            logpmf[:, state] = np.where(ok, np.log(mass), -np.inf)
            # a truncated segment (cut by the recording's start or end) may be shorter than the minimum
            logsurv[:, state] = np.where(d <= hi, np.log(np.maximum(surv, 1e-300)), -np.inf)
    return logpmf, logsurv


def log_transitions(params: HSMMParams | None, frame_rate: float) -> np.ndarray:
    """``(5, 5)`` log transition matrix between segments (from row to column)."""
    p = params or HSMMParams()
    A = np.zeros((NUM_STATES, NUM_STATES))
    for s, nxt in NEXT_STATE.items():
        A[s, nxt] = 1.0 - p.p_leave_cycle
        A[s, 0] = p.p_leave_cycle
    leave0 = min(0.5, 1.0 / max(p.mean_unannotated * frame_rate, 1.0))
    A[0, 0] = 1.0 - leave0
    A[0, 1:] = leave0 / 4
    with np.errstate(divide="ignore"):
        return np.log(A)


def is_valid_sequence(states: Sequence[int] | np.ndarray) -> bool:
    """True when every change of state is an annotated state to its successor, or into or out of 0."""
    s = np.asarray(states, dtype=np.int64)
    if s.size and (s.min() < 0 or s.max() >= NUM_STATES):
        return False
    a, b = s[:-1], s[1:]
    change = a != b
    nxt = np.where(a == 4, 1, a + 1)
    ok = (a == 0) | (b == 0) | (b == nxt)
    return bool(np.all(ok[change]))


# --------------------------------------------------------------------------------------------
# Viterbi


def hsmm_decode(log_emissions: np.ndarray, heart_rate: float, systolic_interval: float,
                frame_rate: float, params: HSMMParams | None = None,
                log_initial: np.ndarray | None = None, return_score: bool = False):
    """Most likely valid state sequence of a duration-dependent HSMM.

    Parameters
    ----------
    log_emissions : np.ndarray
        ``(T, 5)`` log emission scores per frame and state (e.g. ``log P(state | frame) - log P(state)``).
        A column of ``-inf`` forbids that state (e.g. to decode the four annotated states only).
    heart_rate : float
        Beats per minute of this recording.
    systolic_interval : float
        Seconds from the start of S1 to the start of S2.
    frame_rate : float
        Frames per second of ``log_emissions``.
    params : HSMMParams, optional
        Durations and transitions; defaults to circor-dev's statistics.
    log_initial : np.ndarray, optional
        ``(5,)`` log probabilities of the first state.
    return_score : bool
        Also return the log score of the best path.

    Returns
    -------
    np.ndarray
        ``(T,)`` int64 states; :func:`is_valid_sequence` holds. The first and last segments may be
        shorter than their minimum duration (they are cut by the recording's edges). With
        ``return_score``, a tuple ``(states, score)``.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.tile(np.repeat([1, 2, 3, 4], [6, 7, 5, 12]), 10)       # 30 frames = 100 bpm
    >>> noisy = np.full((len(truth), 5), 0.05)
    >>> noisy[np.arange(len(truth)), truth] = 0.8
    >>> out = hsmm_decode(np.log(noisy), 100.0, 0.26, 50)
    >>> float((out == truth).mean()) > 0.95
    True
    """
    B = np.asarray(log_emissions, dtype=np.float64)
    if B.ndim != 2 or B.shape[1] != NUM_STATES:
        raise ValueError(f"hsmm_decode: log_emissions must have shape (T, {NUM_STATES}), got {B.shape}")
    T = B.shape[0]
    if T == 0:
        return (np.zeros(0, dtype=np.int64), 0.0) if return_score else np.zeros(0, dtype=np.int64)
    if np.isnan(B).any():
        raise ValueError("hsmm_decode: log_emissions contain NaN")
    B = np.maximum(B, -1e4)  # -inf columns become a large finite penalty; keeps sums finite
    p = params or HSMMParams()
    logpmf, logsurv = duration_tables(heart_rate, systolic_interval, frame_rate, p)
    logA = log_transitions(p, frame_rate)
    if log_initial is None:
        init = np.array([p.p_start_unannotated] + [(1 - p.p_start_unannotated) / 4] * 4)
        log_initial = np.log(init)
    (states, score), = _viterbi(B, [(logpmf, logsurv)], logA, np.asarray(log_initial, dtype=np.float64))
    return (states, score) if return_score else states


def _viterbi(B: np.ndarray, tables: Sequence[tuple[np.ndarray, np.ndarray]], logA: np.ndarray,
             log_initial: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Explicit-duration Viterbi for several duration tables at once (one per candidate heart rate).

    The candidates share the emissions; their ``C x S`` states are laid side by side so that each
    frame costs the same handful of numpy calls whatever ``C`` is. ``bc[s] = best_in[s] - cum[s]``
    (the best score of a segment starting at ``s``, less the emissions before it) lets a segment
    ending at ``t`` with start ``s`` score ``bc[s] + duration + cum[t]``.
    """
    T, S = B.shape
    C = len(tables)
    K = C * S
    D = max(t[0].shape[0] for t in tables)
    pmf = np.full((D, K), -np.inf)
    surv = np.full((D, K), -np.inf)
    for c, (logpmf, logsurv) in enumerate(tables):
        pmf[: logpmf.shape[0], c * S:(c + 1) * S] = logpmf
        surv[: logsurv.shape[0], c * S:(c + 1) * S] = logsurv
    pmf_rev, surv_rev = pmf[::-1].copy(), surv[::-1].copy()   # row D - d: duration d
    cum = np.zeros((T + 1, S))
    np.cumsum(B, axis=0, out=cum[1:])
    cum = np.tile(cum, (1, C))
    bc = np.full((T + 1, K), -np.inf)
    bc[0] = np.tile(log_initial, C)
    delta = np.full((T + 1, K), -np.inf)      # best score of a segment of each state ending at t
    dur_arg = np.zeros((T + 1, K), dtype=np.int64)
    prev_state = np.zeros((T + 1, K), dtype=np.int64)
    for t in range(1, T + 1):
        dd = min(D, t)
        lo = t - dd                              # starts lo .. t - 1 (durations dd .. 1)
        dur = (surv_rev if t == T else pmf_rev)[D - dd:]
        if lo == 0:
            dur = dur.copy()
            dur[0] = surv[dd - 1]                # the segment began before the recording
        cand = bc[lo:t] + dur
        k = cand.argmax(axis=0)
        best = cand.max(axis=0) + cum[t]         # the value at k; a reduction costs less than indexing
        delta[t] = best
        dur_arg[t] = dd - k
        if t < T:
            trans = best.reshape(C, S, 1) + logA   # (candidate, from, to)
            prev_state[t] = trans.argmax(axis=1).reshape(K)
            bc[t] = trans.max(axis=1).reshape(K) - cum[t]
    out = []
    for c in range(C):
        offset = c * S
        final = delta[T, offset:offset + S]
        states = np.empty(T, dtype=np.int64)
        t, j = T, int(np.argmax(final))
        while t > 0:
            d = int(dur_arg[t, offset + j])
            states[t - d:t] = j
            t -= d
            if t > 0:
                j = int(prev_state[t, offset + j])
        out.append((states, float(final.max())))
    return out
