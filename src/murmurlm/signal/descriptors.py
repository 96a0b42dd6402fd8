"""Interpretable murmur descriptors of an average heartbeat: :func:`pcg_descriptors`.

Each descriptor is one number with a physical meaning, computed from a
:class:`~murmurlm.signal.heartbeat.Heartbeat` (the median phase-normalised band spectrogram of a
recording's cycles); ``docs/descriptors.md`` tables them: definition, unit, the label each informs
and what its values mean. In short:

- **timing and shape**: the log-energy envelope over normalised systole (12 values) and diastole
  (16), the energy fractions in the first, middle and last third of each, the envelope's slope and
  curvature (a quadratic fit over normalised time), the peak position and the energy centre in time;
- **loudness**: systole relative to S1, S2 and diastole, diastole relative to S1 and S2, S2 relative
  to S1, and systole and diastole over the recording's noise floor, all in dB;
- **pitch**: spectral centroid and bandwidth (Hz) of systole and diastole, their differences, and
  the centroid and bandwidth of the systolic excess (systole minus diastole, band by band);
- **quality**: spectral flatness, harmonicity (a harmonic-comb score), tonal prominence (the
  largest band above its neighbourhood), envelope roughness and cycle-to-cycle variability;
- a 16-band log systolic spectrum (mean removed);
- ``cycles_kept``, ``reliable`` (0/1), ``heart_rate_bpm``.

The murmur measures (fractions, slope, peak, spectra) leave out one bin at each end of systole and
diastole (the 32 ms STFT window and the annotation's slack spill S1 and S2 into them), and the
fractions, peak and energy centre count only the energy above the noise floor (the 10th percentile
of the systolic and diastolic bins), so that a murmur-free phase reads as flat (thirds of 1/3)
rather than as the shape of the noise. Every value is finite, on a fallback heartbeat too (a flat
image gives flat envelopes, thirds of 1/3, 0 dB ratios and the mean spectrum's pitch; an unknown
heart rate is 0).

Examples
--------
>>> from murmurlm.signal.heartbeat import pcg_heartbeat
>>> from murmurlm.signal.synth import MurmurSpec, synth_pcg
>>> pcg = synth_pcg(10.0, 4000, murmurs=[MurmurSpec(timing="Early-systolic", grade="III/VI")], seed=0)
>>> d = pcg_descriptors(pcg_heartbeat(pcg.waveform, 4000, pcg.segments))
>>> d["sys_frac_early"] > 0.6, d["sys_to_dia_db"] > 6, d["reliable"]
(True, True, 1.0)
>>> len(d) == len(DESCRIPTOR_NAMES) == descriptor_vector(pcg_heartbeat(pcg.waveform, 4000, [])).size
True
"""

from __future__ import annotations

import numpy as np

from murmurlm.signal.heartbeat import Heartbeat

SYS_ENVELOPE_BINS = 12
DIA_ENVELOPE_BINS = 16
SPECTRUM_BANDS = 16
EXCESS_BANDS = 8
EPS = 1e-12
"""Power floor (full scale², -120 dB) under every logarithm: silence reads 0 dB, not -inf."""

DESCRIPTOR_NAMES: tuple[str, ...] = (
    *(f"sys_env_{i:02d}" for i in range(SYS_ENVELOPE_BINS)),
    *(f"dia_env_{i:02d}" for i in range(DIA_ENVELOPE_BINS)),
    "sys_frac_early", "sys_frac_mid", "sys_frac_late", "sys_slope_db", "sys_curvature_db", "sys_peak_pos",
    "sys_centre_time",
    "dia_frac_early", "dia_frac_mid", "dia_frac_late", "dia_slope_db", "dia_curvature_db", "dia_peak_pos",
    "dia_centre_time",
    "sys_to_s1_db", "sys_to_s2_db", "sys_to_dia_db", "dia_to_s1_db", "dia_to_s2_db", "s2_to_s1_db",
    "sys_snr_db", "dia_snr_db", "sys_level_dbfs", "s1_level_dbfs", "floor_dbfs",
    "sys_level_dba", "sys_excess_dba", "sys_to_s1_dba",
    "sys_centroid_hz", "sys_bandwidth_hz", "dia_centroid_hz", "dia_bandwidth_hz", "centroid_diff_hz",
    "bandwidth_diff_hz", "sys_excess_centroid_hz", "sys_excess_bandwidth_hz",
    "sys_flatness", "dia_flatness", "sys_harmonicity_db", "sys_tonal_prominence_db", "dia_tonal_prominence_db",
    "sys_roughness_db", "sys_variability",
    *(f"sys_spec_{i:02d}" for i in range(SPECTRUM_BANDS)),
    *(f"sys_excess_spec_{i}" for i in range(EXCESS_BANDS)),
    "cycles_kept", "reliable", "heart_rate_bpm",
)
"""The descriptors, in the fixed order of :func:`descriptor_vector`."""

DESCRIPTOR_GROUPS: dict[str, tuple[str, ...]] = {
    "timing": tuple(f"{phase}_{what}" for phase, n in (("sys", SYS_ENVELOPE_BINS), ("dia", DIA_ENVELOPE_BINS))
                    for what in (*(f"env_{i:02d}" for i in range(n)), "frac_early", "frac_mid", "frac_late",
                                 "slope_db", "curvature_db", "peak_pos", "centre_time")),
    "loudness": ("sys_to_s1_db", "sys_to_s2_db", "sys_to_dia_db", "dia_to_s1_db", "dia_to_s2_db", "s2_to_s1_db",
                 "sys_snr_db", "dia_snr_db", "sys_level_dbfs", "s1_level_dbfs", "floor_dbfs", "sys_level_dba",
                 "sys_excess_dba", "sys_to_s1_dba"),
    "pitch": ("sys_centroid_hz", "sys_bandwidth_hz", "dia_centroid_hz", "dia_bandwidth_hz", "centroid_diff_hz",
              "bandwidth_diff_hz", "sys_excess_centroid_hz", "sys_excess_bandwidth_hz",
              *(f"sys_excess_spec_{i}" for i in range(EXCESS_BANDS))),
    "quality": ("sys_flatness", "dia_flatness", "sys_harmonicity_db", "sys_tonal_prominence_db",
                "dia_tonal_prominence_db", "sys_roughness_db", "sys_variability"),
    "spectrum": tuple(f"sys_spec_{i:02d}" for i in range(SPECTRUM_BANDS)),
    "reliability": ("cycles_kept", "reliable", "heart_rate_bpm"),
}
"""The descriptors by what they describe (the sections of ``docs/descriptors.md``); every name is in
exactly one group."""


def _db(x: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.asarray(x, dtype=np.float64) + EPS)


def _ratio_db(a: float, b: float) -> float:
    return float(_db(a) - _db(b))


def _regroup(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` (last axis) as ``n`` values: means of ``n`` near-equal groups, or an interpolation
    when ``x`` has fewer than ``n``."""
    m = x.shape[-1]
    if m >= n:
        return np.stack([g.mean(axis=-1) for g in np.array_split(x, n, axis=-1)], axis=-1)
    return np.interp((np.arange(n) + 0.5) / n, (np.arange(m) + 0.5) / m, x)


def _band_groups(spectrum: np.ndarray, n: int, widths: np.ndarray | None = None) -> np.ndarray:
    """Band power summed into ``n`` groups of adjacent bands (divided by the groups' widths when
    given: a density); interpolated when there are fewer than ``n`` bands."""
    if spectrum.size < n:
        density = spectrum if widths is None else spectrum / widths
        return _regroup(density, n)
    groups = np.array_split(np.arange(spectrum.size), n)
    return np.array([spectrum[g].sum() / (1.0 if widths is None else widths[g].sum()) for g in groups])


def a_weighting_db(freqs: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting in dB (0 dB at 1 kHz): the ear's sensitivity, -30 dB at 50 Hz, -11 dB at 200 Hz.

    >>> a_weighting_db(np.array([50.0, 1000.0])).round(1).tolist()
    [-30.3, 0.0]
    """
    f2 = np.asarray(freqs, dtype=np.float64) ** 2
    ra = 12194.0 ** 2 * f2 ** 2 / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                   * (f2 + 12194.0 ** 2))
    return 20.0 * np.log10(ra) + 2.0


def _guard(n: int) -> slice:
    """The bins of a phase of ``n`` bins its murmur measures use: all but one at each end."""
    g = 1 if n >= 6 else 0
    return slice(g, n - g)


def _timing(phase_energy: np.ndarray, floor: float) -> dict[str, float]:
    """Fractions in thirds, slope and curvature (dB over normalised time), peak and energy centre of
    a phase's bin energies, on its guarded bins (``u``: each bin's normalised time in the phase)."""
    n = phase_energy.size
    keep = _guard(n)
    u = ((np.arange(n) + 0.5) / n)[keep]
    energy = phase_energy[keep]
    excess = np.clip(energy - floor, 0.0, None)
    total = float(excess.sum())
    if total > 1e-6 * max(float(energy.sum()), EPS):
        third = np.minimum((3 * u).astype(int), 2)
        frac = [float(excess[third == k].sum() / total) for k in range(3)]
        peak = float(u[int(np.argmax(excess))])
        centre = float(np.sum(u * excess) / total)
    else:
        frac, peak, centre = [1 / 3] * 3, 0.5, 0.5
    db = _db(energy)
    if energy.size >= 3 and np.ptp(db) > 0:
        curvature, slope, _ = np.polyfit(u - 0.5, db, 2)
    else:
        curvature = slope = 0.0
    return {"frac_early": frac[0], "frac_mid": frac[1], "frac_late": frac[2], "slope_db": float(slope),
            "curvature_db": float(curvature), "peak_pos": peak, "centre_time": centre}


def _centroid(spectrum: np.ndarray, freqs: np.ndarray) -> tuple[float, float]:
    """Power-weighted mean frequency and standard deviation (Hz); the band centres' when silent."""
    w = np.asarray(spectrum, dtype=np.float64) + EPS
    c = float(np.sum(w * freqs) / np.sum(w))
    return c, float(np.sqrt(np.sum(w * (freqs - c) ** 2) / np.sum(w)))


def _local_peakiness(density_db: np.ndarray, half_width: int = 4) -> np.ndarray:
    """dB of each band above the median of its neighbourhood (``half_width`` bands each side, about
    2/3 octave with 32 bands over 25-800 Hz): a spectral peak stands out, the tilt does not."""
    n = density_db.size
    padded = np.pad(density_db, half_width, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_width + 1)
    return density_db - np.median(windows, axis=1)[:n]


def _harmonicity(peakiness: np.ndarray, freqs: np.ndarray, harmonics: int = 3) -> float:
    """Largest mean peakiness (dB) at ``f0, 2 f0, 3 f0`` over candidate fundamentals (band centres
    with at least two harmonics in range), read in log frequency between band centres."""
    logf = np.log2(freqs)
    best = 0.0
    for f0 in freqs:
        ks = [k for k in range(1, harmonics + 1) if k * f0 <= freqs[-1]]
        if len(ks) < 2:
            break
        score = float(np.mean(np.interp(np.log2(np.asarray(ks) * f0), logf, peakiness)))
        best = max(best, score)
    return best


def pcg_descriptors(heartbeat: Heartbeat) -> dict[str, float]:
    """The interpretable descriptors of an average heartbeat, name -> value (see :data:`DESCRIPTOR_NAMES`
    and ``docs/descriptors.md``). All finite, also for an unreliable (fallback) heartbeat.

    Examples
    --------
    >>> from murmurlm.signal.heartbeat import pcg_heartbeat
    >>> from murmurlm.signal.synth import MurmurSpec, synth_pcg
    >>> low = synth_pcg(8.0, 4000, murmurs=[MurmurSpec(pitch="Low", grade="III/VI")], seed=0)
    >>> high = synth_pcg(8.0, 4000, murmurs=[MurmurSpec(pitch="High", grade="III/VI")], seed=0)
    >>> d = [pcg_descriptors(pcg_heartbeat(p.waveform, 4000, p.segments)) for p in (low, high)]
    >>> d[0]["sys_excess_centroid_hz"] < d[1]["sys_excess_centroid_hz"]
    True
    """
    hb = heartbeat
    image = np.nan_to_num(np.asarray(hb.image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    image = np.clip(image, 0.0, None)
    freqs = np.asarray(hb.frequencies, dtype=np.float64)
    widths = np.diff(np.asarray(hb.band_edges, dtype=np.float64))
    widths = widths / widths.mean()                 # densities in power per mean band, not per Hz
    energy = image.sum(axis=0)                      # power per bin, 25-800 Hz
    parts = {name: hb.phase_slice(name) for name in ("S1", "systole", "S2", "diastole")}
    e = {name: energy[s] for name, s in parts.items()}
    sys_g = _guard(e["systole"].size)
    dia_g = _guard(e["diastole"].size)
    sys_e, dia_e = e["systole"][sys_g], e["diastole"][dia_g]
    floor = float(np.percentile(np.concatenate([sys_e, dia_e]), 10))
    out: dict[str, float] = {}

    for prefix, phase_e, n_env in (("sys", e["systole"], SYS_ENVELOPE_BINS), ("dia", e["diastole"], DIA_ENVELOPE_BINS)):
        env = _db(_regroup(phase_e, n_env))
        for i, v in enumerate(env - env.mean()):
            out[f"{prefix}_env_{i:02d}"] = float(v)
    for prefix, phase_e in (("sys", e["systole"]), ("dia", e["diastole"])):
        for key, value in _timing(phase_e, floor).items():
            out[f"{prefix}_{key}"] = value

    s1, s2, sys_mean, dia_mean = (float(e["S1"].mean()), float(e["S2"].mean()), float(sys_e.mean()),
                                  float(dia_e.mean()))
    out.update(sys_to_s1_db=_ratio_db(sys_mean, s1), sys_to_s2_db=_ratio_db(sys_mean, s2),
               sys_to_dia_db=_ratio_db(sys_mean, dia_mean), dia_to_s1_db=_ratio_db(dia_mean, s1),
               dia_to_s2_db=_ratio_db(dia_mean, s2), s2_to_s1_db=_ratio_db(s2, s1),
               sys_snr_db=_ratio_db(sys_mean, floor), dia_snr_db=_ratio_db(dia_mean, floor),
               sys_level_dbfs=float(_db(sys_mean)), s1_level_dbfs=float(_db(s1)), floor_dbfs=float(_db(floor)))

    sys_spec = image[:, parts["systole"]][:, sys_g].mean(axis=1)
    dia_spec = image[:, parts["diastole"]][:, dia_g].mean(axis=1)
    sc, sb = _centroid(sys_spec, freqs)
    dc, db = _centroid(dia_spec, freqs)
    ec, eb = _centroid(np.clip(sys_spec - dia_spec, 0.0, None) + 1e-3 * sys_spec, freqs)
    out.update(sys_centroid_hz=sc, sys_bandwidth_hz=sb, dia_centroid_hz=dc, dia_bandwidth_hz=db,
               centroid_diff_hz=sc - dc, bandwidth_diff_hz=sb - db, sys_excess_centroid_hz=ec,
               sys_excess_bandwidth_hz=eb)

    a_gain = 10.0 ** (a_weighting_db(freqs) / 10.0)
    s1_spec = image[:, parts["S1"]].mean(axis=1)
    excess = np.clip(sys_spec - dia_spec, 0.0, None) + 1e-2 * sys_spec
    out.update(sys_level_dba=float(_db(np.sum(a_gain * sys_spec))), sys_excess_dba=float(_db(np.sum(a_gain * excess))),
               sys_to_s1_dba=_ratio_db(float(np.sum(a_gain * sys_spec)), float(np.sum(a_gain * s1_spec))))

    sys_density, dia_density = sys_spec / widths + EPS, dia_spec / widths + EPS   # log bands widen with f
    sys_peaky = _local_peakiness(_db(sys_density))
    out.update(
        sys_flatness=float(np.exp(np.mean(np.log(sys_density))) / np.mean(sys_density)),
        dia_flatness=float(np.exp(np.mean(np.log(dia_density))) / np.mean(dia_density)),
        sys_harmonicity_db=_harmonicity(sys_peaky, freqs),
        sys_tonal_prominence_db=float(sys_peaky.max()),
        dia_tonal_prominence_db=float(_local_peakiness(_db(dia_density)).max()),
    )
    cycles = np.asarray(hb.cycles, dtype=np.float64)
    if cycles.shape[0]:
        sys_cycles = cycles[:, :, parts["systole"]][:, :, sys_g].sum(axis=1)        # (n_kept, n_bins)
        out["sys_roughness_db"] = float(np.median(np.mean(np.abs(np.diff(_db(sys_cycles), 2, axis=1)), axis=1))) \
            if sys_cycles.shape[1] >= 3 else 0.0
    else:
        out["sys_roughness_db"] = 0.0
    spread_sys = np.asarray(hb.spread, dtype=np.float64)[:, parts["systole"]][:, sys_g].sum(axis=0)
    out["sys_variability"] = float(np.median(spread_sys / (sys_e + EPS))) if hb.reliable else 0.0

    spec_db = _db(_band_groups(sys_spec, SPECTRUM_BANDS, widths))
    for i, v in enumerate(spec_db - spec_db.mean()):
        out[f"sys_spec_{i:02d}"] = float(v)

    sys_groups = _band_groups(sys_spec, EXCESS_BANDS)
    dia_groups = _band_groups(dia_spec, EXCESS_BANDS)
    for i, v in enumerate(_db(sys_groups) - _db(dia_groups)):
        out[f"sys_excess_spec_{i}"] = float(v)

    out["cycles_kept"] = float(hb.n_kept)
    out["reliable"] = 1.0 if hb.reliable else 0.0
    rate = hb.heart_rate
    out["heart_rate_bpm"] = float(rate) if rate is not None and np.isfinite(rate) else 0.0
    return {name: float(out[name]) for name in DESCRIPTOR_NAMES}


def descriptor_vector(heartbeat: Heartbeat) -> np.ndarray:
    """:func:`pcg_descriptors` as a float64 vector in :data:`DESCRIPTOR_NAMES` order.

    >>> from murmurlm.signal.heartbeat import pcg_heartbeat
    >>> descriptor_vector(pcg_heartbeat(np.zeros(4000, np.float32), 4000, [])).shape == (len(DESCRIPTOR_NAMES),)
    True
    """
    d = pcg_descriptors(heartbeat)
    return np.array([d[name] for name in DESCRIPTOR_NAMES], dtype=np.float64)
