"""The descriptor head: the systolic murmur's character from the average heartbeat's descriptors.

One standardised, class-balanced multinomial logistic regression per systolic feature (timing,
shape, grading, pitch, quality) over a patient's mean descriptor vector
(:func:`murmurlm.signal.descriptors.descriptor_vector`), fitted with scikit-learn on the patients
that have a systolic murmur (plus murmur transplants for the rare classes; the recipe
:mod:`murmurlm.recipes.train_descriptor_head`). It is stored as plain arrays (scaler mean and scale,
coefficients, intercepts, classes), so loading needs neither pickle nor scikit-learn, and inference
is a matrix product and a softmax. The 5-fold CV that chose it: ``benchmarks/characterization_cv.py``
(docs/characterization.md).

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


@dataclass
class FeatureRegression:
    """One feature's standardised multinomial logistic regression, as arrays."""

    classes: tuple[str, ...]     # the classes it was fitted on (a subset of the feature's present classes)
    mean: np.ndarray             # (d,) scaler mean
    scale: np.ndarray            # (d,) scaler scale
    coef: np.ndarray             # (k, d); k = 1 for two classes (sklearn's binary form)
    intercept: np.ndarray        # (k,)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, len(classes)) class probabilities, as scikit-learn's ``predict_proba``."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale @ self.coef.T + self.intercept
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
                                    "intercept": r.intercept} for f, r in self.regressions.items()}}

    @classmethod
    def from_state(cls, state: Mapping) -> "DescriptorHead":
        regs = {f: FeatureRegression(tuple(r["classes"]), np.asarray(r["mean"], dtype=np.float64),
                                     np.asarray(r["scale"], dtype=np.float64), np.asarray(r["coef"], dtype=np.float64),
                                     np.asarray(r["intercept"], dtype=np.float64))
                for f, r in state["regressions"].items()}
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


def fit_descriptor_head(x: np.ndarray, labels: Mapping[str, Sequence[str]], names: Sequence[str],
                        c: float | Mapping[str, float] = 0.1,
                        extra: Mapping[str, tuple[np.ndarray, Sequence[str]]] | None = None) -> DescriptorHead:
    """Fit one regression per systolic feature on rows ``x`` (patients with a systolic murmur) and
    their ``labels`` (feature -> class per row); ``extra``: feature -> (rows, classes) added to that
    feature's training rows (murmur transplants). ``c``: inverse regularisation, one or per feature."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    regs = {}
    for f in L.SYSTOLIC:
        xf, yf = np.asarray(x, dtype=np.float64), np.asarray(labels[f.name])
        if extra and f.name in extra:
            xf = np.concatenate([xf, np.asarray(extra[f.name][0], dtype=np.float64)])
            yf = np.concatenate([yf, np.asarray(extra[f.name][1])])
        scaler = StandardScaler().fit(xf)
        cf = c[f.name] if isinstance(c, Mapping) else c
        if len(set(yf)) < 2:
            raise ValueError(f"fit_descriptor_head: {f.name} has one class only ({yf[0]}); nothing to learn")
        lr = LogisticRegression(C=cf, class_weight="balanced", max_iter=2000).fit(scaler.transform(xf), yf)
        regs[f.name] = FeatureRegression(tuple(str(k) for k in lr.classes_), scaler.mean_.copy(),
                                         scaler.scale_.copy(), lr.coef_.copy(), lr.intercept_.copy())
    return DescriptorHead(tuple(names), regs)


def blend_character(cnn: Mapping[str, np.ndarray], head: Mapping[str, np.ndarray], weight: float = 0.5) -> dict:
    """A patient's systolic character probabilities: ``weight`` x the descriptor head's + (1 -
    weight) x the CNN's over the murmur's classes, the CNN's P(nan) kept. ``cnn``: feature -> vector
    in the feature's full class order (``nan`` included); ``head``: feature -> vector over its present
    classes. Other features pass through."""
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
    return out
