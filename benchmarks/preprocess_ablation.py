"""Ablation: the compact model's per-feature macro-F1 with preprocess none, annotated and predicted.

    nice -n 10 .venv/bin/python benchmarks/preprocess_ablation.py --data ../shared/circor-dev \
        --segmenter mamba epochs=8

- ``none``: whole recordings;
- ``annotated``: ``front_end.preprocess=annotated`` — each recording cropped to the stretch its CirCor
  ``.tsv`` annotates;
- ``predicted``: ``front_end.preprocess=predicted`` — the same crop rule, with the segmentation
  predicted by the packaged segmenter (``--segmenter``, ``front_end.segmenter``).

Each option trains ``recipes/train_compact.py`` (``murmurlm train``) on ``--split`` with the same
config, seed and extra ``key=value`` overrides, and reads the validation macro-F1 per feature from
the run's ``summary.json``. Writes ``benchmarks/results/preprocess_ablation.json|md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "circor-dev")
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "circor-dev")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "compact" / "default.yaml")
    parser.add_argument("--segmenter", default="mamba", help="springer or mamba (the shipped model)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "ablation")
    parser.add_argument("--options", default="none,annotated,predicted")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "preprocess_ablation")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (e.g. epochs=8)")
    args = parser.parse_args()

    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    results = {}
    for option in args.options.split(","):
        out = args.runs / option
        cmd = [str(REPO / ".venv" / "bin" / "murmurlm"), "train", "--config", str(args.config), "--data", str(args.data),
               "--out", str(out), "--split", str(args.split), "--no-progress",
               f"front_end.preprocess={option}", f"front_end.segmenter={args.segmenter}", *args.overrides]
        print(" ".join(cmd), flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True)
        summary = json.loads((out / "summary.json").read_text())
        val = summary["val"]
        results[option] = {"macro_f1": val["macro_f1"], "mean_macro_f1": val["mean_macro_f1"],
                           "murmur_weighted_accuracy": val["murmur_weighted_accuracy"],
                           "best_epoch": summary["best_epoch"], "minutes": round((time.time() - t0) / 60, 1)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(
            {"overrides": args.overrides, "segmenter": args.segmenter, "split": str(args.split), "results": results},
            indent=2) + "\n")

    features = list(next(iter(results.values()))["macro_f1"])
    lines = ["# Preprocessing ablation: compact model, validation macro-F1 per feature", "",
             f"Split {args.split.name} (validation patients), config {args.config.name}, overrides "
             f"`{' '.join(args.overrides) or 'none'}`; `predicted` crops with the shipped {args.segmenter} segmenter.", "",
             "| feature | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for f in features:
        cells = [results[o]["macro_f1"].get(f) for o in results]
        lines.append(f"| {f} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |")
    lines.append("| **mean macro-F1** | " + " | ".join(f"{results[o]['mean_macro_f1']:.3f}" for o in results) + " |")
    lines.append("| Murmur weighted accuracy | " + " | ".join(f"{results[o]['murmur_weighted_accuracy']:.3f}" for o in results) + " |")
    lines += ["", "Command: `nice -n 10 .venv/bin/python benchmarks/preprocess_ablation.py " + " ".join(sys.argv[1:]) + "`", ""]
    args.out.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
