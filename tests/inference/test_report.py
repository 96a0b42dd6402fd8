"""The murmur report: consistent labels, probabilities, heart rate and cycles, the quality flag
(:func:`murmurlm.signal.quality.pcg_quality`, tested in tests/signal/test_quality.py) and the text;
the figure is tests/inference/test_plot.py."""

from __future__ import annotations

import numpy as np
import pytest

from murmurlm.data import labels as L
from murmurlm.inference.report import (
    CYCLE_RULE, SegmentView, analyse_recording, assess_quality, murmur_report, render_report,
)
from murmurlm.signal.cycles import complete_cycles
from murmurlm.signal.quality import pcg_quality
from murmurlm.signal.synth import MurmurSpec, synth_pcg
from predict_helpers import tiny_predictor


def uniform_probs(**overrides):
    probs = {f.name: np.full(f.num_classes, 1.0 / f.num_classes) for f in L.FEATURES}
    probs.update({k.replace("_", " ").capitalize(): np.asarray(v, float) for k, v in overrides.items()})
    return probs


@pytest.fixture(scope="module")
def pcg():
    spec = MurmurSpec("systolic", "Holosystolic", "Plateau", "II/VI", "Medium", "Blowing")
    return synth_pcg(12.0, 4000, heart_rate=75, murmurs=[spec], seed=2)


def test_labels_are_made_consistent():
    probs = uniform_probs(murmur=[0.1, 0.1, 0.8], systolic_murmur_timing=[0.0, 0.1, 0.7, 0.1, 0.1])
    report = murmur_report(probs)
    assert report["labels"]["Murmur"] == "Absent"
    assert all(report["labels"][f.name] == L.NO_MURMUR for f in (*L.SYSTOLIC, *L.DIASTOLIC))
    timing = report["features"][1]
    assert timing["probabilities"]["Holosystolic"] == pytest.approx(0.7)
    assert timing["overridden"] and timing["probability"] is None  # nan because Murmur is Absent
    assert not report["features"][0]["overridden"]
    text = render_report(report)
    assert "* no murmur to describe, because Murmur is not Present" in text
    line = next(x for x in text.splitlines() if x.startswith("Systolic murmur timing"))
    assert line[len("Systolic murmur timing"):].lstrip().startswith("no systolic murmur")  # words, not CirCor's nan
    assert timing["label"] == "nan" and timing["display"] == "no systolic murmur"  # machines keep CirCor's
    present = murmur_report(uniform_probs(murmur=[0.8, 0.1, 0.1], systolic_murmur_timing=[0.0, 0.1, 0.7, 0.1, 0.1]))
    assert present["labels"]["Systolic murmur timing"] == "Holosystolic"


def test_prediction_object_labels_are_used():
    class Pred:
        labels = {f.name: f.classes[-1] for f in L.FEATURES}
        probabilities = uniform_probs()

    report = murmur_report(Pred())
    assert report["labels"] == Pred.labels


def test_bad_probabilities_are_refused():
    probs = uniform_probs()
    del probs["Diastolic murmur quality"]
    with pytest.raises(ValueError, match="Diastolic murmur quality"):
        murmur_report(probs)
    with pytest.raises(ValueError, match="3 classes"):
        murmur_report(uniform_probs(murmur=[0.5, 0.5]))


def test_complete_cycles_need_the_four_states_in_order():
    segs = [SegmentView(0.0, 0.1, 1), SegmentView(0.1, 0.4, 2), SegmentView(0.4, 0.5, 3), SegmentView(0.5, 0.9, 4),
            SegmentView(0.9, 1.0, 1), SegmentView(1.0, 1.3, 2), SegmentView(1.5, 1.6, 3), SegmentView(1.6, 2.0, 4),
            SegmentView(2.0, 2.1, 1), SegmentView(2.1, 2.4, 2), SegmentView(2.4, 2.5, 3), SegmentView(2.5, 2.9, 4)]
    # the second cycle has a 0.2 s hole between systole and S2
    assert complete_cycles(segs, CYCLE_RULE) == [(0.0, 0.9), (2.0, 2.9)]


def test_report_with_segmentation_and_its_text(pcg):
    report = murmur_report(uniform_probs(murmur=[0.7, 0.1, 0.2]), pcg.segments, pcg.waveform, 4000,
                           notes=["resampled from 8000 Hz to 4000 Hz"], source="synthetic.wav")
    seg = report["segmentation"]
    assert seg["available"] and seg["cycles"] >= 12
    assert seg["heart_rate_bpm"] == pytest.approx(75, abs=5)  # from the cycle lengths
    assert report["warnings"] == ["resampled from 8000 Hz to 4000 Hz"]
    text = render_report(report)
    assert text.splitlines()[0] == "murmurlm report for synthetic.wav: 12.0 s at 4000 Hz"
    assert f"{seg['cycles']} complete cycle(s)" in text
    for name in L.FEATURE_NAMES:
        assert name in text


def test_report_without_segmentation_says_so(pcg):
    report = murmur_report(uniform_probs(), None, pcg.waveform, 4000, segmentation_warning="segmentation unavailable")
    assert report["segmentation"] == {"available": False, "heart_rate_bpm": None, "cycles": None, "segments": []}
    assert "segmentation unavailable" in report["warnings"]
    assert report["quality"]["method"] == "energy"
    assert "heart rate: unknown (no segmentation)" in render_report(report)


def test_analyse_recording_chains_the_steps(pcg):
    found = analyse_recording(tiny_predictor(), pcg.waveform, 4000, source="x")
    report, prediction, segmentation = found.report, found.prediction, found.segmentation
    assert found.sampling_rate == 4000 and found.waveform is pcg.waveform  # at CirCor's rate: not resampled
    assert report["labels"] == {f.name: prediction.labels[f.name] for f in L.FEATURES}
    # the segmenter ships with the package: a clean synthetic PCG must be segmented, not warned about
    assert segmentation is not None, report["warnings"]
    assert not any(w.startswith("segmentation") for w in report["warnings"])
    assert report["segmentation"]["available"] is True
    assert report["segmentation"]["heart_rate_bpm"] == pytest.approx(75, abs=8)
    assert report["quality"]["method"] == "cycles"
    skipped = analyse_recording(tiny_predictor(), pcg.waveform, 4000, segment=False)
    assert skipped.segmentation is None and "segmentation switched off" in skipped.report["warnings"]


def test_analyse_recording_resamples_once_per_consumer():
    """A 44.1 kHz recording: the model resamples it once (44.1 k -> its 2 k), not via 4 kHz; the
    segmentation and the report get their own single resample to 4 kHz, and say so."""
    from murmurlm.inference.predict import predict_recording
    from murmurlm.signal.filter import pcg_resample
    from murmurlm.signal.synth import synth_pcg

    wave = synth_pcg(6.0, 44100, heart_rate=75, seed=1).waveform
    model = tiny_predictor()
    found = analyse_recording(model, wave, 44100, segment=False)
    direct = predict_recording(model, wave, 44100)
    via_4k = predict_recording(model, pcg_resample(wave.astype(np.float64), 44100, 4000).astype(np.float32), 4000)
    for f in L.FEATURES:
        np.testing.assert_array_equal(found.prediction.probabilities[f.name], direct.probabilities[f.name])
    assert any(not np.array_equal(direct.probabilities[f.name], via_4k.probabilities[f.name]) for f in L.FEATURES)
    assert found.sampling_rate == 4000 and len(found.waveform) == 6 * 4000
    assert "resampled from 44100 Hz to 4000 Hz" in found.report["warnings"]
    assert found.report["sampling_rate"] == 4000


def test_heart_rate_needs_two_complete_cycles():
    segs = [SegmentView(0.0, 0.1, 1), SegmentView(0.1, 0.4, 2), SegmentView(0.4, 0.5, 3), SegmentView(0.5, 0.9, 4)]
    report = murmur_report(uniform_probs(), segs, np.zeros(8000, np.float32), 4000)
    assert report["segmentation"]["cycles"] == 1 and report["segmentation"]["heart_rate_bpm"] is None
    assert any("heart rate unknown" in w for w in report["warnings"])
    assert report["quality"]["flag"] == "poor"


def test_assess_quality_is_pcg_quality_of_the_reports_segment_forms():
    pcg = synth_pcg(8.0, 4000, heart_rate=75, seed=5)
    dicts = [{"start": s.start, "end": s.end, "state": s.state} for s in pcg.segments]
    tuples = [(s.start, s.end, s.state) for s in reversed(pcg.segments)]
    expected = pcg_quality(pcg.waveform, 4000, pcg.segments)
    assert assess_quality(pcg.waveform, 4000, dicts) == expected
    assert assess_quality(pcg.waveform, 4000, tuples) == expected
    assert assess_quality(pcg.waveform, 4000, pcg.segments) == expected
    assert assess_quality(pcg.waveform, 4000) == pcg_quality(pcg.waveform, 4000)
    report = murmur_report(uniform_probs(), dicts, pcg.waveform, 4000)
    assert report["quality"] == expected


def test_the_report_carries_the_average_heartbeat_and_its_descriptors(pcg):
    from murmurlm.signal.descriptors import DESCRIPTOR_NAMES

    found = analyse_recording(tiny_predictor(), pcg.waveform, 4000, source="x")
    beat = found.report["heartbeat"]
    assert beat["reliable"] and beat["cycles_kept"] >= 2 and found.heartbeat.reliable
    assert list(beat["descriptors"]) == list(DESCRIPTOR_NAMES)
    assert all(np.isfinite(v) for v in beat["descriptors"].values())
    assert "average heartbeat:" in render_report(found.report)
    assert not any(w.startswith("description unreliable") for w in found.report["warnings"])


def test_silence_falls_back_and_the_report_says_the_description_is_unreliable():
    """Bad input (issue part 6): no usable cycle -> whole-recording fallback, no crash, a warning."""
    silent = np.zeros(4000 * 5, dtype=np.float32)
    found = analyse_recording(tiny_predictor(), silent, 4000)
    beat = found.report["heartbeat"]
    assert beat["reliable"] is False and beat["cycles_kept"] < 2
    assert all(np.isfinite(v) for v in beat["descriptors"].values())
    assert any(w.startswith("description unreliable") for w in found.report["warnings"])
    assert "unreliable" in render_report(found.report)
    short = analyse_recording(tiny_predictor(), np.random.default_rng(0).standard_normal(2000).astype(np.float32), 4000)
    assert short.report["heartbeat"]["reliable"] is False


def test_the_report_figure_shows_the_average_heartbeat(pcg):
    from murmurlm.inference.plot import plot_report

    found = analyse_recording(tiny_predictor(), pcg.waveform, 4000, source="x")
    fig = plot_report(found.waveform, 4000, found.report, found.segmentation, heartbeat=found.heartbeat)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("average heartbeat:") for t in titles)
    beat_ax = next(ax for ax in fig.axes if ax.get_title().startswith("average heartbeat:"))
    assert [t.get_text() for t in beat_ax.get_xticklabels()] == ["S1", "systole", "S2", "diastole"]
    plain = plot_report(found.waveform, 4000, found.report, found.segmentation)
    assert not any(ax.get_title().startswith("average heartbeat") for ax in plain.axes)


def test_an_unusable_recording_is_answered_unknown_and_says_why(pcg):
    """The one quality rule (evaluate.patients.apply_quality_rule): a silent recording (quality poor)
    is Murmur Unknown, nothing described, with the reason in the warnings; a clean one is untouched;
    a patient is Unknown only when every site is poor."""
    from murmurlm.inference.report import analyse_patient

    silent = np.zeros(4000 * 6, dtype=np.float32)
    found = analyse_recording(tiny_predictor(), silent, 4000)
    assert found.report["quality"]["flag"] == "poor"
    assert found.report["labels"]["Murmur"] == "Unknown" and found.prediction.labels["Murmur"] == "Unknown"
    assert all(found.report["labels"][f.name] == "nan" for f in (*L.SYSTOLIC, *L.DIASTOLIC))
    assert any("Murmur: Unknown, because the recording is of poor quality" in w for w in found.report["warnings"])
    clean = analyse_recording(tiny_predictor(), pcg.waveform, 4000)
    assert clean.report["quality"]["flag"] != "poor"
    assert not any(w.startswith("Murmur: Unknown") for w in clean.report["warnings"])
    both_poor = analyse_patient(tiny_predictor(), [("AV", silent, 4000, [], "a"), ("MV", silent, 4000, [], "b")])
    assert both_poor.report["labels"]["Murmur"] == "Unknown"
    assert both_poor.report["warnings"][0].startswith("Murmur: Unknown, because every recording (2)")
    one_good = analyse_patient(tiny_predictor(), [("AV", silent, 4000, [], "a"), ("MV", pcg.waveform, 4000, [], "b")])
    assert not any(w.startswith("Murmur: Unknown") for w in one_good.report["warnings"])


def test_a_recording_drowned_in_noise_is_unknown_and_the_report_says_so_in_plain_words():
    """The noise check of the quality flag (signal.quality.NOISE_CONTRAST_DB) feeds the one quality
    rule: cycles are still found under white noise 10 dB above the recording, but the heart sounds
    no longer stand out, so the answer is Unknown and the report says it was too noisy."""
    from murmurlm.signal.noise import pcg_add_noise

    pcg = synth_pcg(12.0, 4000, heart_rate=75, seed=4)
    drowned = analyse_recording(tiny_predictor(), pcg_add_noise(pcg.waveform, 4000, "white", -10.0, seed=1), 4000)
    quality = drowned.report["quality"]
    assert quality["flag"] == "poor" and quality["reason"].startswith("too noisy")
    assert quality["usable_fraction"] >= 0.6  # the cycles alone would have passed: the noise check decides
    assert drowned.report["labels"]["Murmur"] == "Unknown"
    assert any(w.startswith("Murmur: Unknown, because the recording is of poor quality (too noisy: the heart "
                            "sounds stand only") for w in drowned.report["warnings"])
    clean = analyse_recording(tiny_predictor(), pcg.waveform, 4000)
    assert clean.report["quality"]["reason"] is None and clean.report["quality"]["heart_contrast_db"] > 6.0
