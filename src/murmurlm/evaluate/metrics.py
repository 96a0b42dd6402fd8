"""Patient-level metrics for the 11 murmur features and the PhysioNet Challenge 2022 scores.

Per feature (:func:`feature_metrics`), with scikit-learn:

- ``accuracy`` — :func:`sklearn.metrics.accuracy_score`.
- ``macro_f1`` — :func:`sklearn.metrics.f1_score` with ``average="macro"`` over the classes that
  occur in the truth **or** the prediction (classes absent from both are left out, a class only
  predicted counts with F1 = 0).
- ``uar`` — unweighted average recall, :func:`sklearn.metrics.balanced_accuracy_score` (mean
  recall over the classes that occur in the truth).
- ``per_class`` precision / recall / F1 / support over the schema's full class list
  (:func:`sklearn.metrics.precision_recall_fscore_support`; an undefined value is ``None``).
- ``confusion_matrix`` — rows: truth, columns: prediction, in the schema's fixed class order.
- ``auroc`` (only when the predictions carry probabilities, :func:`macro_auroc`) — one-vs-rest
  :func:`sklearn.metrics.roc_auc_score` per class, averaged over the classes that have both
  positive and negative patients in the truth.

The *characterisation* view (:func:`characterisation_mask`) restricts a systolic (diastolic)
feature to the patients whose **truth** has a systolic (diastolic) murmur; a ``"nan"``
prediction there is an error like any other.

Challenge 2022 scores, exactly as ``evaluate_model.py`` of
https://github.com/physionetchallenges/evaluation-2022 (commit 3e3beddd) defines them:

- :func:`challenge_weighted_accuracy` (``compute_weighted_accuracy``): with the confusion matrix
  ``A`` (rows: outputs, columns: labels) and weights ``W`` constant down each column (5 Present,
  3 Unknown, 1 Absent; 5 Abnormal, 1 Normal), ``trace(W * A) / sum(W * A)``. Equivalently
  ``sum_j w_j A_jj / sum_j w_j n_j`` with ``n_j`` the number of patients whose label is ``j``.
  :func:`challenge_murmur_score` is this for Murmur.
- :func:`challenge_cost` (``compute_challenge_metric``): the mean cost per patient of a screening
  policy that refers the patients whose output is positive (Present, Unknown, Abnormal) to an
  expert, scored against the true Outcome: ``(10 n + cost_expert(tp + fp, n) + 10000 tp +
  50000 fn) / n`` with ``cost_expert(m, n) = (25 + 397 m/n - 1718 (m/n)^2 + 11296 (m/n)^4) n``.
  :func:`challenge_outcome_cost` applies it to Outcome predictions; the challenge also applies it
  to Murmur predictions (``murmur_cost`` in the reports).

The ``*_from_confusion`` functions compute the same numbers from stacks of confusion matrices
(any leading batch shape); :func:`bootstrap_confusions` builds those for resampled patients in one
``numpy.bincount``, which keeps 1000 bootstrap resamples of 11 features well under a second.

Examples
--------
>>> challenge_murmur_score(["Present", "Absent", "Absent"], ["Present", "Present", "Absent"])
0.8571428571428571
>>> m = feature_metrics(["Absent", "Absent", "Present"], ["Absent", "Present", "Present"], "Murmur")
>>> m["accuracy"], round(m["macro_f1"], 4)
(0.6666666666666666, 0.6667)
"""

from __future__ import annotations

import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score)

from murmurlm.data import labels as L

CHALLENGE_WEIGHTS: dict[tuple[str, ...], tuple[float, ...]] = {
    ("Present", "Unknown", "Absent"): (5.0, 3.0, 1.0),
    ("Abnormal", "Normal"): (5.0, 1.0),
}
"""Per-label-class weights of the challenge's weighted accuracy, keyed by the class order."""
POSITIVE_CLASSES = ("Present", "Unknown", "Abnormal")
NEGATIVE_CLASSES = ("Absent", "Normal")


def _none_if_nan(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def encode(values: Sequence[str], feature: str) -> np.ndarray:
    """Class ids (schema order) of a sequence of label strings; unknown strings raise LabelError."""
    feat = L.feature(feature)
    return np.array([feat.encode(v) for v in values], dtype=np.int64)


def characterisation_mask(truth: Sequence[Mapping[str, str]], feature: str) -> np.ndarray | None:
    """Boolean mask of the patients in the characterisation view of ``feature``: those whose true
    labels have the murmur the feature describes. None for features without one (Murmur, Outcome)."""
    murmur = L.feature(feature).murmur
    if murmur is None:
        return None
    return np.array([L.has_murmur(dict(t), murmur) for t in truth], dtype=bool)


def mean_of_defined(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are defined (not None); None when none is.

    The headline *mean macro-F1* is this mean over the 11 features' ``macro_f1`` (a feature whose
    macro-F1 is undefined, as with no patients, is left out); every caller computes it here.

    >>> mean_of_defined([0.5, None, 1.0])
    0.75
    >>> mean_of_defined([None, None]) is None
    True
    """
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def feature_metrics(truth: Sequence[str], pred: Sequence[str], feature: str) -> dict:
    """Accuracy, macro-F1, UAR, per-class precision/recall/F1/support and the confusion matrix of
    one feature (see the module docstring for the conventions). Empty input gives ``None`` scores.

    >>> m = feature_metrics(["Low", "Low", "High"], ["Low", "High", "High"], "Systolic murmur pitch")
    >>> m["uar"], m["confusion_matrix"][1]
    (0.75, [0, 1, 0, 1])
    """
    feat = L.feature(feature)
    classes = list(feat.classes)
    t = [feat.normalise(v) for v in truth]
    p = [feat.normalise(v) for v in pred]
    if len(t) != len(p):
        raise ValueError(f"{feature!r}: {len(t)} true labels but {len(p)} predictions")
    out: dict = {"num_patients": len(t), "classes": classes}
    if not t:
        out.update(accuracy=None, macro_f1=None, uar=None, f1_labels=[],
                   per_class={c: {"precision": None, "recall": None, "f1": None, "support": 0} for c in classes},
                   confusion_matrix=[[0] * len(classes) for _ in classes])
        return out
    present = set(t) | set(p)
    f1_labels = [c for c in classes if c in present]
    with warnings.catch_warnings():
        # balanced_accuracy_score warns when a predicted class never occurs in the truth: expected here
        warnings.simplefilter("ignore", UserWarning)
        uar = balanced_accuracy_score(t, p)
    prec, rec, f1, support = precision_recall_fscore_support(t, p, labels=classes, zero_division=np.nan)
    out.update(
        accuracy=float(accuracy_score(t, p)),
        macro_f1=float(f1_score(t, p, labels=f1_labels, average="macro", zero_division=0)),
        uar=float(uar),
        f1_labels=f1_labels,
        per_class={c: {"precision": _none_if_nan(prec[i]), "recall": _none_if_nan(rec[i]),
                       "f1": _none_if_nan(f1[i]), "support": int(support[i])} for i, c in enumerate(classes)},
        confusion_matrix=confusion_matrix(t, p, labels=classes).astype(int).tolist(),
    )
    return out


def class_aurocs(truth: Sequence[str], probabilities: np.ndarray, feature: str) -> list[float | None]:
    """One-vs-rest AUROC of each class (schema order) from (patients, classes) probabilities;
    None for a class that is all or none of the truth."""
    feat = L.feature(feature)
    probs = np.asarray(probabilities, dtype=np.float64)
    codes = encode(truth, feature)
    if probs.shape != (len(codes), feat.num_classes):
        raise ValueError(f"{feature!r}: probabilities of shape {probs.shape}, expected ({len(codes)}, {feat.num_classes})")
    out: list[float | None] = []
    for k in range(feat.num_classes):
        positive = codes == k
        out.append(None if positive.all() or not positive.any() else float(roc_auc_score(positive, probs[:, k])))
    return out


def macro_auroc(truth: Sequence[str], probabilities: np.ndarray, feature: str) -> float | None:
    """Mean of the defined one-vs-rest class AUROCs (None when no class has both outcomes).

    >>> macro_auroc(["Present", "Absent", "Absent"], np.array([[.8, .1, .1], [.3, .1, .6], [.5, .2, .3]]), "Murmur")
    1.0
    """
    values = [v for v in class_aurocs(truth, probabilities, feature) if v is not None]
    return float(np.mean(values)) if values else None


# --------------------------------------------------------------------------------------------
# PhysioNet Challenge 2022


def _challenge_matrix(truth: Sequence[str], pred: Sequence[str], label_classes: Sequence[str],
                      output_classes: Sequence[str]) -> np.ndarray:
    """The challenge's ``compute_confusion_matrix``: rows outputs, columns labels."""
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} labels but {len(pred)} outputs")
    A = np.zeros((len(output_classes), len(label_classes)))
    for t, p in zip(truth, pred):
        if t not in label_classes:
            raise ValueError(f"label {t!r} not in {list(label_classes)}")
        if p not in output_classes:
            raise ValueError(f"output {p!r} not in {list(output_classes)}")
        A[list(output_classes).index(p), list(label_classes).index(t)] += 1
    return A


def challenge_weighted_accuracy(truth: Sequence[str], pred: Sequence[str],
                                classes: Sequence[str] = L.MURMUR.classes) -> float:
    """The challenge's weighted accuracy (``compute_weighted_accuracy``); nan for no patients.

    >>> challenge_weighted_accuracy(["Abnormal", "Normal"], ["Normal", "Normal"], ("Abnormal", "Normal"))
    0.16666666666666666
    """
    classes = tuple(classes)
    if classes not in CHALLENGE_WEIGHTS:
        raise ValueError(f"weighted accuracy undefined for classes {classes}; defined for "
                         f"{' and '.join(map(str, CHALLENGE_WEIGHTS))}")
    A = _challenge_matrix(truth, pred, classes, classes)
    W = np.tile(np.asarray(CHALLENGE_WEIGHTS[classes]), (len(classes), 1))  # constant down columns
    B = W * A
    return float(np.trace(B) / np.sum(B)) if np.sum(B) > 0 else float("nan")


def challenge_murmur_score(truth: Sequence[str], pred: Sequence[str]) -> float:
    """The challenge's murmur score: weighted accuracy with weights 5 Present, 3 Unknown, 1 Absent."""
    return challenge_weighted_accuracy(truth, pred, L.MURMUR.classes)


def cost_expert(m: np.ndarray | float, n: np.ndarray | float) -> np.ndarray | float:
    """Total cost of expert screening of ``m`` of ``n`` patients (challenge ``cost_expert``)."""
    r = m / n
    return (25 + 397 * r - 1718 * r ** 2 + 11296 * r ** 4) * n


def _mean_cost(tp, fp, fn, tn):
    n = tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        total = 10 * n + cost_expert(tp + fp, n) + 10000 * tp + 50000 * fn
        return np.where(n > 0, total / np.where(n > 0, n, 1), np.nan)


def challenge_cost(outcome_truth: Sequence[str], outputs: Sequence[str],
                   output_classes: Sequence[str]) -> float:
    """The challenge's mean cost per patient (``compute_challenge_metric``) of referring the
    patients whose output is positive (Present, Unknown or Abnormal), against the true Outcome.

    >>> round(challenge_cost(["Abnormal", "Normal"], ["Normal", "Normal"], ("Abnormal", "Normal")), 1)
    25035.0
    """
    A = _challenge_matrix(outcome_truth, outputs, L.OUTCOME.classes, output_classes)
    pos_l = [i for i, x in enumerate(L.OUTCOME.classes) if x in POSITIVE_CLASSES]
    neg_l = [i for i, x in enumerate(L.OUTCOME.classes) if x in NEGATIVE_CLASSES]
    pos_o = [i for i, x in enumerate(output_classes) if x in POSITIVE_CLASSES]
    neg_o = [i for i, x in enumerate(output_classes) if x in NEGATIVE_CLASSES]
    tp = np.sum(A[np.ix_(pos_o, pos_l)])
    fp = np.sum(A[np.ix_(pos_o, neg_l)])
    fn = np.sum(A[np.ix_(neg_o, pos_l)])
    tn = np.sum(A[np.ix_(neg_o, neg_l)])
    return float(_mean_cost(tp, fp, fn, tn))


def challenge_outcome_cost(truth: Sequence[str], pred: Sequence[str]) -> float:
    """The challenge's outcome cost of Outcome predictions (lower is better)."""
    return challenge_cost(truth, pred, L.OUTCOME.classes)


# --------------------------------------------------------------------------------------------
# the same from confusion matrices (rows truth, columns prediction), batched for the bootstrap


def accuracy_from_confusion(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.trace(cm, axis1=-2, axis2=-1) / n


def macro_f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 over the classes occurring in truth or prediction (the :func:`feature_metrics` convention)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    rows, cols = cm.sum(axis=-1), cm.sum(axis=-2)
    denom = rows + cols  # 2tp + fp + fn
    used = denom > 0
    f1 = np.where(used, 2 * tp / np.where(used, denom, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return f1.sum(axis=-1) / used.sum(axis=-1)


def uar_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the classes occurring in the truth (balanced accuracy)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    rows = cm.sum(axis=-1)
    used = rows > 0
    recall = np.where(used, tp / np.where(used, rows, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return recall.sum(axis=-1) / used.sum(axis=-1)


def weighted_accuracy_from_confusion(cm: np.ndarray, classes: Sequence[str] = L.MURMUR.classes) -> np.ndarray:
    """The challenge weighted accuracy from confusion matrices with rows truth (weights per truth row)."""
    cm = np.asarray(cm, dtype=np.float64)
    w = np.asarray(CHALLENGE_WEIGHTS[tuple(classes)])
    num = (w * np.diagonal(cm, axis1=-2, axis2=-1)).sum(axis=-1)
    den = (w * cm.sum(axis=-1)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def cost_from_confusion(cm: np.ndarray, output_classes: Sequence[str]) -> np.ndarray:
    """The challenge cost from confusion matrices with rows the true Outcome (Abnormal, Normal)
    and columns ``output_classes`` (Murmur or Outcome classes)."""
    cm = np.asarray(cm, dtype=np.float64)
    pos_o = [i for i, x in enumerate(output_classes) if x in POSITIVE_CLASSES]
    neg_o = [i for i, x in enumerate(output_classes) if x in NEGATIVE_CLASSES]
    abn, nor = L.OUTCOME.classes.index("Abnormal"), L.OUTCOME.classes.index("Normal")
    tp = cm[..., abn, pos_o].sum(axis=-1)
    fn = cm[..., abn, neg_o].sum(axis=-1)
    fp = cm[..., nor, pos_o].sum(axis=-1)
    tn = cm[..., nor, neg_o].sum(axis=-1)
    return _mean_cost(tp, fp, fn, tn)


# --------------------------------------------------------------------------------------------
# bootstrap


def resample_indices(num_patients: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, num_patients) patient indices drawn with replacement, seeded."""
    if resamples < 1 or num_patients < 1:
        raise ValueError(f"need at least one resample and one patient, got {resamples}, {num_patients}")
    return np.random.default_rng(seed).integers(0, num_patients, size=(resamples, num_patients))


def bootstrap_confusions(truth_codes: np.ndarray, pred_codes: np.ndarray, index: np.ndarray,
                         num_truth: int, num_pred: int | None = None,
                         mask: np.ndarray | None = None) -> np.ndarray:
    """Confusion matrices (resamples, num_truth, num_pred) of resampled patients.

    ``index`` comes from :func:`resample_indices`; ``mask`` (per patient) keeps only the patients
    of a view (a resampled patient outside it is simply not counted).
    """
    num_pred = num_truth if num_pred is None else num_pred
    t = np.asarray(truth_codes)[index]
    p = np.asarray(pred_codes)[index]
    b = np.arange(index.shape[0])[:, None]
    flat = (b * num_truth + t) * num_pred + p
    weights = None if mask is None else np.asarray(mask, dtype=np.float64)[index].ravel()
    counts = np.bincount(flat.ravel(), weights=weights, minlength=index.shape[0] * num_truth * num_pred)
    return counts.reshape(index.shape[0], num_truth, num_pred)


def confidence_interval(samples: np.ndarray, confidence: float = 0.95) -> list[float | None]:
    """Percentile interval of bootstrap samples (nan resamples ignored); [None, None] if none is finite."""
    samples = np.asarray(samples, dtype=np.float64)
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return [None, None]
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]
