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

``--ablation REFERENCE[,REFERENCE...]`` lays out the audio-LM ablation instead (docs/whisper.md):
per run its steps, training and scoring cost (seconds per patient and real-time factor over
``--audio-seconds`` of test audio), the murmur weighted accuracy, mean macro-F1 and systolic UAR, the
macro-F1 of every measurable feature and the UAR among murmur patients, the number of the 6 measurable
features (Murmur and the 5 systolic ones) strictly above each reference model, and the long-tail
recalls; the reference models' columns come from the first run compared with all of them:

    .venv/bin/python benchmarks/whisper_table.py --ablation compact,compact-cnn-only --audio-seconds 6358 \
        "resample, decoder=benchmarks/results/whisper_lm_runs/w5-1200" \
        "playback x4, decoder=benchmarks/results/whisper_lm_runs/playback-decoder-1200" ... \
        --title "Audio LM ablation" --out benchmarks/results/whisper_lm_ablation_table.md
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


MEASURABLE = [L.FEATURE_NAMES[0]] + [f.name for f in L.FEATURES if f.name.startswith("Systolic")]


def ablation_table(runs: dict[str, dict], title: str, references: list[str], audio_seconds: float | None) -> str:
    """The audio-LM ablation: one column per run, then one per reference model (see the docstring)."""
    source = next((r for r in runs.values() if all(name in r["models"] for name in references)), None)
    if source is None:
        raise SystemExit(f"whisper_table: no run was compared with all of {', '.join(references)} "
                         "(whisper_lm.py --compare NAME=CSV, or --rescore with it)")
    refs = {name: source["models"][name] for name in references}
    lm = {name: r["models"]["whisper-lm"] for name, r in runs.items()}
    lines = [f"# {title}", "", "| 78 test patients | " + " | ".join(list(runs) + references) + " |",
             "|---|" + "---:|" * (len(runs) + len(references))]

    def row(label, run_value, ref_value=None, digits=3):
        cells = [fmt(run_value(name, r), digits) for name, r in runs.items()]
        cells += [fmt(ref_value(m), digits) if ref_value else "" for m in refs.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def per_patient(r):
        return r["predict_wall_seconds"] / r["num_test_patients"] if r.get("num_test_patients") else None

    row("training steps × 16", lambda n, r: r["training"]["steps"])
    row("training, min wall", lambda n, r: r["training"]["train_wall_seconds"] / 60, digits=1)
    row("peak memory, MB", lambda n, r: round(r["peak_rss_mb"]))
    row("scoring, s per patient", lambda n, r: per_patient(r), digits=1)
    if audio_seconds:
        row("scoring, × real time", lambda n, r: audio_seconds / r["predict_wall_seconds"], digits=1)
    row("eval windows per recording", lambda n, r: r.get("eval_windows"))
    for key, label in [("murmur_weighted_accuracy", "Murmur weighted accuracy"),
                       ("mean_macro_f1", "Mean macro-F1, 11 features"),
                       ("systolic_char_uar", "Mean UAR, systolic, murmur patients")]:
        row(label, lambda n, r, k=key: lm[n][k], lambda m, k=key: m[k])
    for f in MEASURABLE:
        row(f"{f}: macro-F1", lambda n, r, f=f: lm[n]["features"][f]["macro_f1"],
            lambda m, f=f: m["features"][f]["macro_f1"])
    for f in MEASURABLE[1:]:
        row(f"{f}: UAR among murmur patients", lambda n, r, f=f: lm[n]["features"][f].get("uar_murmur_patients"),
            lambda m, f=f: m["features"][f].get("uar_murmur_patients"))
    for ref_name, ref in refs.items():
        row(f"of the 6, strictly above {ref_name}",
            lambda n, r, ref=ref: sum(lm[n]["features"][f]["macro_f1"] > ref["features"][f]["macro_f1"]
                                      for f in MEASURABLE))
    classes = list(dict.fromkeys(k for r in runs.values() for k in r["long_tail"]))
    for c in classes:
        feature, cls = c.split(": ", 1)
        row(f"recall, {c}", lambda n, r, c=c: r["long_tail"].get(c, {}).get("recall"),
            lambda m, feature=feature, cls=cls: m["features"][feature]["recall"].get(cls), digits=2)
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
    parser.add_argument("--ablation", default=None, metavar="REF[,REF]",
                        help="the ablation layout, against these compared models (e.g. compact,compact-cnn-only)")
    parser.add_argument("--audio-seconds", type=float, default=None,
                        help="seconds of test audio, for the real-time factor of scoring (ablation layout)")
    args = parser.parse_args(argv)
    runs = load_runs(args.runs)
    text = (ablation_table(runs, args.title, args.ablation.split(","), args.audio_seconds) if args.ablation
            else table(runs, args.title))
    write_or_print(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
