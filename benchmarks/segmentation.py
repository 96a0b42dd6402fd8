"""Benchmark the heart-cycle segmenters on circor-dev's validation patients.

    nice -n 10 .venv/bin/python benchmarks/segmentation.py --data ../shared/circor-dev \
        --patients splits/circor-dev/val.txt --model mamba=src/murmurlm/assets/segmenter-mamba.pt

For each segmenter: S1/S2 event F1 (60 ms), frame accuracy per state, agreement on clean stretches
(state 0 vs annotated), heart-rate error against the annotation, and speed — seconds per minute of
audio on one CPU core (``torch.set_num_threads(1)``), both over the whole validation run and as the
best of five runs on one 60 s recording (less sensitive to other jobs on a shared machine).
Writes ``benchmarks/results/segmentation.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def timing_one_minute(model, method: str, recording) -> tuple[float, float]:
    """Best of 5: wall-clock and CPU (process) seconds to segment 60 s of audio (the recording tiled
    to a minute). On a shared machine the CPU time is the steadier figure of one core's cost."""
    from murmurlm.signal.segment import pcg_segment

    wave = recording.load_audio()
    minute = np.tile(wave, int(np.ceil(60 * recording.sampling_rate / len(wave))))[: 60 * recording.sampling_rate]
    best_wall = best_cpu = float("inf")
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        pcg_segment(minute, recording.sampling_rate, method=method, model=model)
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "circor-dev")
    parser.add_argument("--patients", type=Path, default=REPO / "splits" / "circor-dev" / "val.txt")
    parser.add_argument("--model", action="append", default=[],
                        help="NAME=PATH of a trained segmenter (.npz or .pt); repeatable")
    parser.add_argument("--no-default", action="store_true", help="skip the shipped Springer model")
    parser.add_argument("--four-state", action="store_true",
                        help="also score each --model decoding the four cardiac states only (no state 0)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N recordings (0: all)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "segmentation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    from murmurlm.data.circor import load_circor
    from murmurlm.data.splits import read_patient_list
    from murmurlm.signal.segment import _method_of, default_model_path, load_segmenter
    from murmurlm.signal.segment.evaluation import evaluate_segmenter

    ids = read_patient_list(args.patients)
    data = load_circor(args.data, patient_ids=ids)
    recordings = [r for r in data.recordings if r.segmentation_path is not None]
    if args.limit:
        recordings = recordings[: args.limit]
    timing_rec = max(recordings, key=lambda r: r.num_samples or 0)

    models: dict[str, object] = {}
    if not args.no_default:
        springer = load_segmenter(default_model_path("springer"))
        models["springer"] = springer
        four = load_segmenter(default_model_path("springer"))
        four.use_unannotated = False
        models["springer-4state"] = four
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = load_segmenter(Path(path))
        if args.four_state:
            four = load_segmenter(Path(path))
            four.use_unannotated = False
            models[f"{name}-4state"] = four

    results = {}
    for name, model in models.items():
        method = _method_of(model)
        r = evaluate_segmenter(model, recordings, method=method)
        summary = r.summary()
        wall, cpu = timing_one_minute(model, method, timing_rec)
        summary["seconds_per_minute_best_of_5"] = round(wall, 4)
        summary["cpu_seconds_per_minute_best_of_5"] = round(cpu, 4)
        summary["method"] = method
        results[name] = summary
        print(name, json.dumps(summary))

    meta = {
        "data": str(args.data), "patients_file": str(args.patients), "patients": len(data.patients),
        "recordings": len(recordings), "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, shared 2-core CPU",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")

    cols = [("S1 F1", "s1_f1"), ("S2 F1", "s2_f1"), ("frame acc", "frame_accuracy"),
            ("acc 0", "frame_accuracy_unannotated"), ("acc S1", "frame_accuracy_S1"),
            ("acc sys", "frame_accuracy_systole"), ("acc S2", "frame_accuracy_S2"),
            ("acc dia", "frame_accuracy_diastole"), ("clean acc", "clean_accuracy"), ("clean IoU", "clean_iou"),
            ("HR err (bpm, median)", "heart_rate_median_abs_error_bpm"),
            ("s / audio min (run)", "seconds_per_audio_minute"), ("s / audio min (best of 5)", "seconds_per_minute_best_of_5"),
            ("CPU s / audio min (best of 5)", "cpu_seconds_per_minute_best_of_5")]
    lines = [f"# Segmentation benchmark ({meta['date']})", "",
             f"{meta['recordings']} recordings of {meta['patients']} validation patients "
             f"({args.patients.name}), one CPU thread. Event F1: S1/S2 centres within 60 ms, scored inside "
             "the annotated stretches; frame accuracies on 20 ms frames; clean = state 0 vs annotated.", "",
             "| segmenter | " + " | ".join(c for c, _ in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name, s in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{s.get(k, float('nan')):.3f}" if isinstance(s.get(k), float)
                                                  else str(s.get(k, "")) for _, k in cols) + " |")
    lines += ["", "Command: `nice -n 10 .venv/bin/python benchmarks/segmentation.py " + " ".join(sys.argv[1:]) + "`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
