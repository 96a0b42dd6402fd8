"""Benchmark: heart-cycle segmenters under noise, on patients no segmenter trained on (the noise issue).

    nice -n 10 .venv/bin/python benchmarks/segmentation_noise.py --data $MURMURLM_CIRCOR \
        --model packaged=src/murmurlm/assets/segmenter-mamba.pt --model noise=runs/segment-mamba-noise/model.pt \
        [--patients splits/circor-dev/test.txt] [--kinds pink,white,...] [--snrs 10,5,0]

The packaged Mamba segmenter was trained on ``splits/circor-dev/train.txt`` and selected on
``val.txt``; a noise-augmented one (``configs/segment/mamba-noise.yaml``) on the same patients. Both,
and the packaged Springer segmenter, segment the recordings of the ``test.txt`` patients clean and
with each noise type at each SNR (against the recording's own RMS, seeded by recording, type and SNR;
the ambient bank is cut from these test patients' unannotated stretches and Unknown patients, speech
is espeak-ng's). Scored against the ``.tsv`` files: S1 and S2 event F1 (60 ms), frame accuracy, and
the segmentations that raised. Writes ``benchmarks/results/segmentation_noise.{json,md}`` after
every condition.
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
import torch

REPO = Path(__file__).resolve().parents[1]

from murmurlm.data import labels as L  # noqa: E402
from murmurlm.data.circor import load_circor  # noqa: E402
from murmurlm.data.splits import read_patient_list  # noqa: E402
from murmurlm.signal.noise import NOISE_TYPES, circor_noise_bank, espeak_speech_bank, pcg_add_noise  # noqa: E402
from murmurlm.signal.segment import pcg_segment  # noqa: E402
from murmurlm.signal.segment.mamba import load_mamba_segmenter  # noqa: E402
from murmurlm.signal.segment.metrics import SegmentationCounts, score_segmentation  # noqa: E402

log = logging.getLogger("benchmarks.segmentation_noise")
RESULTS = REPO / "benchmarks" / "results"


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "segmentation_noise.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    names = report["segmenters"]
    lines = ["# Segmenters under noise", "", f"Command: `{report['command']}`", "",
             f"{report['patients']} patients of `{report['split']}` ({report['recordings']} recordings), which no "
             "segmenter trained on. S1 / S2 event F1 (60 ms tolerance) against the `.tsv` files; noise against each "
             f"recording's own RMS. Speech: {report['speech']}.", "",
             "| noise | SNR dB | " + " | ".join(f"{n} S1 / S2 F1" for n in names) + " | failures |",
             "|---|---:|" + "---|" * len(names) + "---:|"]
    for row in report["conditions"]:
        cells = [f"{row[n]['s1_f1']:.3f} / {row[n]['s2_f1']:.3f}" for n in names]
        lines.append(f"| {row['noise']} | {row['snr_db']} | " + " | ".join(cells) + f" | {row['failures']} |")
    (out / "segmentation_noise.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--patients", type=Path, default=REPO / "splits" / "circor-dev" / "test.txt")
    parser.add_argument("--model", action="append", default=[], help="NAME=path of a Mamba segmenter (repeatable)")
    parser.add_argument("--kinds", default=",".join(NOISE_TYPES))
    parser.add_argument("--snrs", default="10,5,0")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    ids = set(read_patient_list(args.patients))
    dataset = load_circor(args.data, on_error="skip")
    patients = [p for p in dataset.patients if p.patient_id in ids]
    recordings = [r for p in patients for r in p.recordings if r.segmentation_path is not None]
    segmenters = {name: ("mamba", load_mamba_segmenter(path))
                  for name, path in (m.split("=", 1) for m in args.model)}
    segmenters["springer (packaged)"] = ("springer", None)
    banks = {"ambient": circor_noise_bank(recordings, unknown_patients=[p for p in patients
                                                                      if p.labels[L.MURMUR.name] == "Unknown"])}
    try:
        banks["speech"] = espeak_speech_bank(4000)
        speech = "espeak-ng"
    except (FileNotFoundError, OSError) as err:
        speech = f"the synthetic voice ({err})"
    report = {"command": "nice -n 10 .venv/bin/python benchmarks/segmentation_noise.py " + " ".join(argv or sys.argv[1:]),
              "split": str(args.patients.relative_to(REPO) if args.patients.is_relative_to(REPO) else args.patients),
              "patients": len(patients), "recordings": len(recordings), "speech": speech,
              "segmenters": list(segmenters), "conditions": []}
    conditions = [(None, None)] + [(k, float(s)) for k in args.kinds.split(",") for s in args.snrs.split(",")]
    for kind, snr in conditions:
        t0 = time.perf_counter()
        counts = {n: SegmentationCounts() for n in segmenters}
        failures = []
        for rec in recordings:
            wave = rec.load_audio()
            if kind is not None:
                wave = pcg_add_noise(wave, rec.sampling_rate, kind, snr, seed=zlib.crc32(f"{rec.name}/{kind}/{snr}".encode()),
                                     bank=banks.get(kind))
            reference, duration = rec.load_segments(), len(wave) / rec.sampling_rate
            for name, (method, model) in segmenters.items():
                try:
                    seg = pcg_segment(wave, rec.sampling_rate, method=method, model=model)
                except Exception as err:  # counted: the target is zero
                    failures.append(f"{rec.name} {name}: {type(err).__name__}: {err}")
                    continue
                counts[name] = counts[name] + score_segmentation(reference, seg.segments, duration, seg.frame_rate)
        row = {"noise": kind or "clean", "snr_db": "–" if snr is None else f"{snr:g}", "failures": len(failures),
               "failure_examples": failures[:5], "seconds": round(time.perf_counter() - t0, 1)}
        row.update({n: c.summary() for n, c in counts.items()})
        report["conditions"].append(row)
        write(report, args.out)
        log.info("%s %s: %s (%.0f s)", row["noise"], row["snr_db"],
                 ", ".join(f"{n} {row[n]['s1_f1']:.3f}/{row[n]['s2_f1']:.3f}" for n in segmenters), row["seconds"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
