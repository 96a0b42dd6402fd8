"""``pcg_process`` only chains the signal steps: each of its outputs equals the step run alone."""

from __future__ import annotations

import numpy as np

from murmurlm.signal.cycles import complete_cycles
from murmurlm.signal.filter import pcg_clean
from murmurlm.signal.process import pcg_process
from murmurlm.signal.quality import CYCLE_RULE, pcg_quality
from murmurlm.signal.segment import pcg_segment
from murmurlm.signal.synth import synth_pcg


def test_pcg_process_equals_its_steps_run_alone():
    pcg = synth_pcg(10.0, 4000, heart_rate=72, seed=7)
    out = pcg_process(pcg.waveform, 4000)
    seg = pcg_segment(pcg.waveform, 4000, method="springer")
    assert np.array_equal(out.cleaned, pcg_clean(pcg.waveform, 4000, low=25.0, high=400.0))
    assert [(s.start, s.end, s.state) for s in out.segmentation.segments] == \
        [(s.start, s.end, s.state) for s in seg.segments]
    assert out.cycles == complete_cycles(seg.segments, CYCLE_RULE)
    assert out.quality == pcg_quality(pcg.waveform, 4000, seg.segments)
    assert abs(out.segmentation.heart_rate - 72) < 6 and out.quality["flag"] == "good"
    assert len(out.cycles) >= 9  # 12 beats in 10 s; the first and last may be cut
