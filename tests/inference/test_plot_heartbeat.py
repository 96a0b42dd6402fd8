"""The average-heartbeat figure (:func:`murmurlm.inference.plot.plot_heartbeat`): a PNG of the median
image with the four phases marked and labelled, into a new figure, a given Figure or a given Axes,
and "unreliable" in the title when the heartbeat is a fallback."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from murmurlm.inference.plot import plot_heartbeat
from murmurlm.signal.heartbeat import pcg_heartbeat
from murmurlm.signal.synth import MurmurSpec, synth_pcg

FS = 4000
PHASE_LABELS = ["S1", "systole", "S2", "diastole"]


@pytest.fixture(scope="module")
def heartbeat():
    pcg = synth_pcg(8.0, FS, heart_rate=80, murmurs=[MurmurSpec(timing="Holosystolic")], seed=0)
    return pcg_heartbeat(pcg.waveform, FS, pcg.segments)


def test_renders_a_png_with_the_phases_labelled(heartbeat):
    buf = io.BytesIO()
    ax = plot_heartbeat(None, heartbeat, title="synthetic", path=buf)
    png = buf.getvalue()
    assert png[:4] == b"\x89PNG" and len(png) > 10_000
    assert [t.get_text() for t in ax.get_xticklabels()] == PHASE_LABELS
    ticks = ax.get_xticks()
    edges = heartbeat.phase_edges
    assert all(a < t < b for t, a, b in zip(ticks, edges[:-1], edges[1:]))      # each label over its phase
    lines = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert lines == list(edges[1:-1])                                          # the phase boundaries
    title = ax.get_title()
    assert title.startswith("synthetic: ") and f"{heartbeat.n_kept} cycles" in title and "unreliable" not in title
    assert ax.get_yscale() == "log" and ax.get_ylim()[1] == pytest.approx(heartbeat.band_edges[-1])


def test_draws_into_a_given_figure_or_axes(heartbeat):
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = plot_heartbeat(fig, heartbeat)
    assert ax.figure is fig
    mine = Figure().add_subplot(1, 2, 2)
    assert plot_heartbeat(mine, heartbeat) is mine
    with pytest.raises(TypeError, match="Axes, Figure or None"):
        plot_heartbeat("axes", heartbeat)


@pytest.mark.parametrize("wave, segments", [
    (np.zeros(2 * FS, np.float32), []),
    (np.random.default_rng(0).standard_normal(4 * FS).astype(np.float32), None),
])
def test_an_unreliable_heartbeat_says_so(wave, segments):
    hb = pcg_heartbeat(wave, FS, segments)
    buf = io.BytesIO()
    ax = plot_heartbeat(None, hb, path=buf)
    assert "unreliable" in ax.get_title() and hb.fallback in ax.get_title()
    assert buf.getvalue()[:4] == b"\x89PNG"
    assert [t.get_text() for t in ax.get_xticklabels()] == PHASE_LABELS
