"""The descriptor head: the systolic murmur's character from the average heartbeat's descriptors.

One standardised, class-balanced logistic regression per systolic feature (timing, shape, grading,
pitch, quality; multinomial, or ordinal for a feature whose classes are ordered, such as grade
I < II < III) over a patient's mean descriptor vector
(:func:`murmurlm.signal.descriptors.descriptor_vector`), fitted with scikit-learn on the patients
that have a systolic murmur (plus murmur transplants for the rare classes; the recipe
:mod:`murmurlm.recipes.train_descriptor_head`). It is stored as plain arrays (scaler mean and scale,
coefficients, intercepts, classes), so loading needs neither pickle nor scikit-learn, and inference
is a matrix product and a softmax. The 5-fold CV that chose it: ``benchmarks/characterization_cv.py``
(docs/characterization.md).

Optionally it also decides whether there is a **diastolic** murmur (:data:`DIASTOLIC_PRESENCE`, a
binary regression fitted on the systolic-murmur patients and diastolic murmur transplants): the CNN
never calls one (4 diastolic patients in circor-dev), so where the head has this regression it
replaces the CNN's P(no diastolic murmur), and the CNN's own distribution over the diastolic
classes gives the character.

Examples
--------
>>> import numpy as np
>>> from murmurlm.data import labels as L
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((40, 3))
>>> y = {f.name: np.where(x[:, 0] > 0, f.present_classes[0], f.present_classes[1]) for f in L.SYSTOLIC}
>>> head = fit_descriptor_head(x, y, names=("a", "b", "c"))
>>> p = head.predict_proba(np.array([[2.0, 0.0, 0.0]]))["Systolic murmur timing"]
>>> p.shape, bool(p[0, 0] > 0.5), round(float(p.sum()), 6)
((1, 4), True, 1.0)
>>> DescriptorHead.from_state(head.state()).predict_proba(x[:2])["Systolic murmur pitch"].round(6).tolist() == \\
...     head.predict_proba(x[:2])["Systolic murmur pitch"].round(6).tolist()
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from murmurlm.data import labels as L
from murmurlm.errors import ConfigError


DIASTOLIC_PRESENCE = "Diastolic murmur"
"""The key of the head's optional diastolic detector; its classes are ``("absent", "present")``."""

KINDS = ("multinomial", "ordinal")


@dataclass
class FeatureRegression:
    """One feature's standardised logistic regression, as arrays.

    ``multinomial``: scikit-learn's (one row of ``coef`` per class; one row for two classes).
    ``ordinal``: cumulative logits for ordered ``classes``: row ``j`` of ``coef`` gives
    P(class > classes[j]) (one class-balanced binary regression per threshold, made monotone)."""

    classes: tuple[str, ...]     # the classes it was fitted on (a subset of the feature's present classes)
    mean: np.ndarray             # (d,) scaler mean
    scale: np.ndarray            # (d,) scaler scale
    coef: np.ndarray             # (k, d); k = 1 for two classes (sklearn's binary form); ordinal: len(classes) - 1
    intercept: np.ndarray        # (k,)
    kind: str = "multinomial"

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, len(classes)) class probabilities, as scikit-learn's ``predict_proba``."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale @ self.coef.T + self.intercept
        if self.kind == "ordinal":
            above = np.minimum.accumulate(1.0 / (1.0 + np.exp(-z)), axis=1)  # P(y > j), non-increasing in j
            return np.diff(np.concatenate([np.ones((len(z), 1)), above, np.zeros((len(z), 1))], axis=1) * -1.0,
                           axis=1)
        if len(self.classes) == 2 and z.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


@dataclass
class DescriptorHead:
    """Per systolic feature, probabilities over the feature's murmur classes (schema order) from a
    patient's mean descriptor vector."""

    names: tuple[str, ...]                                  # descriptor names, in vector order
    regressions: dict[str, FeatureRegression] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)                # how it was trained (counts, C, transplants)

    def predict_proba(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``x``: (n, d) descriptor rows. Returns feature -> (n, present classes) probabilities;
        a class the regression never saw gets 0."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != len(self.names):
            raise ValueError(f"DescriptorHead: {x.shape[1]} descriptors given, it was fitted on {len(self.names)}")
        out = {}
        for feature, reg in self.regressions.items():
            if feature == DIASTOLIC_PRESENCE:
                out[feature] = reg.probabilities(x)
                continue
            present = L.feature(feature).present_classes
            probs = np.zeros((len(x), len(present)))
            got = reg.probabilities(x)
            for j, c in enumerate(reg.classes):
                probs[:, present.index(c)] = got[:, j]
            out[feature] = probs
        return out

    def state(self) -> dict:
        """Plain arrays and strings (what a checkpoint stores)."""
        return {"names": list(self.names), "meta": dict(self.meta),
                "regressions": {f: {"classes": list(r.classes), "mean": r.mean, "scale": r.scale, "coef": r.coef,
                                    "intercept": r.intercept, "kind": r.kind} for f, r in self.regressions.items()}}

    @classmethod
    def from_state(cls, state: Mapping) -> "DescriptorHead":
        regs = {f: FeatureRegression(tuple(r["classes"]), np.asarray(r["mean"], dtype=np.float64),
                                     np.asarray(r["scale"], dtype=np.float64), np.asarray(r["coef"], dtype=np.float64),
                                     np.asarray(r["intercept"], dtype=np.float64), r.get("kind", "multinomial"))
                for f, r in state["regressions"].items()}
        unknown = sorted({r.kind for r in regs.values()} - set(KINDS))
        if unknown:
            raise ValueError(f"unknown regression kind(s) {unknown}; known: {', '.join(KINDS)}")
        return cls(tuple(state["names"]), regs, dict(state.get("meta", {})))


PACKAGED = Path(__file__).resolve().parents[1] / "assets" / "descriptor-head.json"
"""The shipped head (``murmurlm.recipes.train_descriptor_head`` on circor-dev's train + test split)."""


def load_descriptor_head(path: str | Path | None = None) -> DescriptorHead:
    """A head written by the recipe (JSON); ``None``: the packaged one."""
    import json

    path = Path(path) if path is not None else PACKAGED
    try:
        state = json.loads(path.read_text())
        return DescriptorHead.from_state(state)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such descriptor head (make one with python -m "
                          "murmurlm.recipes.train_descriptor_head)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a descriptor head ({err})") from None


def _fit_logistic(xf: np.ndarray, yf: np.ndarray, c: float, kind: str = "multinomial",
                  order: Sequence[str] = ()) -> FeatureRegression:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(xf)
    xs = scaler.transform(xf)
    if kind == "ordinal":
        classes = tuple(c_ for c_ in order if c_ in set(yf))
        rank = np.array([classes.index(v) for v in yf])
        rows = [LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(xs, rank > j)
                for j in range(len(classes) - 1)]
        coef = np.concatenate([r.coef_ for r in rows])
        intercept = np.concatenate([r.intercept_ for r in rows])
        return FeatureRegression(classes, scaler.mean_.copy(), scaler.scale_.copy(), coef, intercept, "ordinal")
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(xs, yf)
    return FeatureRegression(tuple(str(k) for k in lr.classes_), scaler.mean_.copy(), scaler.scale_.copy(),
                             lr.coef_.copy(), lr.intercept_.copy())


def fit_descriptor_head(x: np.ndarray, labels: Mapping[str, Sequence[str]], names: Sequence[str],
                        c: float | Mapping[str, float] = 0.1,
                        extra: Mapping[str, tuple[np.ndarray, Sequence[str]]] | None = None,
                        ordinal: Sequence[str] = (),
                        diastolic: tuple[np.ndarray, Sequence[bool]] | None = None,
                        diastolic_c: float = 0.1) -> DescriptorHead:
    """Fit one regression per systolic feature on rows ``x`` (patients with a systolic murmur) and
    their ``labels`` (feature -> class per row); ``extra``: feature -> (rows, classes) added to that
    feature's training rows (murmur transplants). ``c``: inverse regularisation, one or per feature.
    ``ordinal``: features fitted as cumulative-logit regressions over their classes in schema order
    (``Systolic murmur grading``: I/VI < II/VI < III/VI). ``diastolic``: (rows, has a diastolic
    murmur) for the diastolic detector (:data:`DIASTOLIC_PRESENCE`), fitted with ``diastolic_c``."""
    regs = {}
    for f in L.SYSTOLIC:
        xf, yf = np.asarray(x, dtype=np.float64), np.asarray(labels[f.name])
        if extra and f.name in extra:
            xf = np.concatenate([xf, np.asarray(extra[f.name][0], dtype=np.float64)])
            yf = np.concatenate([yf, np.asarray(extra[f.name][1])])
        cf = c[f.name] if isinstance(c, Mapping) else c
        if len(set(yf)) < 2:
            raise ValueError(f"fit_descriptor_head: {f.name} has one class only ({yf[0]}); nothing to learn")
        kind = "ordinal" if f.name in ordinal else "multinomial"
        regs[f.name] = _fit_logistic(xf, yf, cf, kind, f.present_classes)
    if diastolic is not None:
        xd, yd = np.asarray(diastolic[0], dtype=np.float64), np.asarray(diastolic[1], dtype=bool)
        if len(set(yd)) < 2:
            raise ValueError("fit_descriptor_head: the diastolic detector needs rows with and without a diastolic murmur")
        regs[DIASTOLIC_PRESENCE] = _fit_logistic(xd, np.where(yd, "present", "absent"), diastolic_c)
    return DescriptorHead(tuple(names), regs)


def blend_character(cnn: Mapping[str, np.ndarray], head: Mapping[str, np.ndarray], weight: float = 0.5) -> dict:
    """A patient's systolic character probabilities: ``weight`` x the descriptor head's + (1 -
    weight) x the CNN's over the murmur's classes, the CNN's P(nan) kept. ``cnn``: feature -> vector
    in the feature's full class order (``nan`` included); ``head``: feature -> vector over its present
    classes. With the head's :data:`DIASTOLIC_PRESENCE` (P(absent), P(present)), every diastolic
    feature's P(nan) becomes P(absent) and its classes share P(present) as the CNN's do. Other
    features pass through."""
    out = dict(cnn)
    for f in L.SYSTOLIC:
        if f.name not in head:
            continue
        p = np.asarray(cnn[f.name], dtype=np.float64)
        idx = [f.classes.index(c) for c in f.present_classes]
        murmur = p[idx]
        p_none = 1.0 - murmur.sum()
        murmur = murmur / max(murmur.sum(), 1e-12)
        mixed = weight * np.asarray(head[f.name], dtype=np.float64) + (1.0 - weight) * murmur
        q = p.copy()
        q[idx] = mixed * (1.0 - p_none)
        out[f.name] = q
    if DIASTOLIC_PRESENCE in head:
        present = float(np.asarray(head[DIASTOLIC_PRESENCE], dtype=np.float64)[1])
        for f in L.DIASTOLIC:
            p = np.asarray(cnn[f.name], dtype=np.float64)
            idx = [f.classes.index(c) for c in f.present_classes]
            murmur = p[idx]
            murmur = murmur / murmur.sum() if murmur.sum() > 1e-12 else np.full(len(idx), 1.0 / len(idx))
            q = np.zeros_like(p)
            q[f.classes.index(L.NO_MURMUR)] = 1.0 - present
            q[idx] = murmur * present
            out[f.name] = q
    return out
