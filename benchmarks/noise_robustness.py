"""Benchmark: noise robustness in patient-wise CV on circor-dev (the noise issue).

    nice -n 10 .venv/bin/python benchmarks/noise_robustness.py --data $MURMURLM_CIRCOR \
        --members runs/cv/default-s0,runs/cv/default-s1,runs/cv/default-s2 \
        [--folds 0,1,2,3,4] [--max-patients N] [--kinds white,pink,...] [--snrs 20,10,5,0]

For each fold of ``splits/circor-dev-5fold`` its test patients are predicted by the fold's 3-seed
ensemble of ``compact/default`` (the runs of ``benchmarks/compact_cv.py``, as
``characterization_cv.py`` uses them: no model ever saw the patients it is tested on), on clean
audio and with every noise type of :mod:`murmurlm.signal.noise` added at every SNR (against each
recording's own RMS; seeded by recording, type and SNR). The ``ambient`` noise bank is cut from the
*test* patients' own recordings (unannotated stretches and the recordings of their Unknown
patients; nothing is trained here, so no training noise is needed).

Two answers per condition, in the same run:

- **default**: today's packaged recipe, the CNN ensemble alone;
- **quality rule**: the same with the project's one quality rule
  (:func:`murmurlm.evaluate.patients.apply_quality_rule`: a patient whose recordings are all flagged
  ``poor`` by :func:`murmurlm.signal.quality.pcg_quality` on their Mamba segmentation is Unknown).

Per condition: the murmur weighted accuracy, the shares of patients answered Present and Unknown,
the mean systolic macro-F1 among murmur patients, the S1/S2 event F1 of both packaged segmenters
against the ``.tsv`` files, the share of recordings flagged ``poor``, and the segmentations that
raised (0 expected). Writes ``benchmarks/results/noise_robustness.{json,md}`` after every condition.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from characterization_cv import committed_folds, fold_predictor, with_quality_rule  # noqa: E402

from murmurlm.data import labels as L  # noqa: E402
from murmurlm.evaluate.metrics import mean_of_defined  # noqa: E402
from murmurlm.evaluate.report import evaluate_predictions  # noqa: E402
from murmurlm.signal.features import compute_features  # noqa: E402
from murmurlm.signal.noise import NOISE_TYPES, circor_noise_bank, pcg_add_noise  # noqa: E402
from murmurlm.signal.quality import pcg_quality  # noqa: E402
from murmurlm.signal.segment import pcg_segment  # noqa: E402
from murmurlm.signal.segment.metrics import SegmentationCounts, score_segmentation  # noqa: E402

log = logging.getLogger("benchmarks.noise_robustness")
RESULTS = REPO / "benchmarks" / "results"


def noisy(rec, kind: str | None, snr: float | None, bank) -> np.ndarray:
    wave = rec.load_audio()
    if kind is None:
        return wave
    seed = zlib.crc32(f"{rec.name}/{kind}/{snr}".encode())
    return pcg_add_noise(wave, rec.sampling_rate, kind, snr, seed=seed, bank=bank)


def run_condition(predictor, patients, kind, snr, bank) -> dict:
    """Both answers and the segmentation figures of one condition on one fold's test patients."""
    recs = [r for p in patients for r in p.recordings]
    waves = {r.name: noisy(r, kind, snr, bank) for r in recs}
    feats = compute_features([waves[r.name] for r in recs], [r.sampling_rate for r in recs], predictor.front_end)
    probs = dict(zip([r.name for r in recs], predictor.predict_features(feats)))
    counts = {"mamba": SegmentationCounts(), "springer": SegmentationCounts()}
    flags, failures = {}, []
    for r in recs:
        wave, reference = waves[r.name], r.load_segments()
        duration = len(wave) / r.sampling_rate
        for method in ("mamba", "springer"):
            try:
                seg = pcg_segment(wave, r.sampling_rate, method=method)
            except Exception as err:  # counted: the target is zero
                failures.append(f"{r.name} {method}: {type(err).__name__}: {err}")
                if method == "mamba":
                    flags[r.name] = "poor"
                continue
            counts[method] = counts[method] + score_segmentation(reference, seg.segments, duration, seg.frame_rate)
            if method == "mamba":
                flags[r.name] = pcg_quality(wave, r.sampling_rate, seg.segments)["flag"]
    sites = {p.patient_id: [r.location for r in p.recordings] for p in patients}
    frame = predictor.predict_patients({p.patient_id: [probs[r.name] for r in p.recordings] for p in patients},
                                       locations=sites)
    ruled = with_quality_rule(frame, patients, flags)
    return {"frames": {"default": frame, "quality rule": ruled}, "flags": flags, "failures": failures,
            "segmentation": counts}


def scores(frame: pd.DataFrame, truth: dict) -> dict:
    result = evaluate_predictions(frame, truth, bootstrap=0)
    murmur = frame[L.MURMUR.name]
    systolic = [result["features"][f.name]["characterisation"] for f in L.SYSTOLIC]
    return {"murmur_weighted_accuracy": result["headline"]["murmur_weighted_accuracy"]["value"],
            "share_present": float((murmur == "Present").mean()), "share_unknown": float((murmur == "Unknown").mean()),
            "systolic_macro_f1_murmur_patients": mean_of_defined(v["macro_f1"] for v in systolic if v)}


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "noise_robustness.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = ["# Noise robustness, patient-wise CV on circor-dev", "", f"Command: `{report['command']}`", "",
             f"Folds {report['folds']}, {report['patients']} test patients ({report['recordings']} recordings); "
             "noise against each recording's own RMS. *default*: the fold's 3-seed CNN ensemble; *quality rule*: "
             "the same, a patient whose recordings are all flagged poor answered Unknown.", "",
             "| noise | SNR dB | WA default | WA quality rule | Present (default / rule) | Unknown (default / rule) | "
             "systolic macro-F1, murmur pts | Mamba S1 / S2 F1 | Springer S1 / S2 F1 | poor | failures |",
             "|---|---:|---:|---:|---|---|---:|---|---|---:|---:|"]
    for row in report["conditions"]:
        d, q = row["default"], row["quality rule"]
        m, s = row["segmentation"]["mamba"], row["segmentation"]["springer"]
        lines.append(f"| {row['noise']} | {row['snr_db']} | {d['murmur_weighted_accuracy']:.3f} | "
                     f"{q['murmur_weighted_accuracy']:.3f} | {d['share_present']:.0%} / {q['share_present']:.0%} | "
                     f"{d['share_unknown']:.0%} / {q['share_unknown']:.0%} | {_fmt(d['systolic_macro_f1_murmur_patients'])} | "
                     f"{m.get('s1_f1', float('nan')):.3f} / {m.get('s2_f1', float('nan')):.3f} | "
                     f"{s.get('s1_f1', float('nan')):.3f} / {s.get('s2_f1', float('nan')):.3f} | "
                     f"{row['share_poor']:.0%} | {row['failures']} |")
    (out / "noise_robustness.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--members", required=True, help="comma-separated compact_cv.py run folders (one per seed)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "characterization")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--max-patients", type=int, default=None, help="per fold (smoke runs)")
    parser.add_argument("--kinds", default=",".join(NOISE_TYPES))
    parser.add_argument("--snrs", default="20,10,5,0")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    members = [Path(m) for m in args.members.split(",")]
    dataset, folds, where = committed_folds(args.data)
    by_id = dataset.by_id()
    chosen = [int(f) for f in args.folds.split(",")]
    tests = {i: [by_id[p] for p in folds[i].val][: args.max_patients] for i in chosen}
    truth = {p.patient_id: p.labels for ps in tests.values() for p in ps}
    conditions = [(None, None)] + [(k, float(s)) for k in args.kinds.split(",") for s in args.snrs.split(",")]
    report = {"command": "nice -n 10 .venv/bin/python benchmarks/noise_robustness.py " + " ".join(argv or sys.argv[1:]),
              "folds": args.folds, "split": str(where), "patients": len(truth),
              "recordings": sum(len(p.recordings) for ps in tests.values() for p in ps),
              "conditions": []}
    predictors = {i: fold_predictor(members, i, args.runs) for i in chosen}
    banks = {i: circor_noise_bank([r for p in tests[i] for r in p.recordings],
                                  unknown_patients=[p for p in tests[i] if p.labels[L.MURMUR.name] == "Unknown"])
             for i in chosen}
    for kind, snr in conditions:
        t0 = time.perf_counter()
        parts = [run_condition(predictors[i], tests[i], kind, snr, banks[i]) for i in chosen]
        row = {"noise": kind or "clean", "snr_db": "–" if snr is None else f"{snr:g}",
               "failures": sum(len(p["failures"]) for p in parts),
               "failure_examples": [f for p in parts for f in p["failures"]][:5],
               "share_poor": float(np.mean([f == "poor" for p in parts for f in p["flags"].values()]))}
        for name in ("default", "quality rule"):
            row[name] = scores(pd.concat([p["frames"][name] for p in parts]), truth)
        row["segmentation"] = {}
        for method in ("mamba", "springer"):
            total = SegmentationCounts()
            for p in parts:
                total = total + p["segmentation"][method]
            row["segmentation"][method] = total.summary()
        row["seconds"] = round(time.perf_counter() - t0, 1)
        report["conditions"].append(row)
        write(report, args.out)
        log.info("%s %s: WA %.3f / %.3f, %.1f s", row["noise"], row["snr_db"], row["default"]["murmur_weighted_accuracy"],
                 row["quality rule"]["murmur_weighted_accuracy"], row["seconds"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
