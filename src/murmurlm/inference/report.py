"""A readable murmur report for one recording: the 11 features with class probabilities, heart rate
and cycles, a quality flag, as a dict (JSON) and as text (the figure: :mod:`murmurlm.inference.plot`).

Steps, NeuroKit-style: :func:`segment_recording` (the optional segmentation step),
:func:`murmurlm.signal.quality.pcg_quality` (quality), :func:`murmur_report` (assemble),
:func:`render_report` (text), :func:`murmurlm.inference.plot.plot_report` (figure), and
:func:`analyse_recording`, which only chains them after the model's prediction; the CLI
(``murmurlm predict --report``) and the service call it.

Quality flag
------------
:func:`murmurlm.signal.quality.pcg_quality` (the rules are in its module docstring);
:func:`assess_quality` takes the report's forms of a segmentation.

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
from typing import Any, Mapping, Sequence

import numpy as np

from murmurlm.data import labels as L
from murmurlm.data.circor import STATES
from murmurlm.evaluate.patients import apply_quality_rule
from murmurlm.signal import cycles as heart_cycles
from murmurlm.signal.filter import pcg_resample
from murmurlm.signal.descriptors import DESCRIPTOR_NAMES, pcg_descriptors
from murmurlm.signal.heartbeat import pcg_heartbeat
from murmurlm.signal.quality import CYCLE_RULE, pcg_quality

log = logging.getLogger(__name__)



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
# quality (murmurlm.signal.quality)


def assess_quality(waveform: np.ndarray, sampling_rate: int, segmentation: Any = None) -> dict:
    """:func:`murmurlm.signal.quality.pcg_quality` of a recording and its segmentation (any of the
    forms the report takes: a segmentation, segments, dicts or ``(start, end, state)`` tuples).

    >>> wave = np.zeros(8000, dtype=np.float32)
    >>> assess_quality(wave, 4000)["flag"]
    'poor'
    """
    return pcg_quality(waveform, sampling_rate, _segments(segmentation))


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


def clinical_label(feature: str, label: str) -> str:
    """A label as a person reads it: CirCor's ``nan`` of a character feature is "no systolic
    murmur" ("no diastolic murmur"); every other label as it is. Machines (CSV, JSON ``label``) keep
    CirCor's strings.

    >>> clinical_label("Systolic murmur timing", "nan"), clinical_label("Murmur", "Present")
    ('no systolic murmur', 'Present')
    """
    murmur = L.feature(feature).murmur
    return f"no {murmur} murmur" if murmur is not None and label == L.NO_MURMUR else label


def murmur_report(prediction: Any, segmentation: Any = None, waveform: np.ndarray | None = None,
                  sampling_rate: int | None = None, notes: Sequence[str] = (),
                  source: str | None = None, segmentation_warning: str | None = None,
                  segmentation_method: str | None = None, heartbeat: Any = None,
                  descriptors: Mapping[str, float] | None = None) -> dict:
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
    heartbeat, descriptors
        The recording's average heartbeat (:func:`murmurlm.signal.heartbeat.pcg_heartbeat`) and
        its descriptors (:func:`murmurlm.signal.descriptors.pcg_descriptors`); computed here from
        the waveform and the segments when not given.

    Returns
    -------
    dict
        ``source``, ``duration_s``, ``sampling_rate``, ``labels`` (consistent), ``features`` (one
        entry per feature: name, label, probability of that label, all class probabilities, and
        ``overridden``: the label is 'nan' because Murmur is not Present or the murmur's timing is
        'nan', whatever this feature's own probabilities say; its probability is then None),
        ``segmentation`` (available, heart_rate_bpm, cycles, segments), ``quality``,
        ``heartbeat`` (reliable, cycles kept and rejected, the descriptors of
        :mod:`murmurlm.signal.descriptors`; None without a waveform) and ``warnings``.
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
            "display": clinical_label(f.name, label),
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
    beat_info = None
    if waveform is not None and sampling_rate:
        duration = round(len(waveform) / sampling_rate, 3)
        if heartbeat is None:
            heartbeat = pcg_heartbeat(waveform, sampling_rate, segments)
        quality = pcg_quality(waveform, sampling_rate, segments, heartbeat=heartbeat)
        if quality["flag"] == "poor":
            why = f" ({quality['reason']})" if quality.get("reason") else ""
            warnings.append(f"poor recording quality{why}: {quality['detail']}; predictions are unreliable")
        beat_info = heartbeat_summary(heartbeat, descriptors)
        if not heartbeat.reliable:
            warnings.append(f"description unreliable: {heartbeat.n_kept} usable heart cycle(s) "
                            f"({heartbeat.fallback or 'too few'}); the average heartbeat falls back to the "
                            "whole recording")
    return {
        "source": source,
        "duration_s": duration,
        "sampling_rate": sampling_rate,
        "labels": labels,
        "features": features,
        "segmentation": seg_info,
        "quality": quality,
        "heartbeat": beat_info,
        "warnings": warnings,
    }


def heartbeat_summary(heartbeat: Any, descriptors: Mapping[str, float] | None = None) -> dict:
    """The JSON part of a heartbeat: whether it is reliable, its cycles and its descriptors
    (:func:`murmurlm.signal.descriptors.pcg_descriptors`, computed when not given; meanings in
    docs/descriptors.md)."""
    from murmurlm.signal.descriptors import pcg_descriptors

    if descriptors is None:
        descriptors = pcg_descriptors(heartbeat)
    return {"reliable": bool(heartbeat.reliable), "cycles_kept": int(heartbeat.n_kept),
            "cycles_found": int(heartbeat.found), "rejected": {k: int(v) for k, v in heartbeat.rejected.items()},
            "fallback": heartbeat.fallback or None,
            "descriptors": {k: round(float(v), 4) for k, v in descriptors.items()}}


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
    beat = report.get("heartbeat")
    if beat:
        d = beat["descriptors"]
        lines.append(f"average heartbeat: {beat['cycles_kept']} cycle(s){'' if beat['reliable'] else ', unreliable'}; "
                     f"systole vs S1 {d['sys_to_s1_db']:+.1f} dB, vs diastole {d['sys_to_dia_db']:+.1f} dB, "
                     f"systolic centroid {d['sys_centroid_hz']:.0f} Hz")
    lines.append("")
    width = max(len(f["name"]) for f in report["features"])
    lab_width = max(len("prediction"), *(len(clinical_label(f["name"], f["label"])) for f in report["features"]))
    lines.append(f"{'feature':<{width}}  {'prediction':<{lab_width}}      p  class probabilities")
    for f in report["features"]:
        p = "  -  " if f["probability"] is None else f"{f['probability']:.2f}"
        if f.get("overridden"):
            p = "  *  "
        probs = "  ".join(f"{c} {v:.2f}" for c, v in f["probabilities"].items())
        lines.append(f"{f['name']:<{width}}  {clinical_label(f['name'], f['label']):<{lab_width}}  {p:>5}  {probs}")
    if any(f.get("overridden") for f in report["features"]):
        lines.append("* no murmur to describe, because Murmur is not Present (or no such murmur was heard); "
                     "the feature's own probabilities are shown")
    if report.get("warnings"):
        lines.append("")
        lines.extend(f"warning: {w}" for w in report["warnings"])
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# the chain


ANALYSIS_RATE = 4000
"""Hz: CirCor's rate, which the segmenters, the quality check and the report's figure expect."""


@dataclass
class RecordingAnalysis:
    """What :func:`analyse_recording` found: the report, the model's prediction, the segmentation
    (``None`` when off or failed) and the waveform they were computed on, at :data:`ANALYSIS_RATE`
    (what the figure draws)."""

    report: dict
    prediction: Any
    segmentation: Any
    waveform: np.ndarray
    sampling_rate: int
    heartbeat: Any = None  # the average heartbeat (murmurlm.signal.heartbeat.Heartbeat)
    recording_probs: Any = None  # the model's class probabilities of this recording (Predictor.predict_waveform)
    descriptor_vector: Any = None  # its heartbeat's descriptors, in DESCRIPTOR_NAMES order


def analyse_recording(model: Any, waveform: np.ndarray, sampling_rate: int, segment: bool = True,
                      segment_method: str = "mamba", notes: Sequence[str] = (),
                      source: str | None = None) -> RecordingAnalysis:
    """Predict, segment and report one recording, at the file's own rate.

    ``model`` is a loaded predictor (:func:`murmurlm.inference.predict.load_model`). Each consumer
    resamples the recording once, from its own rate: the model's front end to its rate (2 kHz), the
    segmentation and the report to :data:`ANALYSIS_RATE` (a note says so when the rates differ).
    """
    from murmurlm.inference.predict import predict_recording

    original, original_rate = waveform, sampling_rate
    notes = list(notes)
    if sampling_rate != ANALYSIS_RATE:
        waveform = pcg_resample(np.asarray(waveform, dtype=np.float64), sampling_rate, ANALYSIS_RATE).astype(np.float32)
        notes.append(f"resampled from {sampling_rate} Hz to {ANALYSIS_RATE} Hz")
        sampling_rate = ANALYSIS_RATE
    segmentation, warning = (None, "segmentation switched off") if not segment else \
        segment_recording(waveform, sampling_rate, segment_method)
    heartbeat = pcg_heartbeat(waveform, sampling_rate, _segments(segmentation))
    values = pcg_descriptors(heartbeat)  # once: for the report and, below, for the descriptor head
    # the descriptor head was fitted on Mamba cycles: this heartbeat serves it when it has them
    # (one segmentation per recording); otherwise predict_recording makes its own
    shared = segment_method == "mamba" and segmentation is not None
    described = np.array([values[n] for n in DESCRIPTOR_NAMES], dtype=np.float64)
    probs = model.predict_waveform(original, original_rate)
    prediction = predict_recording(model, original, original_rate, descriptors=described if shared else None,
                                   probs=probs)
    report = murmur_report(prediction, segmentation, waveform, sampling_rate, notes=notes,
                           source=source, segmentation_warning=warning, segmentation_method=segment_method,
                           heartbeat=heartbeat, descriptors=values)
    prediction, reason = apply_quality_rule(prediction, [report["quality"]])
    if reason is not None:  # the one quality rule: an unusable recording is answered Unknown, and says why
        report = murmur_report(prediction, segmentation, waveform, sampling_rate,
                               notes=[*notes, f"Murmur: Unknown, because {reason}"], source=source,
                               segmentation_warning=warning, segmentation_method=segment_method,
                               heartbeat=heartbeat, descriptors=values)
    return RecordingAnalysis(report, prediction, segmentation, waveform, sampling_rate, heartbeat, probs, described)


@dataclass
class PatientAnalysis:
    """One patient recorded at several sites: the patient report, its prediction, and each site's
    :class:`RecordingAnalysis` (in input order)."""

    report: dict
    prediction: Any
    sites: list[tuple[str, RecordingAnalysis]]


def analyse_patient(model: Any, recordings: Sequence[tuple[str, np.ndarray, int, Sequence[str], str]],
                    segment: bool = True, segment_method: str = "mamba") -> PatientAnalysis:
    """One patient from its recordings at several auscultation sites: ``recordings`` are
    ``(site, waveform, sampling rate, notes, source name)``. Each site is analysed as
    :func:`analyse_recording` does; the patient answer aggregates them as a CirCor folder
    prediction does (:meth:`murmurlm.inference.predict.Predictor.aggregate`: the 11 features, the
    descriptor head on the mean of the sites' heartbeats, ``Murmur locations`` and ``Most audible
    location`` from each site's P(Murmur=Present), Outcome).

    The report holds the patient's ``features`` (as :func:`murmur_report`), ``murmur_locations``
    (the sites, and each recorded site's probability that the murmur is heard there),
    ``most_audible_location``, ``outcome``, one ``sites`` entry per recording (site, source,
    quality, heart rate, P(murmur heard), heard or not, its warnings) and ``warnings``.
    """
    if not recordings:
        raise ValueError("analyse_patient: no recordings")
    from murmurlm.evaluate.patients import locate_murmur

    analyses = [(site, analyse_recording(model, wave, rate, segment, segment_method, notes, source))
                for site, wave, rate, notes, source in recordings]
    probs = [a.recording_probs for _, a in analyses]
    descriptors = None
    if getattr(model, "descriptor_head", None) is not None:
        descriptors = np.mean([a.descriptor_vector for _, a in analyses], axis=0)[None]
    sites = [site for site, _ in analyses]
    prediction = model.aggregate(probs, descriptors, locations=sites)
    prediction, reason = apply_quality_rule(prediction, [a.report.get("quality") or {} for _, a in analyses])
    base = murmur_report(prediction)
    _, _, heard_p = locate_murmur(probs, sites, "Present")
    heard = set(L.parse_locations(prediction.labels.get(L.MURMUR_LOCATIONS_NAME, L.NO_MURMUR)))
    present = L.MURMUR.classes.index("Present")
    site_entries, warnings = [], []
    for site, a in analyses:
        rep = a.report
        seg = rep.get("segmentation") or {}
        site_entries.append({
            "site": site, "source": rep.get("source"), "duration_s": rep.get("duration_s"),
            "quality": (rep.get("quality") or {}).get("flag"), "heart_rate_bpm": seg.get("heart_rate_bpm"),
            "cycles": seg.get("cycles"), "p_murmur_heard": round(float(a.recording_probs[L.MURMUR.name][present]), 4),
            "heard": site in heard, "warnings": list(rep.get("warnings", []))})
        warnings += [f"{site} ({rep.get('source')}): {w}" for w in rep.get("warnings", [])]
    if reason is not None:
        warnings.insert(0, f"Murmur: Unknown, because {reason}")
    outcome = None
    if L.OUTCOME.name in prediction.labels:
        outcome = {"label": prediction.labels[L.OUTCOME.name],
                   "probabilities": {c: round(float(v), 4) for c, v in
                                     zip(L.OUTCOME.classes, prediction.probabilities[L.OUTCOME.name])}}
    report = {"labels": base["labels"], "features": base["features"],
              "murmur_locations": {"label": prediction.labels.get(L.MURMUR_LOCATIONS_NAME, L.NO_MURMUR),
                                   "sites": {k: round(v, 4) for k, v in heard_p.items()}},
              "most_audible_location": prediction.labels.get(L.MOST_AUDIBLE_LOCATION.name, L.NO_MURMUR),
              "outcome": outcome, "sites": site_entries, "warnings": warnings}
    return PatientAnalysis(report, prediction, analyses)


def render_patient_report(report: Mapping[str, Any]) -> str:
    """A patient report (:func:`analyse_patient`) as plain text: the sites, then the features."""
    lines = [f"murmurlm patient report: {len(report['sites'])} site(s)"]
    for s in report["sites"]:
        hr = s["heart_rate_bpm"]
        lines.append(f"  {s['site']}: {s['source']}, quality {s['quality'] or 'unknown'}, heart rate "
                     f"{'unknown' if hr is None else f'{hr:.0f} bpm'}, murmur heard here "
                     f"{'yes' if s['heard'] else 'no'} (p {s['p_murmur_heard']:.2f})")
    sites = report["murmur_locations"]["label"]
    lines.append(f"murmur heard at: {'none' if sites == L.NO_MURMUR else sites.replace('+', ', ')}; most audible at: "
                 f"{'none' if report['most_audible_location'] == L.NO_MURMUR else report['most_audible_location']}")
    if report.get("outcome"):
        o = report["outcome"]
        lines.append(f"outcome: {o['label']} (p {o['probabilities'][o['label']]:.2f})")
    body = render_report({"features": report["features"], "warnings": report["warnings"]}).splitlines()
    return "\n".join(lines + body[2:])
