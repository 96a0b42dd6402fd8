"""Probe: do the segmenter's cycles cost the descriptors anything? Annotated (``.tsv``) against
packaged-Mamba cycles, the same descriptor model, 5-fold CV on circor-dev.

    nice -n 10 .venv/bin/python benchmarks/alignment_probe.py --data $MURMURLM_CIRCOR \\
        [--descriptors runs/characterization/descriptors.npz]

The characterization issue asks to improve the segmenter *where misaligned cycles measurably hurt
the descriptors*. This measures it: the descriptor-only model of ``characterization_cv.py``
(:func:`characterization_cv.descriptor_probabilities`: per systolic feature a class-balanced
logistic regression over each patient's mean descriptor vector, ``C`` by inner CV), fitted and scored
on the committed 5 folds with the murmur taken as present (patients with a systolic murmur), once
with the descriptors of the packaged Mamba segmenter's cycles (``--descriptors``, the cache that
``characterization_cv.py`` writes; computed here when absent) and once with those of the annotated
cycles of the murmur patients' recordings (an oracle segmentation). Macro-F1 over the classes these
patients have, pooled out of fold.

Writes ``benchmarks/results/alignment_probe.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from characterization_cv import all_descriptors, committed_folds, descriptor_probabilities  # noqa: E402

from murmurlm.data import labels as L  # noqa: E402
from murmurlm.signal.descriptors import descriptor_vector  # noqa: E402
from murmurlm.signal.heartbeat import pcg_heartbeat  # noqa: E402


def pooled_scores(dataset, folds, descriptors) -> dict[str, float]:
    from sklearn.metrics import f1_score

    by_id = dataset.by_id()
    truth = {f.name: [] for f in L.SYSTOLIC}
    said = {f.name: [] for f in L.SYSTOLIC}
    for i, fold in enumerate(folds):
        train = [by_id[p] for p in fold.train]
        test = [by_id[p] for p in fold.val if by_id[p].has_murmur("systolic")]
        probs = descriptor_probabilities(train, test, descriptors, seed=i)
        for f in L.SYSTOLIC:
            truth[f.name] += [p.labels[f.name] for p in test]
            said[f.name] += list(np.array(f.present_classes)[probs[f.name].argmax(axis=1)])
    return {f: float(f1_score(np.array(truth[f]), np.array(said[f]), labels=sorted(set(truth[f])), average="macro",
                              zero_division=0)) for f in truth}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--descriptors", type=Path, default=REPO / "runs" / "characterization" / "descriptors.npz")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    dataset, folds, _ = committed_folds(args.data)
    mamba = all_descriptors(dataset, args.descriptors.parent / "segments", args.descriptors)
    annotated = dict(mamba)  # murmur patients' recordings described on their .tsv cycles
    for p in dataset.patients:
        if p.has_murmur("systolic"):
            for r in p.recordings:
                annotated[r.name] = descriptor_vector(pcg_heartbeat(r.load_audio(), r.sampling_rate,
                                                                    r.load_segments())).astype(np.float64)
    scores = {"mamba": pooled_scores(dataset, folds, mamba), "annotated": pooled_scores(dataset, folds, annotated)}
    mean = {k: float(np.mean(list(v.values()))) for k, v in scores.items()}
    command = "nice -n 10 .venv/bin/python benchmarks/alignment_probe.py " + " ".join(argv or sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "alignment_probe.json").write_text(json.dumps({"command": command, "macro_f1": scores,
                                                               "mean": mean}, indent=2) + "\n")
    lines = ["# Alignment probe: annotated against Mamba cycles for the descriptors (5-fold CV, circor-dev)", "",
             f"Command: `{command}`", "",
             "Descriptor-only model, the murmur taken as present: macro-F1 among the patients with a systolic murmur.",
             "", "| feature | Mamba cycles (packaged) | annotated cycles (oracle) | difference |", "|---|---:|---:|---:|"]
    for f in L.SYSTOLIC:
        a, b = scores["mamba"][f.name], scores["annotated"][f.name]
        lines.append(f"| {f.name} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    lines.append(f"| mean | {mean['mamba']:.3f} | {mean['annotated']:.3f} | {mean['annotated'] - mean['mamba']:+.3f} |")
    (args.out / "alignment_probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
