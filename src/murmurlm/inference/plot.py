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
from murmurlm.inference.report import _segments, murmur_report

STATE_COLOURS = {1: "#d62728", 2: "#ff9896", 3: "#1f77b4", 4: "#aec7e8"}


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
