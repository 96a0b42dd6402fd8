"""Benchmark: does the tiny offline Qwen2-Audio learn a two-class synthetic-PCG question, and how
reliably? (The test double behind tests/models/test_qwen2_audio.py.)

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/audio_lm_tiny.py [--seeds 0 1 2] \
        [--tasks pitch timing] [--steps 130] [--lr 3e-3]

For each task and seed: build the tiny Qwen2-Audio (``build_tiny_qwen2_audio(seed=seed)``), add
LoRA (r=8 on both parts) and train the projector and LM head, on 16 synthetic 2 s windows
(``synth_pcg``, grade III/VI holosystolic murmurs; ``pitch``: High vs Low, ``timing``:
Holosystolic vs Early-systolic), full batch, AdamW; then score 12 unseen windows closed-set.
Writes ``benchmarks/results/audio_lm_tiny.json`` (one record per run: the first step with loss
< 0.05, the final loss, the test accuracy, the wall time).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from murmurlm.models.audio_lm import Example, LoraSettings
from murmurlm.models.instructions import to_model_rate
from murmurlm.models.qwen2_audio import Qwen2AudioBackend
from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio
from murmurlm.signal.synth import MurmurSpec, synth_pcg

TASKS = {
    "pitch": ("What is the pitch of the systolic murmur?", ["High", "Low"],
              lambda c: MurmurSpec(timing="Holosystolic", grade="III/VI", pitch=c)),
    "timing": ("What is the timing of the systolic murmur?", ["Holosystolic", "Early-systolic"],
               lambda c: MurmurSpec(timing=c, grade="III/VI")),
}
LORA = LoraSettings(rank=8, alpha=16, dropout=0.0, target="both",
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "fc1", "fc2"],
                    modules_to_save=["multi_modal_projector", "lm_head"])


def windows(task: str, n: int, seed0: int) -> list[Example]:
    question, classes, spec = TASKS[task]
    out = []
    for i in range(n):
        pcg = synth_pcg(2.0, 4000, murmurs=(spec(classes[i % 2]),), seed=seed0 + i)
        out.append(Example(to_model_rate(pcg.waveform, 4000, 16000), question, classes[i % 2]))
    return out


def run(task: str, seed: int, steps: int, lr: float, workdir: Path) -> dict:
    question, classes, _ = TASKS[task]
    source = build_tiny_qwen2_audio(workdir / f"tiny_{seed}", seed=seed)
    torch.manual_seed(seed)
    backend = Qwen2AudioBackend.load(source, lora=LORA)
    train, test = windows(task, 16, 100 * seed), windows(task, 12, 100 * seed + 5000)
    batch = backend.collate(train)
    optimizer = torch.optim.AdamW(backend.trainable_parameters(), lr=lr, weight_decay=0.0)
    backend.model.train()
    first_below, losses, t0 = None, [], time.time()
    for step in range(steps):
        loss = backend.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if first_below is None and losses[-1] < 0.05:
            first_below = step + 1
    probs = backend.score([e.audio for e in test], [question] * len(test), classes)
    accuracy = float(np.mean([classes[k] == e.answer for k, e in zip(probs.argmax(1), test)]))
    return {"task": task, "seed": seed, "lr": lr, "steps": steps, "first_step_loss_below_0.05": first_below,
            "final_loss": losses[-1], "test_accuracy": accuracy, "seconds": round(time.time() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--steps", type=int, default=130)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "audio_lm_tiny.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for task in args.tasks:
                records.append(run(task, seed, args.steps, args.lr, Path(tmp)))
                print(json.dumps(records[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
