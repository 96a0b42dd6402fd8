"""The report figure of one recording: :func:`plot_report` (waveform and spectrogram with the
segmentation states shaded, the feature table beside them).

Examples
--------
>>> import numpy as np
>>> from murmurlm.data.labels import FEATURES
>>> from murmurlm.signal.synth import synth_pcg
>>> pcg = synth_pcg(6.0, 4000, heart_rate=80, seed=0)
>>> probs = {f.name: np.full(f.num_classes, 1.0 / f.num_classes) for f in FEATURES}
>>> fig = plot_report(pcg.waveform, 4000, probs, pcg.segments, title="synthetic")
>>> [ax.get_title() for ax in fig.axes][2], fig.axes[0].get_title().split(":")[0]
('murmur features', 'synthetic')
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Mapping

import numpy as np

from murmurlm.data.circor import STATES
from murmurlm.inference.report import _segments, clinical_label, murmur_report

STATE_COLOURS = {1: "#d62728", 2: "#ff9896", 3: "#1f77b4", 4: "#aec7e8"}


def plot_report(waveform: np.ndarray, sampling_rate: int, prediction: Any, segmentation: Any = None,
                path: str | Path | IO[bytes] | None = None, title: str | None = None, dpi: int = 100,
                heartbeat: Any = None):
    """Waveform and spectrogram with the segmentation states shaded, the feature table beside them,
    and, given a ``heartbeat`` (:func:`murmurlm.signal.heartbeat.pcg_heartbeat`), the average
    heartbeat below (:func:`plot_heartbeat`), where a clinician sees in which phase the murmur sits.

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
    rows = 2 if heartbeat is None else 3
    fig = Figure(figsize=(14, 3 * rows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 2, width_ratios=(2.2, 1.0))
    ax_w = fig.add_subplot(grid[0, 0])
    ax_s = fig.add_subplot(grid[1, 0], sharex=ax_w)
    ax_t = fig.add_subplot(grid[:2, 1])
    if heartbeat is not None:
        plot_heartbeat(fig.add_subplot(grid[2, :]), heartbeat)

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
    rows = [[f["name"], clinical_label(f["name"], f["label"]), "*" if f.get("overridden") else
             "-" if f["probability"] is None else f"{f['probability']:.2f}"] for f in report["features"]]
    table = ax_t.table(cellText=rows, colLabels=["feature", "prediction", "p"], loc="center",
                       cellLoc="left", colWidths=[0.55, 0.32, 0.13])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.5)
    ax_t.set_title("murmur features", fontsize=10)
    if any(f.get("overridden") for f in report["features"]):
        ax_t.text(0.0, 0.02, "* no murmur to describe: Murmur is not Present", transform=ax_t.transAxes, fontsize=8)
    if path is not None:
        fig.savefig(path, format="png")
    return fig


def plot_patient(analysis: Any, path: str | Path | IO[bytes] | None = None, dpi: int = 100):
    """The patient figure of :func:`murmurlm.inference.report.analyse_patient`: one row per site
    (its waveform with the segmentation states shaded, titled with the site, whether the murmur is
    heard there and its probability; the rows of those sites framed in red), the patient's features
    beside them. Writes a PNG to ``path`` when given; returns the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    report = analysis.report
    rows = len(analysis.sites)
    fig = Figure(figsize=(14, max(2.2 * rows, 4.5)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 2, width_ratios=(2.2, 1.0))
    for i, ((site, a), entry) in enumerate(zip(analysis.sites, report["sites"])):
        ax = fig.add_subplot(grid[i, 0])
        wave = np.asarray(a.waveform, dtype=np.float32)
        t = np.arange(len(wave)) / a.sampling_rate
        ax.plot(t, wave, lw=0.4, color="black")
        for s in _segments(a.segmentation):
            if s.state in STATE_COLOURS:
                ax.axvspan(s.start, s.end, color=STATE_COLOURS[s.state], alpha=0.25, lw=0)
        ax.set_xlim(0, max(t[-1] if len(t) else 1.0, 1e-3))
        ax.set_ylabel(site)
        heard = entry["heard"]
        ax.set_title(f"{site} ({entry['source']}): murmur {'heard' if heard else 'not heard'} "
                     f"(p {entry['p_murmur_heard']:.2f}), quality {entry['quality'] or 'unknown'}", fontsize=10,
                     color="#b00000" if heard else "black")
        if heard:
            for spine in ax.spines.values():
                spine.set_edgecolor("#b00000")
                spine.set_linewidth(2.0)
        if i == rows - 1:
            ax.set_xlabel("time (s)")
    ax_t = fig.add_subplot(grid[:, 1])
    ax_t.axis("off")
    cells = [[f["name"], clinical_label(f["name"], f["label"]), "*" if f.get("overridden") else
              "-" if f["probability"] is None else f"{f['probability']:.2f}"] for f in report["features"]]
    sites = report["murmur_locations"]["label"]
    cells.append(["heard at", "none" if sites == "nan" else sites.replace("+", ", "), ""])
    loud = report["most_audible_location"]
    cells.append(["most audible at", "none" if loud == "nan" else loud, ""])
    table = ax_t.table(cellText=cells, colLabels=["feature", "prediction", "p"], loc="center", cellLoc="left",
                       colWidths=[0.45, 0.43, 0.12])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.4)
    ax_t.set_title("patient", fontsize=10)
    if path is not None:
        fig.savefig(path, format="png")
    return fig


def plot_heartbeat(target: Any, heartbeat: Any, *, title: str | None = None,
                   path: str | Path | IO[bytes] | None = None, dpi: int = 100):
    """The average heartbeat (:func:`murmurlm.signal.heartbeat.pcg_heartbeat`): its median image in
    dB over phase-normalised time, the phases S1 / systole / S2 / diastole marked and labelled.

    ``target`` is a matplotlib Axes to draw in, a Figure (one Axes is added to it) or None (a new
    Agg Figure). The title counts the cycles and says "unreliable" (with the fallback reason) when
    the heartbeat is not reliable. Writes a PNG of the figure to ``path`` when given; returns the Axes.

    Examples
    --------
    >>> from murmurlm.signal.heartbeat import pcg_heartbeat
    >>> from murmurlm.signal.synth import synth_pcg
    >>> pcg = synth_pcg(6.0, 4000, seed=0)
    >>> ax = plot_heartbeat(None, pcg_heartbeat(pcg.waveform, 4000, pcg.segments))
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['S1', 'systole', 'S2', 'diastole']
    >>> plot_heartbeat(None, pcg_heartbeat(pcg.waveform, 4000, [])).get_title()
    'average heartbeat: 0 cycles (unreliable: no segments)'
    """
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    if isinstance(target, Axes):
        ax = target
    elif isinstance(target, Figure):
        ax = target.add_subplot(1, 1, 1)
    elif target is None:
        fig = Figure(figsize=(8, 4), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    else:
        raise TypeError(f"plot_heartbeat: target must be a matplotlib Axes, Figure or None, "
                        f"got {type(target).__name__}")
    fig = ax.figure

    db = 10.0 * np.log10(np.asarray(heartbeat.image, dtype=np.float64) + 1e-12)
    edges = heartbeat.phase_edges
    finite_top = float(db.max()) if db.size else 0.0
    mesh = ax.pcolormesh(np.arange(db.shape[1] + 1), heartbeat.band_edges, db, shading="flat", cmap="magma",
                         vmin=finite_top - 50.0, vmax=finite_top)
    ax.set_yscale("log")
    lo, hi = float(heartbeat.band_edges[0]), float(heartbeat.band_edges[-1])
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_yticks([f for f in (25, 50, 100, 200, 400, 800, 1600) if lo <= f <= hi],
                  [f"{f}" for f in (25, 50, 100, 200, 400, 800, 1600) if lo <= f <= hi])
    ax.set_ylabel("frequency (Hz)")
    for e in edges[1:-1]:
        ax.axvline(e, color="white", lw=1.0, ls="--")
    ax.set_xticks([(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])], ["S1", "systole", "S2", "diastole"])
    ax.set_xlabel("phase-normalised time")
    heading = title or "average heartbeat"
    note = "" if heartbeat.reliable else f" (unreliable: {heartbeat.fallback or 'too few cycles'})"
    ax.set_title(f"{heading}: {heartbeat.n_kept} cycles{note}", fontsize=10)
    fig.colorbar(mesh, ax=ax, label="band power (dB full scale²)")
    if path is not None:
        fig.savefig(path, format="png")
    return ax
