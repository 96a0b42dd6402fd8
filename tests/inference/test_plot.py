"""The report figure (:func:`murmurlm.inference.plot.plot_report`): a PNG of three axes, from a report
dict or straight from a prediction."""

from __future__ import annotations

import io

import numpy as np

from murmurlm.data import labels as L
from murmurlm.inference.plot import STATE_COLOURS, plot_report
from murmurlm.inference.report import murmur_report
from murmurlm.signal.synth import synth_pcg


def uniform_probs():
    return {f.name: np.full(f.num_classes, 1.0 / f.num_classes) for f in L.FEATURES}


def test_figure_of_a_report_with_segmentation():
    pcg = synth_pcg(8.0, 4000, heart_rate=75, seed=2)
    report = murmur_report(uniform_probs(), pcg.segments, pcg.waveform, 4000, source="synthetic.wav")
    buf = io.BytesIO()
    fig = plot_report(pcg.waveform, 4000, report, pcg.segments, buf)
    assert buf.getvalue()[:4] == b"\x89PNG"
    assert len(fig.axes) == 3
    title = fig.axes[0].get_title()
    assert title.startswith("synthetic.wav: heart rate ") and f"{report['segmentation']['cycles']} cycles" in title
    assert fig.axes[0].get_legend() is not None  # the states are shaded and named
    assert set(STATE_COLOURS) == {1, 2, 3, 4}


def test_figure_from_a_prediction_without_segmentation():
    wave = np.sin(np.arange(8000) / 20).astype(np.float32)
    fig = plot_report(wave, 4000, uniform_probs(), title="tone")
    assert fig.axes[0].get_title().endswith("(no segmentation)")
    assert fig.axes[0].get_legend() is None
