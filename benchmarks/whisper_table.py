"""Side by side: several runs of ``benchmarks/whisper_lm.py`` (e.g. window lengths) in one Markdown table.

    .venv/bin/python benchmarks/whisper_table.py "5 s, 3000 steps=benchmarks/results" \
        "5 s, 1200 steps=benchmarks/results/whisper_lm_runs/w5-1200" \
        "10 s, 1200 steps=benchmarks/results/whisper_lm_runs/w10-1200" \
        --title "Whisper LM: window and training length" --out benchmarks/results/whisper_lm_windows_quality.md

Each ``NAME=FOLDER`` names a folder holding a ``whisper_lm.json`` (``whisper_lm.py --out FOLDER``).
For every run: its window and steps, training and scoring time, peak memory, the challenge murmur
weighted accuracy, mean macro-F1, systolic UAR among murmur patients, macro-F1 per feature, the
number of features where it matches the compact model, and the recall of the long-tail classes;
the compact model's column comes from the first run that was compared with one (``--compare``).
Reads only those files: nothing is trained or scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from murmurlm.data import labels as L

sys.path.insert(0, str(Path(__file__).resolve().parent))
from named_results import load_named_results, write_or_print  # noqa: E402


def load_runs(specs: list[str]) -> dict[str, dict]:
    return load_named_results(specs, "whisper_lm.json", "whisper_table", "benchmarks/whisper_lm.py")


def fmt(v, digits: int = 3) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def table(runs: dict[str, dict], title: str) -> str:
    reference = next((r["matches_compact"]["reference"] for r in runs.values() if r.get("matches_compact")), None)
    compact = next((r["models"][reference] for r in runs.values() if reference in r["models"]), None)
    names = list(runs) + ([reference] if compact else [])
    lines = [f"# {title}", "", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]

    def row(label, get, digits=3, ref=None):
        cells = [fmt(get(r), digits) for r in runs.values()]
        if compact:
            cells.append(fmt(ref(compact), digits) if ref else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("window (s)", lambda r: f"{r['window_seconds']:g}")
    row("training steps × batch", lambda r: f"{r['training']['steps']} × {r['batch_size']}")
    row("training, min wall (encoder cache included)", lambda r: r["training"]["train_wall_seconds"] / 60, 1)
    row("scoring 78 test patients, min wall", lambda r: r["predict_wall_seconds"] / 60, 1)
    row("peak resident memory, MB", lambda r: round(r["peak_rss_mb"]))
    row("final training loss (mean of 20 logs)", lambda r: r["training"]["last_loss_mean_20"])
    for key, label in [("murmur_weighted_accuracy", "Murmur weighted accuracy ↑"),
                       ("mean_macro_f1", "Mean macro-F1, 11 features ↑"),
                       ("systolic_char_uar", "Mean UAR, systolic features, murmur patients ↑")]:
        row(label, lambda r, k=key: r["models"]["whisper-lm"][k], ref=lambda m, k=key: m[k])
    for f in L.FEATURES:
        row(f"{f.name} (macro-F1)", lambda r, f=f: r["models"]["whisper-lm"]["features"][f.name]["macro_f1"],
            ref=lambda m, f=f: m["features"][f.name]["macro_f1"])
    row(f"features with macro-F1 ≥ {reference or 'compact'}'s",
        lambda r: f"{r['matches_compact']['count']} of 11" if r.get("matches_compact") else None)
    classes = list(dict.fromkeys(k for r in runs.values() for k in r["long_tail"]))
    for c in classes:
        support = next(r["long_tail"][c]["test_support"] for r in runs.values() if c in r["long_tail"])
        row(f"recall, {c} ({support} test patients)",
            lambda r, c=c: r["long_tail"].get(c, {}).get("recall"), 2,
            ref=lambda m, c=c: m["features"][c.split(": ")[0]]["recall"].get(c.split(": ", 1)[1]))
    lines += ["", "Commands:", ""]
    for name, r in runs.items():
        lines.append(f"- {name}: `{r['command']}`" + (f"; re-scored: `{r['rescore_command']}`"
                                                      if r.get("rescore_command") else ""))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=FOLDER")
    parser.add_argument("--title", default="Whisper LM runs side by side")
    parser.add_argument("--out", type=Path, default=None, help="write the table here (default: print it)")
    args = parser.parse_args(argv)
    write_or_print(table(load_runs(args.runs), args.title), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
