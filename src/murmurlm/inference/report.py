"""A readable murmur report for one recording: the 11 features with class probabilities, heart rate
and cycles, a quality flag, as a dict (JSON), as text, and as a figure.

Steps, NeuroKit-style: :func:`segment_recording` (the optional segmentation step),
:func:`assess_quality`, :func:`murmur_report` (assemble), :func:`render_report` (text),
:func:`plot_report` (figure), and :func:`analyse_recording`, which only chains them after the
model's prediction; the CLI (``murmurlm predict --report``) and the service call it.

Quality flag
------------
``usable_fraction`` is the share of the recording that analysis can rely on:

- with a segmentation (``method="cycles"``): the time covered by complete heart cycles, i.e. runs
  S1 -> systole -> S2 -> diastole whose consecutive segments are at most 50 ms apart (rule
  :data:`murmurlm.signal.cycles.TOLERANT`, which the heart rate uses too), and by usable 1-second
  windows (below), divided by the duration;
- without one (``method="energy"``): the share of 1-second windows that are neither silent (RMS
  about the window mean below -60 dBFS), clipped (more than 0.5 % of samples at full scale) nor a burst (RMS above 4
  times the median RMS of the windows that are neither silent nor clipped: stethoscope friction,
  speech, movement).

The flag is ``good`` from 0.6, ``fair`` from 0.3, ``poor`` below. It measures how much of the
signal is analysable, not whether it is a heart sound: a segmenter may find "cycles" in steady
noise, which then passes the energy checks too.

Examples
--------
>>> import numpy as np
>>> from murmurlm.data.labels import FEATURES
>>> probs = {f.name: np.full(f.num_classes, 1.0 / f.num_classes) for f in FEATURES}
>>> probs["Murmur"] = np.array([0.7, 0.1, 0.2])
>>> rng = np.random.default_rng(0)
>>> wave = (0.1 * rng.standard_normal(4000 * 10)).astype(np.float32)
>>> report = murmur_report(probs, waveform=wave, sampling_rate=4000)
>>> report["labels"]["Murmur"], report["quality"]["method"], report["quality"]["flag"]
('Present', 'energy', 'good')
>>> print(render_report(report).splitlines()[0])
murmurlm report: 10.0 s at 4000 Hz
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

import numpy as np

from murmurlm.data import labels as L
from murmurlm.data.circor import STATES
from murmurlm.signal import cycles as heart_cycles

log = logging.getLogger(__name__)

GOOD, FAIR = 0.6, 0.3
CYCLE_RULE = heart_cycles.TOLERANT  # what counts as a complete cycle here
WINDOW_S = 1.0
SILENCE_RMS = 1e-3  # -60 dBFS
CLIP_LEVEL, CLIP_SHARE = 0.999, 0.005
BURST_FACTOR = 4.0
STATE_COLOURS = {1: "#d62728", 2: "#ff9896", 3: "#1f77b4", 4: "#aec7e8"}


@dataclass(frozen=True)
class SegmentView:
    """A segment as the report uses it (whatever class the segmenter returns)."""

    start: float
    end: float
    state: int


# ----------------------------------------------------------------------------------------------
# segmentation (optional step)


def segmentation_available() -> bool:
    """Whether the segmenter (:func:`murmurlm.signal.segment.pcg_segment`) is installed."""
    try:
        from murmurlm.signal.segment import pcg_segment  # noqa: F401
    except ImportError:
        return False
    return True


def segment_recording(waveform: np.ndarray, sampling_rate: int, method: str = "springer") -> tuple[Any, str | None]:
    """Run :func:`murmurlm.signal.segment.pcg_segment` when it is available.

    Returns ``(segmentation, None)``, or ``(None, warning)`` when the segmenter is not installed or
    fails on this recording; a report is still made without it.
    """
    try:
        from murmurlm.signal.segment import pcg_segment
    except ImportError:
        return None, "segmentation unavailable (murmurlm.signal.segment is not installed)"
    try:
        return pcg_segment(waveform, sampling_rate, method=method), None
    except Exception as err:  # a recording the segmenter cannot handle must not stop the report
        log.warning("segmentation failed: %s", err)
        return None, f"segmentation failed: {err}"


def _segments(segmentation: Any) -> list[SegmentView]:
    if segmentation is None:
        return []
    raw = getattr(segmentation, "segments", segmentation)
    out = []
    for s in raw:
        if isinstance(s, Mapping):
            out.append(SegmentView(float(s["start"]), float(s["end"]), int(s["state"])))
        elif hasattr(s, "start"):
            out.append(SegmentView(float(s.start), float(s.end), int(s.state)))
        else:
            start, end, state = s
            out.append(SegmentView(float(start), float(end), int(state)))
    return sorted(out, key=lambda s: s.start)


# ----------------------------------------------------------------------------------------------
# quality


def _energy_windows(wave: np.ndarray, sampling_rate: int) -> tuple[np.ndarray, str]:
    """Per 1-s window: usable (not silent, clipped or a burst); and a sentence counting them."""
    n = max(1, int(len(wave) / sampling_rate // WINDOW_S))
    size = len(wave) // n
    frames = wave[: n * size].reshape(n, size)
    rms = frames.astype(np.float64).std(axis=1)  # RMS around the window's mean: a DC offset is not sound
    clipped = np.mean(np.abs(frames) >= CLIP_LEVEL, axis=1) > CLIP_SHARE
    silent = rms < SILENCE_RMS
    audible = rms[~silent & ~clipped]
    reference = float(np.median(audible)) if audible.size else 0.0
    burst = (rms > BURST_FACTOR * reference) & ~silent & ~clipped if reference > 0 else np.zeros(n, bool)
    usable = ~(silent | clipped | burst)
    detail = (f"{int(usable.sum())} of {n} one-second windows usable "
              f"({int(silent.sum())} silent, {int(clipped.sum())} clipped, {int(burst.sum())} bursts)")
    return usable, detail


def assess_quality(waveform: np.ndarray, sampling_rate: int, segmentation: Any = None) -> dict:
    """The quality flag of a recording; see the module docstring for the two methods.

    >>> wave = np.zeros(8000, dtype=np.float32)
    >>> assess_quality(wave, 4000)["flag"]
    'poor'
    """
    wave = np.asarray(waveform, dtype=np.float32)
    duration = len(wave) / sampling_rate if sampling_rate else 0.0
    if duration <= 0:
        return {"usable_fraction": 0.0, "flag": "poor", "method": "energy", "detail": "no samples"}
    usable, window_detail = _energy_windows(wave, sampling_rate)
    n = len(usable)
    segments = _segments(segmentation)
    if segments:
        # time inside complete cycles AND inside usable windows, on a 10 ms grid
        grid = np.arange(0.0, duration, 0.01) + 0.005
        in_cycle = np.zeros(len(grid), bool)
        cycles = heart_cycles.complete_cycles(segments, CYCLE_RULE)
        for start, end in cycles:
            in_cycle |= (grid >= start) & (grid < end)
        window = np.minimum((grid / duration * n).astype(int), n - 1)
        fraction = float(np.mean(in_cycle & usable[window])) if len(grid) else 0.0
        detail = (f"{fraction:.0%} of the recording lies inside {len(cycles)} complete heart cycle(s) "
                  f"and usable windows; {window_detail}")
        method = "cycles"
    else:
        fraction = float(np.mean(usable))
        detail = window_detail
        method = "energy"
    flag = "good" if fraction >= GOOD else "fair" if fraction >= FAIR else "poor"
    return {"usable_fraction": round(float(fraction), 4), "flag": flag, "method": method, "detail": detail}


# ----------------------------------------------------------------------------------------------
# the report


def _probabilities(prediction: Any) -> dict[str, np.ndarray]:
    probs = getattr(prediction, "probabilities", prediction)
    if not isinstance(probs, Mapping):
        raise TypeError(f"prediction must carry per-feature probabilities, got {type(prediction).__name__}")
    out = {}
    for f in L.FEATURES:
        if f.name not in probs:
            raise ValueError(f"prediction lacks feature {f.name!r}")
        p = np.asarray(probs[f.name], dtype=np.float64).reshape(-1)
        if p.shape != (f.num_classes,):
            raise ValueError(f"{f.name!r}: {p.size} probabilities for {f.num_classes} classes {f.classes}")
        out[f.name] = p
    return out


def _labels(prediction: Any, probs: Mapping[str, np.ndarray]) -> dict[str, str]:
    given = getattr(prediction, "labels", None)
    if isinstance(given, Mapping) and all(f.name in given for f in L.FEATURES):
        return {f.name: str(given[f.name]) for f in L.FEATURES}
    raw = {f.name: f.decode(int(np.argmax(probs[f.name]))) for f in L.FEATURES}
    return L.make_consistent(raw)


def murmur_report(prediction: Any, segmentation: Any = None, waveform: np.ndarray | None = None,
                  sampling_rate: int | None = None, notes: Sequence[str] = (),
                  source: str | None = None, segmentation_warning: str | None = None,
                  segmentation_method: str | None = None) -> dict:
    """Assemble the report of one recording as a JSON-ready dict.

    Parameters
    ----------
    prediction
        A ``PatientPrediction`` (``labels``, ``probabilities``) or a mapping feature name ->
        class probabilities in :mod:`murmurlm.data.labels` class order.
    segmentation
        The segmenter's result (``segments``, ``heart_rate``), or None.
    waveform, sampling_rate
        The analysed audio, for the duration and the quality flag.
    notes
        Conversions made while reading (mix-down, resampling); they become warnings.
    source, segmentation_warning, segmentation_method
        The file name shown; why there is no segmentation; which segmenter made it.

    Returns
    -------
    dict
        ``source``, ``duration_s``, ``sampling_rate``, ``labels`` (consistent), ``features`` (one
        entry per feature: name, label, probability of that label, all class probabilities, and
        ``overridden``: the label is 'nan' because Murmur is not Present or the murmur's timing is
        'nan', whatever this feature's own probabilities say; its probability is then None),
        ``segmentation`` (available, heart_rate_bpm, cycles, segments), ``quality`` and ``warnings``.
    """
    probs = _probabilities(prediction)
    labels = _labels(prediction, probs)
    features = []
    for f in L.FEATURES:
        p = probs[f.name]
        label = labels[f.name]
        own = f.decode(int(np.argmax(p)))
        # A character feature set to 'nan' because Murmur is not Present (or its murmur's timing
        # says there is none) is a consequence of another answer, not of this head's probabilities.
        overridden = f.murmur is not None and label == L.NO_MURMUR and own != L.NO_MURMUR
        features.append({
            "name": f.name,
            "label": label,
            "probability": None if overridden or label not in f.classes else round(float(p[f.classes.index(label)]), 4),
            "probabilities": {c: round(float(v), 4) for c, v in zip(f.classes, p)},
            "overridden": overridden,
        })
    warnings = list(notes)
    segments = _segments(segmentation)
    seg_info: dict[str, Any] = {"available": bool(segments), "heart_rate_bpm": None, "cycles": None,
                                "segments": []}
    if segments:
        cycles = heart_cycles.complete_cycles(segments, CYCLE_RULE)
        rate = getattr(segmentation, "heart_rate", None)
        if rate is None or not math.isfinite(float(rate)):
            rate = 60.0 / float(np.median([e - s for s, e in cycles])) if cycles else None
        if len(cycles) < 2:  # a rate without two complete cycles is the segmenter's guess
            rate = None
            warnings.append(f"{len(cycles)} complete heart cycle(s) found: heart rate unknown")
        seg_info.update(
            heart_rate_bpm=None if rate is None else round(float(rate), 1),
            cycles=len(cycles),
            method=segmentation_method or getattr(segmentation, "method", None),
            segments=[{"start": round(s.start, 4), "end": round(s.end, 4), "state": s.state,
                       "name": STATES.get(s.state, "unannotated")} for s in segments],
        )
    else:
        warnings.append(segmentation_warning or "segmentation unavailable")
    duration = None
    quality = None
    if waveform is not None and sampling_rate:
        duration = round(len(waveform) / sampling_rate, 3)
        quality = assess_quality(waveform, sampling_rate, segmentation if segments else None)
        if quality["flag"] == "poor":
            warnings.append(f"poor recording quality: {quality['detail']}; predictions are unreliable")
    return {
        "source": source,
        "duration_s": duration,
        "sampling_rate": sampling_rate,
        "labels": labels,
        "features": features,
        "segmentation": seg_info,
        "quality": quality,
        "warnings": warnings,
    }


def render_report(report: Mapping[str, Any]) -> str:
    """The report as plain text, one feature a line with the class probabilities."""
    lines = []
    title = "murmurlm report"
    if report.get("source"):
        title += f" for {report['source']}"
    if report.get("duration_s") is not None:
        title += f": {report['duration_s']:.1f} s at {report['sampling_rate']} Hz"
    lines.append(title)
    seg = report.get("segmentation") or {}
    if seg.get("available"):
        hr = seg.get("heart_rate_bpm")
        lines.append(f"heart rate: {'unknown' if hr is None else f'{hr:.0f} bpm'}, "
                     f"{seg.get('cycles', 0)} complete cycle(s)")
    else:
        lines.append("heart rate: unknown (no segmentation)")
    q = report.get("quality")
    if q:
        lines.append(f"quality: {q['flag']} ({q['usable_fraction']:.0%} usable; {q['detail']})")
    lines.append("")
    width = max(len(f["name"]) for f in report["features"])
    lab_width = max(len("prediction"), *(len(f["label"]) for f in report["features"]))
    lines.append(f"{'feature':<{width}}  {'prediction':<{lab_width}}      p  class probabilities")
    for f in report["features"]:
        p = "  -  " if f["probability"] is None else f"{f['probability']:.2f}"
        if f.get("overridden"):
            p = "  *  "
        probs = "  ".join(f"{c} {v:.2f}" for c, v in f["probabilities"].items())
        lines.append(f"{f['name']:<{width}}  {f['label']:<{lab_width}}  {p:>5}  {probs}")
    if any(f.get("overridden") for f in report["features"]):
        lines.append("* nan because Murmur is not Present (or the murmur's timing is nan); "
                     "the feature's own probabilities are shown")
    if report.get("warnings"):
        lines.append("")
        lines.extend(f"warning: {w}" for w in report["warnings"])
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# the figure


def plot_report(waveform: np.ndarray, sampling_rate: int, prediction: Any, segmentation: Any = None,
                path: str | Path | IO[bytes] | None = None, title: str | None = None, dpi: int = 100):
    """Waveform and spectrogram with the segmentation states shaded, the feature table beside them.

    ``prediction`` is a prediction (see :func:`murmur_report`) or a report dict. Writes a PNG to
    ``path`` (a file name or a binary file object) when given; returns the matplotlib Figure.
    Uses the object-oriented Agg API (no pyplot state), so it is safe in a threaded server.

    Examples
    --------
    >>> import io
    >>> from murmurlm.data.labels import FEATURES
    >>> probs = {f.name: np.full(f.num_classes, 1.0 / f.num_classes) for f in FEATURES}
    >>> wave = np.sin(np.arange(8000) / 20).astype(np.float32)
    >>> buf = io.BytesIO()
    >>> _ = plot_report(wave, 4000, probs, path=buf)
    >>> buf.getvalue()[:4]
    b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from scipy.signal import spectrogram

    report = prediction if isinstance(prediction, Mapping) and "features" in prediction else \
        murmur_report(prediction, segmentation, waveform, sampling_rate)
    wave = np.asarray(waveform, dtype=np.float32)
    t = np.arange(len(wave)) / sampling_rate
    fig = Figure(figsize=(14, 6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, width_ratios=(2.2, 1.0))
    ax_w = fig.add_subplot(grid[0, 0])
    ax_s = fig.add_subplot(grid[1, 0], sharex=ax_w)
    ax_t = fig.add_subplot(grid[:, 1])

    ax_w.plot(t, wave, lw=0.4, color="black")
    ax_w.set_ylabel("amplitude")
    ax_w.set_xlim(0, max(t[-1] if len(t) else 1.0, 1e-3))
    nper = max(16, int(0.064 * sampling_rate))
    freqs, times, sxx = spectrogram(wave, fs=sampling_rate, nperseg=min(nper, len(wave)),
                                    noverlap=min(nper, len(wave)) // 2)
    keep = freqs <= min(1000.0, sampling_rate / 2)
    db = 10 * np.log10(sxx[keep] + 1e-12)
    ax_s.pcolormesh(times, freqs[keep], db, shading="auto", cmap="magma",
                    vmin=np.percentile(db, 5), vmax=db.max())
    ax_s.set_ylabel("frequency (Hz)")
    ax_s.set_xlabel("time (s)")

    segments = _segments(segmentation)
    for s in segments:
        if s.state in STATE_COLOURS:
            for ax in (ax_w, ax_s):
                ax.axvspan(s.start, s.end, color=STATE_COLOURS[s.state], alpha=0.25 if ax is ax_w else 0.15, lw=0)
    if segments:
        ax_w.legend(handles=[Patch(color=c, alpha=0.5, label=STATES[k]) for k, c in STATE_COLOURS.items()],
                    loc="upper right", ncol=4, fontsize=8)
    seg = report["segmentation"]
    hr = seg.get("heart_rate_bpm")
    q = report.get("quality") or {}
    heading = title or report.get("source") or "recording"
    ax_w.set_title(f"{heading}: heart rate {'unknown' if hr is None else f'{hr:.0f} bpm'}, "
                   f"{seg.get('cycles') or 0} cycles, quality {q.get('flag', 'unknown')}"
                   f"{'' if segments else ' (no segmentation)'}", fontsize=10)

    ax_t.axis("off")
    rows = [[f["name"], f["label"], "*" if f.get("overridden") else
             "-" if f["probability"] is None else f"{f['probability']:.2f}"] for f in report["features"]]
    table = ax_t.table(cellText=rows, colLabels=["feature", "prediction", "p"], loc="center",
                       cellLoc="left", colWidths=[0.55, 0.32, 0.13])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.5)
    ax_t.set_title("murmur features", fontsize=10)
    if any(f.get("overridden") for f in report["features"]):
        ax_t.text(0.0, 0.02, "* nan because Murmur is not Present", transform=ax_t.transAxes, fontsize=8)
    if path is not None:
        fig.savefig(path, format="png")
    return fig


# ----------------------------------------------------------------------------------------------
# the chain


def analyse_recording(model: Any, waveform: np.ndarray, sampling_rate: int, segment: bool = True,
                      segment_method: str = "springer", notes: Sequence[str] = (),
                      source: str | None = None) -> tuple[dict, Any, Any]:
    """Predict, segment and report one recording: ``(report, prediction, segmentation)``.

    ``model`` is a loaded predictor (:func:`murmurlm.inference.predict.load_model`); the waveform
    must already be at the model's rate (see :func:`murmurlm.inference.audio.read_recording`).
    """
    from murmurlm.inference.predict import predict_recording

    prediction = predict_recording(model, waveform, sampling_rate)
    segmentation, warning = (None, "segmentation switched off") if not segment else \
        segment_recording(waveform, sampling_rate, segment_method)
    report = murmur_report(prediction, segmentation, waveform, sampling_rate, notes=notes,
                           source=source, segmentation_warning=warning, segmentation_method=segment_method)
    return report, prediction, segmentation
