"""CirCor-format .tsv output (re-read by the CirCor reader) and clean-cycle cropping."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data.circor import Segment, read_tsv
from murmurlm.signal.segment import clean_stretches, crop_to_cycles, cycle_windows, pcg_segment, write_tsv
from murmurlm.signal.segment.frames import frames_to_segments, segments_to_frames
from murmurlm.signal.synth import synth_pcg


def cycle(t, d=(0.1, 0.2, 0.1, 0.4)):
    edges = np.cumsum([t, *d])
    return [Segment(round(edges[i], 6), round(edges[i + 1], 6), i + 1) for i in range(4)]


def test_predicted_tsv_reads_back_through_the_circor_reader(tmp_path):
    pcg = synth_pcg(10.0, 4000, heart_rate=85, unannotated=1.0, seed=4)
    seg = pcg_segment(pcg.waveform, 4000)
    path = tmp_path / "1_AV.tsv"
    write_tsv(path, seg.segments)
    segments, problems = read_tsv(path)
    assert problems == []
    assert segments == seg.segments
    assert "\t" in path.read_text().splitlines()[0]


def test_write_tsv_rejects_bad_segments(tmp_path):
    with pytest.raises(ValueError, match="unknown state"):
        write_tsv(tmp_path / "x.tsv", [Segment(0.0, 1.0, 7)])
    with pytest.raises(ValueError, match="before the previous"):
        write_tsv(tmp_path / "x.tsv", [Segment(0.0, 1.0, 1), Segment(0.5, 1.2, 2)])
    with pytest.raises(ValueError, match="start <= end"):
        write_tsv(tmp_path / "x.tsv", [Segment(1.0, 0.5, 1)])


def test_frames_round_trip():
    states = np.array([0, 0, 1, 1, 1, 2, 2, 3, 4, 4, 0])
    segs = frames_to_segments(states, 50)
    assert np.array_equal(segments_to_frames(segs, len(states), 50), states)


def test_clean_stretches_need_full_cycles():
    segs = ([Segment(0.0, 1.0, 0)] + cycle(1.0) + cycle(1.8) + [Segment(2.6, 3.0, 0)]
            + [Segment(3.0, 3.1, 3), Segment(3.1, 3.5, 4)]          # a partial cycle: not clean
            + cycle(3.5) + [Segment(4.3, 5.0, 0)])
    assert clean_stretches(segs, 1000) == [(1000, 2600), (3500, 4300)]
    assert clean_stretches(segs, 1000, min_cycles=2) == [(1000, 2600)]
    x = np.arange(5000.0)
    cropped = crop_to_cycles(x, 1000, segs, min_seconds=1.0)
    assert np.array_equal(cropped, np.concatenate([x[1000:2600], x[3500:4300]]))
    # too little clean audio: the recording comes back whole
    assert crop_to_cycles(x, 1000, segs, min_seconds=10.0) is x
    assert crop_to_cycles(x, 1000, [], min_seconds=0.0) is x


def test_cycle_windows_start_at_s1_and_stay_in_a_stretch():
    segs = cycle(0.0) + cycle(0.8) + cycle(1.6) + [Segment(2.4, 3.0, 0)] + cycle(3.0) + cycle(3.8)
    assert cycle_windows(segs, 1000, cycles=2) == [(0, 1600), (3000, 4600)]
    assert cycle_windows(segs, 1000, cycles=2, hop=1) == [(0, 1600), (800, 2400), (3000, 4600)]
    with pytest.raises(ValueError):
        cycle_windows(segs, 1000, cycles=0)


def test_crop_to_cycles_on_a_predicted_segmentation():
    pcg = synth_pcg(12.0, 4000, heart_rate=75, unannotated=2.0, seed=8)
    seg = pcg_segment(pcg.waveform, 4000)
    cropped = crop_to_cycles(pcg.waveform, 4000, seg.segments)
    assert 4000 * 4 < len(cropped) <= len(pcg.waveform)
