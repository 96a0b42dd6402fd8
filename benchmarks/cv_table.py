"""Side by side: several 5-fold CV results of ``benchmarks/compact_cv.py`` in one Markdown table.

    .venv/bin/python benchmarks/cv_table.py none=benchmarks/results/cv/none-s0 \
        annotated=benchmarks/results/cv/annotated predicted=benchmarks/results/cv/predicted \
        --title "Preprocessing ablation" --out benchmarks/results/preprocess_ablation_cv.md

Each ``NAME=FOLDER`` names a folder holding a ``compact_cv.json`` (``compact_cv.py --out FOLDER``).
For every run: the challenge murmur weighted accuracy before and after its murmur scale (tuned on
its pooled inner-validation patients), the mean macro-F1 over the 11 features, the mean UAR of the
systolic features among murmur patients, and the macro-F1 of every feature (with the murmur scale);
then the commands that produced the runs. Reads only those files: nothing is trained or predicted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from murmurlm.data import labels as L

sys.path.insert(0, str(Path(__file__).resolve().parent))
from named_results import load_named_results, write_or_print  # noqa: E402


def load_runs(specs: list[str]) -> dict[str, dict]:
    return load_named_results(specs, "compact_cv.json", "cv_table", "benchmarks/compact_cv.py")


def fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def table(runs: dict[str, dict], title: str) -> str:
    names = list(runs)
    head = "| 5-fold CV, pooled out-of-fold | " + " | ".join(names) + " |"
    rule = "|---|" + "---:|" * len(names)
    rows = []

    def row(label, get):
        rows.append(f"| {label} | " + " | ".join(fmt(get(r)) for r in runs.values()) + " |")

    row("Murmur weighted accuracy, murmur scale ↑", lambda r: r["cv"]["compact-scaled"]["murmur_weighted_accuracy"])
    row("Murmur weighted accuracy, no scale ↑", lambda r: r["cv"]["compact"]["murmur_weighted_accuracy"])
    row("Mean macro-F1, 11 features ↑", lambda r: r["cv"]["compact-scaled"]["mean_macro_f1"])
    row("Mean UAR, systolic features, murmur patients ↑", lambda r: r["cv"]["compact-scaled"]["systolic_char_uar"])
    for f in L.FEATURES:
        row(f"{f.name} (macro-F1)", lambda r, f=f: r["cv"]["compact-scaled"]["features"][f.name]["macro_f1"])
    first = next(iter(runs.values()))
    row("majority baseline: weighted accuracy", lambda r: r["cv"]["baseline-majority"]["murmur_weighted_accuracy"])
    lines = [f"# {title}", "",
             f"{first['k']}-fold patient-wise CV on {first['data']} ({first['num_patients']} patients, folds "
             f"{first['folds_source']}); each patient predicted once by a fold model that never saw it.", "",
             head, rule, *rows, "", "Runs:", ""]
    for name, r in runs.items():
        lines.append(f"- **{name}** ({r['results_folder']}): `{r['command']}` (murmur scale "
                     f"{r['murmur_scale']['scale']})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=FOLDER with a compact_cv.json")
    parser.add_argument("--title", default="Compact model: cross-validation runs side by side")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (default: print)")
    args = parser.parse_args(argv)
    write_or_print(table(load_runs(args.runs), args.title), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
