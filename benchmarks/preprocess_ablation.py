"""Ablation: the compact model's per-feature macro-F1 with preprocess none, annotated and predicted.

    nice -n 10 .venv/bin/python benchmarks/preprocess_ablation.py --data ../shared/circor-dev \
        --segmenter mamba --mirror /tmp/circor-predicted epochs=8

- ``none``: whole recordings;
- ``annotated``: ``front_end.preprocess=annotated`` — each recording cropped to the stretch its CirCor
  ``.tsv`` annotates;
- ``predicted``: the same crop, but from a segmentation predicted by ``pcg_segment`` (``--segmenter``).
  It runs ``preprocess=annotated`` on a mirror of the dataset (``--mirror``, outside the repository:
  symbolic links to the audio, headers and labels, and predicted ``.tsv`` files in place of CirCor's),
  so the compact recipe needs no change and the crop rule is identical for both options.

Each option trains ``recipes/train_compact.py`` (``murmurlm train``) on ``--split`` with the same
config, seed and extra ``key=value`` overrides, and reads the validation macro-F1 per feature from
the run's ``summary.json``. Writes ``benchmarks/results/preprocess_ablation.json|md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_mirror(data: Path, mirror: Path, method: str) -> int:
    """Mirror ``data`` into ``mirror`` with predicted ``.tsv`` files; returns the number written."""
    from tqdm.auto import tqdm

    from murmurlm.data.circor import find_data_folder, read_audio
    from murmurlm.signal.segment import pcg_segment, write_tsv

    src = find_data_folder(data)
    dst = mirror / "training_data"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("training_data.csv",):
        if (data / name).exists() and not (mirror / name).exists():
            os.symlink((data / name).resolve(), mirror / name)
    written = 0
    audio = sorted(p for p in src.iterdir() if p.suffix in (".wav", ".flac"))
    for f in src.iterdir():
        if f.suffix != ".tsv" and not (dst / f.name).exists():
            os.symlink(f.resolve(), dst / f.name)
    for path in tqdm(audio, desc=f"predict .tsv ({method})"):
        target = dst / f"{path.stem}.tsv"
        if target.exists():
            continue
        import soundfile as sf

        seg = pcg_segment(read_audio(path, mono=True), sf.info(str(path)).samplerate, method=method)
        write_tsv(target, seg.segments)
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "circor-dev")
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "circor-dev")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "compact" / "default.yaml")
    parser.add_argument("--segmenter", default="mamba", help="springer or mamba (the shipped model)")
    parser.add_argument("--mirror", type=Path, default=Path("/tmp/murmurlm-circor-predicted"))
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
        data = args.data
        preprocess = option
        if option == "predicted":
            t0 = time.time()
            n = build_mirror(args.data, args.mirror, args.segmenter)
            print(f"mirror {args.mirror}: {n} predicted .tsv written in {time.time() - t0:.0f} s", flush=True)
            data, preprocess = args.mirror, "annotated"
        out = args.runs / option
        cmd = [str(REPO / ".venv" / "bin" / "murmurlm"), "train", "--config", str(args.config), "--data", str(data),
               "--out", str(out), "--split", str(args.split), "--no-progress",
               f"front_end.preprocess={preprocess}", *args.overrides]
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
