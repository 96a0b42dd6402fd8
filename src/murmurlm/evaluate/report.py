"""Writing the reports of scored predictions (scoring: :mod:`murmurlm.evaluate.scoring`, whose
:func:`evaluate_predictions` returns the content of ``metrics.json`` for one model).

:func:`write_reports` writes, for one or more models side by side, ``report.md`` (with PNG
figures in ``figures/``), a self-contained ``report.html`` (the same figures embedded as base64
PNG) and ``metrics.json``.

The ``metrics.json`` layout is given in :mod:`murmurlm.evaluate.scoring`.

Examples
--------
>>> import tempfile, pathlib
>>> from murmurlm.data.labels import FEATURE_NAMES
>>> from murmurlm.evaluate.aggregate import PatientPrediction
>>> from murmurlm.evaluate.predictions import predictions_frame
>>> truth = {pid: {**dict.fromkeys(FEATURE_NAMES, "nan"), "Murmur": m, "Outcome": o}
...          for pid, m, o in [("1", "Absent", "Normal"), ("2", "Unknown", "Abnormal")]}
>>> oracle = predictions_frame({pid: PatientPrediction(dict(t)) for pid, t in truth.items()})
>>> result = evaluate_predictions(oracle, truth, bootstrap=0, name="oracle")
>>> paths = write_reports({"oracle": result}, pathlib.Path(tempfile.mkdtemp()), plots=False)
>>> "| oracle | 2 | 1.000 |" in paths["markdown"].read_text()
True
>>> sorted(p.name for p in paths.values())
['metrics.json', 'report.html', 'report.md']
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from murmurlm.data import labels as L
# scoring lives in murmurlm.evaluate.scoring; its public names stay importable from here
from murmurlm.evaluate.scoring import (HEADLINE, VIEW_METRICS, dataset_labels, evaluate_predictions,  # noqa: F401
                                       evaluate_with_baselines)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# writing


def _clean(obj):
    """JSON-safe copy: nan/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def _fmt_ci(value, ci, digits: int = 3) -> str:
    text = _fmt(value, digits)
    if value is not None and ci and ci[0] is not None:
        text += f" [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _png(fig) -> bytes:
    """A laid-out matplotlib Figure as PNG bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_confusion(cm: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> bytes:
    """A confusion-matrix PNG (rows truth, columns prediction): colour = row-normalised share,
    text = count. Rendered with matplotlib's Agg canvas (no pyplot state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(cm, dtype=np.float64)
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = 1.2 + 0.55 * k
    fig = Figure(figsize=(size + 0.6, size), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), classes, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=8)
    return _png(fig)


def plot_reliability(bins: Sequence[Mapping], title: str) -> bytes:
    """A reliability diagram PNG: per confidence bin, the share predicted right against the mean
    confidence (the diagonal is perfect calibration; dot area ~ patients in the bin)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    used = [b for b in bins if b["count"]]
    fig = Figure(figsize=(3.6, 3.4), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--")
    if used:
        conf = [b["confidence"] for b in used]
        acc = [b["accuracy"] for b in used]
        size = np.array([b["count"] for b in used], dtype=float)
        ax.plot(conf, acc, color="#1f77b4", lw=1)
        ax.scatter(conf, acc, s=20 + 180 * size / size.max(), color="#1f77b4", alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean confidence", fontsize=8)
    ax.set_ylabel("share predicted right", fontsize=8)
    ax.set_title(title, fontsize=8)
    return _png(fig)


def _feature_table(results: Mapping[str, dict], feature: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per model) of a feature's table: all patients, then the
    characterisation view; an AUROC column where any model has probabilities."""
    has_char = L.feature(feature).murmur is not None
    entries = [res["features"].get(feature) for res in results.values()]
    with_auc = any(e is not None and "auroc" in e["all"] for e in entries)
    head = ["model", "n", "accuracy", "macro-F1", "UAR"] + (["AUROC"] if with_auc else [])
    if has_char:
        head += ["n (murmur)", "accuracy (murmur)", "macro-F1 (murmur)", "UAR (murmur)"] + (
            ["AUROC (murmur)"] if with_auc else [])

    def cells(view: dict | None) -> list[str]:
        if view is None:
            return ["–"] * (4 + with_auc)
        row = [str(view["num_patients"])] + [_fmt_ci(view[k], view.get(f"{k}_ci")) for k in VIEW_METRICS]
        return row + ([_fmt(view.get("auroc"))] if with_auc else [])

    rows = []
    for name, entry in zip(results, entries):
        row = [name] + cells(entry["all"] if entry else None)
        if has_char:
            row += cells(entry["characterisation"] if entry else None)
        rows.append(row)
    return head, rows


def _per_class_rows(results: Mapping[str, dict], feature: str) -> tuple[list[str], list[list[str]]]:
    classes = list(L.feature(feature).classes)
    first = next((r["features"][feature]["all"] for r in results.values() if feature in r["features"]), None)
    head = ["model"] + [f"{c} (n={first['per_class'][c]['support']})" if first else c for c in classes]
    rows = []
    for name, res in results.items():
        if feature not in res["features"]:
            continue
        pc = res["features"][feature]["all"]["per_class"]
        rows.append([name] + [f"P {_fmt(pc[c]['precision'], 2)} / R {_fmt(pc[c]['recall'], 2)}" for c in classes])
    return head, rows


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}td{white-space:nowrap}th{background:#f0f3f8}
td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:10px}.figs figure{margin:0}
figcaption{font-size:0.75em;text-align:center;color:#555}
.note{color:#8a5a00;font-size:0.85em}
"""


def write_reports(results: Mapping[str, dict], out_dir: str | Path, title: str = "murmurlm evaluation",
                  context: Mapping[str, object] | None = None, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md`` (+ ``figures/*.png``), a self-contained ``report.html`` and
    ``metrics.json`` for one or more models side by side.

    ``results`` maps model names to :func:`evaluate_predictions` results; ``context`` (e.g. the
    data folder and patients file) is written at the top of the reports and into metrics.json.
    ``plots=False`` leaves the confusion-matrix figures out (faster). Returns {"markdown", "html", "json"} -> path.
    """
    if not results:
        raise ValueError("write_reports: no results")
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        fig_dir.mkdir(exist_ok=True)
    context = dict(context or {})
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = list(results)
    first = results[names[0]]

    json_path = out_dir / "metrics.json"
    json_path.write_text(json.dumps(_clean({"title": title, "created": created, "context": context,
                                            "models": dict(results)}), indent=1), encoding="utf-8")

    intro = [f"Created {created}. Patient-level scores; 95% bootstrap intervals in brackets "
             f"({first['bootstrap']['resamples']} resamples of patients, seed {first['bootstrap']['seed']})."]
    for key, value in context.items():
        intro.append(f"{key}: {value}")
    head_cols = list(HEADLINE)
    headline_head = ["model", "patients"] + [HEADLINE[k][0] + (" ↑" if HEADLINE[k][1] else " ↓") for k in head_cols]
    headline_rows = [[n, str(r["num_patients"])] + [_fmt_ci(r["headline"][k]["value"], r["headline"][k]["ci"])
                                                    for k in head_cols] for n, r in results.items()]
    notes = [f"{n}: {note}" for n, r in results.items() for note in r["challenge"].get("notes", [])]

    md = [f"# {title}", "", *[f"{line}  " for line in intro], "", "## Headline", "",
          _md_table(headline_head, headline_rows), ""]
    md += [f"- {note}" for note in notes] + ([""] if notes else [])
    md += ["Costs are the challenge's mean cost per patient (lower is better); 'murmur' columns are "
           "restricted to patients whose true labels have that murmur (characterisation view).", ""]
    hp = [f"<h1>{html.escape(title)}</h1>", *[f"<p>{html.escape(line)}</p>" for line in intro],
          "<h2>Headline</h2>", _html_table(headline_head, headline_rows)]
    hp += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    hp += ["<p>Costs are the challenge's mean cost per patient (lower is better); '(murmur)' columns are "
           "restricted to patients whose true labels have that murmur (characterisation view).</p>"]

    features = [f.name for f in L.FEATURES]
    if any(L.OUTCOME.name in r["features"] for r in results.values()):
        features.append(L.OUTCOME.name)
    used_slugs: set[str] = set()
    model_slugs = {}
    for n in names:
        slug = _slug(n)
        while slug in used_slugs:
            slug += "-x"
        used_slugs.add(slug)
        model_slugs[n] = slug
    for feature in features:
        f_head, f_rows = _feature_table(results, feature)
        table = _md_table(f_head, f_rows)
        pc_head, pc_rows = _per_class_rows(results, feature)
        md += [f"## {feature}", "", table, "", "Per class (all patients):", "", _md_table(pc_head, pc_rows), ""]
        hp += [f"<h2>{html.escape(feature)}</h2>", _html_table(f_head, f_rows),
               "<p>Per class (all patients):</p>", _html_table(pc_head, pc_rows), "<div class='figs'>"]
        for n, res in results.items():
            entry = res["features"].get(feature)
            if entry is None or not plots:
                continue
            png = plot_confusion(entry["all"]["confusion_matrix"], entry["all"]["classes"], f"{n}: {feature}")
            fig_path = fig_dir / f"{model_slugs[n]}__{_slug(feature)}.png"
            fig_path.write_bytes(png)
            md.append(f"![{n}: {feature} confusion matrix](figures/{fig_path.name})")
            b64 = base64.b64encode(png).decode("ascii")
            hp.append(f"<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{html.escape(n)}: "
                      f"{html.escape(feature)} confusion matrix\"><figcaption>{html.escape(n)}</figcaption></figure>")
        md.append("")
        hp.append("</div>")

    calibrated = {n: r["calibration"] for n, r in results.items() if r.get("calibration")}
    if calibrated:  # do the probabilities mean what they say?
        names_c = [f.name for f in L.FEATURES if any(f.name in c for c in calibrated.values())]
        c_head = ["feature", *[f"{n}: ECE / NLL" for n in calibrated]]
        c_rows = [[f, *[(f"{_fmt(c[f]['ece'])} / {_fmt(c[f]['nll'])}" if f in c else "–") for c in calibrated.values()]]
                  for f in names_c]
        text = ("Top-label expected calibration error (10 bins; 0 is perfect) and negative log-likelihood of the "
                "probability columns, all patients.")
        md += ["## Calibration", "", text, "", _md_table(c_head, c_rows), ""]
        hp += ["<h2>Calibration</h2>", f"<p>{html.escape(text)}</p>", _html_table(c_head, c_rows)]
        for n, c in calibrated.items():
            if L.MURMUR.name not in c:
                continue
            r_head = ["confidence bin", "patients", "mean confidence", "share right"]
            r_rows = [[f"{b['low']:.1f}–{b['high']:.1f}", str(b["count"]), _fmt(b["confidence"]), _fmt(b["accuracy"])]
                      for b in c[L.MURMUR.name]["reliability"] if b["count"]]
            md += [f"Reliability of Murmur, {n}:", "", _md_table(r_head, r_rows), ""]
            hp += [f"<p>Reliability of Murmur, {html.escape(n)}:</p>", _html_table(r_head, r_rows)]
            if plots:
                png = plot_reliability(c[L.MURMUR.name]["reliability"], f"{n}: Murmur reliability")
                fig_path = fig_dir / f"{model_slugs[n]}__murmur-reliability.png"
                fig_path.write_bytes(png)
                md += [f"![{n}: Murmur reliability diagram](figures/{fig_path.name})", ""]
                b64 = base64.b64encode(png).decode("ascii")
                hp.append(f"<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{html.escape(n)}: Murmur "
                          f"reliability diagram\"><figcaption>{html.escape(n)}</figcaption></figure>")

    located = {n: r["locations"] for n, r in results.items() if r.get("locations")}
    if located:  # where the murmur is heard, among the patients whose murmur is Present
        l_head = ["model", "patients", "exact set", "most audible", "mean site F1",
                  *[f"F1 {loc}" for loc in L.LOCATIONS]]
        l_rows = [[n, str(v["patients"]), _fmt(v["exact_set_accuracy"]), _fmt(v["most_audible_accuracy"]),
                   _fmt(v["mean_site_f1"]), *[_fmt(v["per_site_f1"].get(loc)) for loc in L.LOCATIONS]]
                  for n, v in located.items()]
        text = ("Patients whose murmur is Present: accuracy of the exact set of sites where it is heard "
                "(Murmur locations), of the most audible site, and the F1 of 'heard here' per site.")
        md += ["## Murmur locations", "", text, "", _md_table(l_head, l_rows), ""]
        hp += ["<h2>Murmur locations</h2>", f"<p>{html.escape(text)}</p>", _html_table(l_head, l_rows)]

    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(hp) + "</body></html>\n", encoding="utf-8")
    log.info("reports written to %s", out_dir)
    return {"markdown": md_path, "html": html_path, "json": json_path}
