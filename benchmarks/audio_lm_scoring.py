"""Benchmark: closed-set scoring speed of a trained audio-LM adapter, prompt cache on and off.

    nice -n 10 .venv/bin/python benchmarks/audio_lm_scoring.py --data $MURMURLM_CIRCOR \
        --run runs/whisper_playback [--patients 12] [--threads 1] [--out benchmarks/results]

``--run`` is a folder written by ``murmurlm finetune`` (or ``benchmarks/whisper_lm.py --runs``):
its ``adapter/``, ``config.yaml`` and ``prompts.yaml`` give the model, the audio options of scoring
(``data.eval_audio()``: windows, band mapping) and the questions; ``data.one_pass`` picks the
one-pass report scoring. The first ``--patients`` test patients of ``--split`` are scored recording
by recording twice, once each way, alternating which goes first, so that both see the same machine
load:

- **whole sequences**: every (question, candidate) decoded whole, prompt included (the reference,
  ``score_prompt_cache = False``);
- **prompt cache**: each (window, question) prompt decoded once, the candidates decoded on its
  cached keys and values (the default).

It writes ``audio_lm_scoring.json`` and ``.md`` to ``--out``: seconds per patient and real-time
factor (seconds of recording scored per second) of each, their ratio, and the largest difference
between the two ways' class probabilities (they compute the same numbers: only the float rounding
differs). Wall-clock figures on a shared machine are noisy; the ratio, measured in one run, is the
figure to quote.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from murmurlm.data.circor import load_circor
from murmurlm.data.splits import SHIPPED_SPLITS, read_split
from murmurlm.models.audio_lm import load_backend_from_adapter
from murmurlm.models.instructions import (
    load_prompts,
    load_recording,
    read_rate,
    recording_probabilities,
    recording_segments,
    report_probabilities,
)
from murmurlm.recipes.finetune_audio_lm import load_finetune_config

log = logging.getLogger("benchmarks.audio_lm_scoring")
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MODES = {"whole sequences": False, "prompt cache": True}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="a finetune run folder (adapter/, config.yaml)")
    parser.add_argument("--split", type=Path, default=SHIPPED_SPLITS / "circor-dev")
    parser.add_argument("--patients", type=int, default=12, help="the first N test patients of the split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    for need in ("adapter", "config.yaml", "prompts.yaml"):
        if not (args.run / need).exists():
            raise SystemExit(f"error: {args.run / need} not found: --run takes a murmurlm finetune run folder")

    cfg = load_finetune_config(args.run / "config.yaml")
    prompts = load_prompts(args.run / "prompts.yaml", cfg.data.features)
    audio = cfg.data.eval_audio()
    backend = load_backend_from_adapter(args.run / "adapter")
    score = report_probabilities if cfg.data.one_pass else recording_probabilities
    batch_size = cfg.train.score_batch_size

    dataset = load_circor(args.data, on_error="skip")
    split = read_split(args.split)
    known = {p.patient_id for p in dataset.patients}
    patients = dataset.subset([i for i in split.test if i in known][:args.patients]).patients

    seconds = {m: 0.0 for m in MODES}
    audio_seconds, largest_diff, same_class, answers = 0.0, 0.0, 0, 0
    recordings = [rec for p in patients for rec in p.recordings]
    rate = read_rate(audio)
    for n, rec in enumerate(tqdm(recordings, desc="score", unit="rec")):
        wave = load_recording(rec, rate)
        audio_seconds += wave.size / rate
        segments = recording_segments(rec, audio)
        probs = {}
        order = list(MODES) if n % 2 == 0 else list(MODES)[::-1]
        for mode in order:
            backend.score_prompt_cache = MODES[mode]
            backend.clear_encoder_cache()  # neither way gets the other's encoder states
            t0 = time.perf_counter()
            probs[mode] = score(backend, wave, prompts, audio, cfg.data.features, rec.location, segments,
                                batch_size)
            seconds[mode] += time.perf_counter() - t0
        for f, p in probs["prompt cache"].items():
            q = probs["whole sequences"][f]
            largest_diff = max(largest_diff, float(np.max(np.abs(p - q))))
            same_class += int(np.argmax(p) == np.argmax(q))
            answers += 1

    report = {
        "command": "nice -n 10 .venv/bin/python benchmarks/audio_lm_scoring.py "
                   + shlex.join(argv if argv is not None else sys.argv[1:]),
        "run": str(args.run), "source": str(backend.source), "one_pass": bool(cfg.data.one_pass),
        "playback": float(audio.playback), "eval_windows_per_recording": audio.max_windows,
        "threads": args.threads, "num_patients": len(patients), "num_recordings": len(recordings),
        "audio_seconds": round(audio_seconds, 1),
        "modes": {m: {"seconds": round(s, 2), "seconds_per_patient": round(s / max(1, len(patients)), 3),
                      "real_time_factor": round(audio_seconds / s, 2) if s else None}
                  for m, s in seconds.items()},
        "speedup": round(seconds["whole sequences"] / seconds["prompt cache"], 2) if seconds["prompt cache"] else None,
        "largest_probability_difference": largest_diff,
        "same_most_probable_class": f"{same_class} of {answers}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audio_lm_scoring.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Audio-LM closed-set scoring: prompt cache on and off", "",
             f"`{report['command']}`", "",
             f"{report['num_patients']} test patients ({report['num_recordings']} recordings, "
             f"{report['audio_seconds']} s of audio) of `{args.split.name}`, adapter `{args.run / 'adapter'}` "
             f"({'one-pass report' if report['one_pass'] else '11 questions'}, playback x{report['playback']:g}, "
             f"{report['eval_windows_per_recording']} windows per recording), {args.threads} thread(s).", "",
             "| scoring | s per patient | x real time |", "|---|---:|---:|"]
    for m, r in report["modes"].items():
        lines.append(f"| {m} | {r['seconds_per_patient']:.2f} | {r['real_time_factor']:.1f} |")
    lines += ["", f"Prompt cache: {report['speedup']}x faster in this run. Largest difference between the "
              f"two ways' class probabilities: {largest_diff:.2e}; same most probable class in "
              f"{report['same_most_probable_class']} (recording, feature) answers.", ""]
    (args.out / "audio_lm_scoring.md").write_text("\n".join(lines))
    log.info("wrote %s and %s", args.out / "audio_lm_scoring.json", args.out / "audio_lm_scoring.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
