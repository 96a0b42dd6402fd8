"""The figures the benchmark tables show (``compact_cv.py``, ``whisper_lm.py``), from the results of
:func:`murmurlm.evaluate.report.evaluate_with_baselines`: headline values without intervals, and per
feature macro-F1 (all patients and the patients with that murmur), recall and support per class."""

from __future__ import annotations

from murmurlm.data import labels as L

RARE_SUPPORT = 10
"""``rare_class_recall``: the recall of the (murmur) classes with at most this many patients."""


def summarise(result: dict) -> dict:
    """The table figures of one ``evaluate_predictions`` result."""
    feats = {}
    for f in L.FEATURES:
        view = result["features"][f.name]
        char = view["characterisation"]
        per_class = view["all"]["per_class"]
        feats[f.name] = {"macro_f1": view["all"]["macro_f1"],
                         "macro_f1_murmur_patients": char["macro_f1"] if char else None,
                         "uar_murmur_patients": char["uar"] if char else None,
                         "recall": {c: v["recall"] for c, v in per_class.items()},
                         "rare_class_recall": {c: v["recall"] for c, v in per_class.items()
                                               if c != L.NO_MURMUR and 0 < v["support"] <= RARE_SUPPORT},
                         "support": {c: v["support"] for c, v in per_class.items()}}
    head = result["headline"]
    return {**{key: head[key]["value"] for key in ("murmur_weighted_accuracy", "murmur_cost", "outcome_cost",
                                                    "mean_macro_f1", "systolic_char_uar")},
            "features": feats}


def summarise_all(results: dict[str, dict]) -> dict[str, dict]:
    """:func:`summarise` of every model of ``evaluate_with_baselines``'s results, in their order."""
    return {name: summarise(result) for name, result in results.items()}
