"""Patient-wise stratified splits: train/val/test and k-fold, written as plain lists of patient ids.

Every recording of a patient goes to the same part, so no patient spans two parts. Parts are
stratified over all label fields at once, one-hot encoded (:func:`label_matrix`): the 11 features
of :mod:`murmurlm.data.labels` (including their "nan" class), Outcome, Most audible location and the
multi-hot Murmur locations. The assignment is Iterative Stratification (Sechidis, Tsoumakas and
Vlahavas, "On the Stratification of Multi-Label Data", ECML PKDD 2011) from the
``iterative-stratification`` package, followed by a repair step: a class held by at least two
patients must appear in train and in the held-out parts (val + test), and a class held by at least
three in each of train, val and test; a class held by ``c >= 2`` patients is spread over at least
``min(c, k)`` folds. The repair swaps pairs of patients with the most similar labels, so part
sizes do not change and no class ever disappears from a part. Both steps are deterministic for a
seed.

Files: ``train.txt``, ``val.txt``, ``test.txt``, one patient id per line after ``#`` comment lines
that say how the split was made; k-fold writes ``fold<i>/train.txt`` and ``fold<i>/val.txt``
(i = 0 .. k-1; the held-out fold is ``val``).

Examples
--------
>>> import tempfile
>>> from murmurlm.signal.synth import write_synthetic_circor
>>> from murmurlm.data.circor import load_circor
>>> root = tempfile.mkdtemp()
>>> _ = write_synthetic_circor(root, num_patients=20, seed=0, duration=(2.0, 2.0))
>>> split = train_val_test_split(load_circor(root), seed=0)
>>> len(split.train), len(split.val), len(split.test)
(14, 3, 3)
>>> folder = tempfile.mkdtemp()
>>> write_split(split, folder)
>>> read_split(folder) == split
True
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from murmurlm.data import labels as L
from murmurlm.data.circor import CirCorDataset, Patient
from murmurlm.errors import DataFormatError

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")
_ID = re.compile(r"^\d+$")


@dataclass
class Split:
    """Patient ids of the train, val and test parts (a k-fold split leaves ``test`` empty).

    ``description`` is written as the files' comment header; it does not take part in ``==``.
    """

    train: list[str]
    val: list[str]
    test: list[str] = field(default_factory=list)
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part in PARTS:
            ids = [str(i) for i in getattr(self, part)]
            setattr(self, part, ids)
            for pid in ids:
                if pid in seen:
                    where = "twice in " + part if seen[pid] == part else f"in {seen[pid]} and {part}"
                    raise ValueError(f"Split: patient {pid} is {where}")
                seen[pid] = part

    def parts(self) -> dict[str, list[str]]:
        """{'train': ids, 'val': ids, 'test': ids}."""
        return {part: getattr(self, part) for part in PARTS}

    def part_of(self) -> dict[str, str]:
        """{patient id: part name}."""
        return {pid: part for part, ids in self.parts().items() for pid in ids}

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.parts().values())


# --------------------------------------------------------------------------------------------
# the label matrix


def _patients(dataset_or_patients: CirCorDataset | Iterable[Patient]) -> list[Patient]:
    patients = list(dataset_or_patients.patients if isinstance(dataset_or_patients, CirCorDataset)
                    else dataset_or_patients)
    ids = [p.patient_id for p in patients]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"patient id(s) given twice: {', '.join(dup[:10])}")
    key = dict(zip(_sorted_ids(ids), range(len(ids))))
    return sorted(patients, key=lambda p: key[p.patient_id])  # the order given does not matter


def label_columns() -> list[str]:
    """Names of the columns of :func:`label_matrix`, as 'Field=class'."""
    cols = [f"{f.name}={c}" for f in (*L.FEATURES, L.OUTCOME, L.MOST_AUDIBLE_LOCATION) for c in f.classes]
    return cols + [f"{L.MURMUR_LOCATIONS_NAME}={loc}" for loc in L.LOCATIONS]


def label_matrix(patients: Sequence[Patient]) -> np.ndarray:
    """Boolean (patients x columns) matrix: every label field one-hot, Murmur locations multi-hot."""
    rows = []
    for p in patients:
        row: list[int] = []
        for f in (*L.FEATURES, L.OUTCOME, L.MOST_AUDIBLE_LOCATION):
            value = f.normalise(p.labels.get(f.name, L.NO_MURMUR))
            row += [int(value == c) for c in f.classes]
        rows.append(row + L.locations_to_multihot(tuple(p.murmur_locations)))
    return np.asarray(rows, dtype=bool).reshape(len(patients), len(label_columns()))


def class_counts(split: Split, patients: CirCorDataset | Iterable[Patient]) -> dict[str, tuple[int, ...]]:
    """{'Field=class': (count in train, val, test)} for every class present in the data."""
    patients = _patients(patients)
    y = label_matrix(patients)
    where = split.part_of()
    masks = [np.array([where.get(p.patient_id) == part for p in patients]) for part in PARTS]
    return {col: tuple(int(y[m, j].sum()) for m in masks)
            for j, col in enumerate(label_columns()) if y[:, j].any()}


# --------------------------------------------------------------------------------------------
# stratification


def _stratify(y: np.ndarray, proportions: Sequence[float], rng: np.random.RandomState) -> np.ndarray:
    """Part index per row by Iterative Stratification (rows visited in a seeded random order)."""
    from iterstrat.ml_stratifiers import IterativeStratification

    order = rng.permutation(len(y))
    parts = IterativeStratification(labels=y[order], r=np.asarray(proportions, dtype=float), random_state=rng)
    out = np.empty(len(y), dtype=int)
    out[order] = parts
    return out


def _repair(assign: np.ndarray, y: np.ndarray, num_parts: int, violations, rng: np.random.RandomState,
            keep_in: int | None = None) -> np.ndarray:
    """Swap pairs of patients while a swap lowers the number of unmet spreading requirements.

    ``violations(counts)`` maps class counts of shape (..., parts, columns) to the number of unmet
    requirements (...). Among the swaps that lower it, the one with the fewest violations left wins,
    then the one taking the fewest single-patient classes out of part ``keep_in`` (train: a class
    seen once is better learnt than tested), then the pair with the most similar labels, then a
    seeded order. Part sizes never change; the loop ends since violations strictly decrease.
    """
    assign = assign.copy()
    yi = y.astype(np.int64)
    single = yi.sum(axis=0) == 1
    order = rng.permutation(len(assign))
    parts = np.arange(num_parts)
    while True:
        counts = np.stack([yi[assign == k].sum(axis=0) for k in parts])  # parts x columns
        now = int(violations(counts))
        if now == 0:
            return assign
        # columns whose requirements are unmet: the classes of patients worth moving
        unmet = [c for c in np.argsort(yi.sum(axis=0), kind="stable")
                 if violations(counts[:, c:c + 1]) > 0]
        best, best_key = None, None
        for col in unmet:
            for p in order[yi[order, col] == 1]:
                q = order[(assign[order] != assign[p]) & (yi[order, col] == 0)]
                if len(q) == 0:
                    continue
                diff = yi[q] - yi[p]  # change of p's part counts when p and q swap (q's part: -diff)
                new = np.repeat(counts[None], len(q), axis=0)
                new[:, assign[p]] += diff
                new[np.arange(len(q)), assign[q]] -= diff
                left = violations(new)
                penalty = np.zeros(len(q), dtype=np.int64)
                if keep_in is not None:  # single-patient classes leaving part keep_in
                    penalty += int((yi[p] & single).sum()) if assign[p] == keep_in else 0
                    penalty += np.where(assign[q] == keep_in, (yi[q] & single).sum(axis=1), 0)
                key = np.stack([left, penalty, np.abs(diff).sum(axis=1)], axis=1)
                key[left >= now] = np.iinfo(np.int64).max
                k = int(np.lexsort(key.T[::-1])[0])
                if key[k, 0] >= now:
                    continue
                if best_key is None or tuple(key[k]) < best_key:
                    best, best_key = (int(p), int(q[k])), tuple(key[k])
            if best is not None:
                break  # fix the rarest unmet class first
        if best is None:
            log.debug("split repair: %d spreading requirement(s) cannot be met", now)
            return assign
        p, q = best
        assign[p], assign[q] = assign[q], assign[p]


def _target_sizes(n: int, proportions: Sequence[float]) -> np.ndarray:
    """Part sizes summing to ``n`` (largest remainder), every part with a positive share non-empty
    where ``n`` allows."""
    exact = n * np.asarray(proportions, dtype=float)
    sizes = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[k] += 1
    for k in np.flatnonzero((sizes == 0) & (exact > 0)):
        donor = int(np.argmax(sizes))
        if sizes[donor] > 1:
            sizes[donor] -= 1
            sizes[k] += 1
    return sizes


def _balance(assign: np.ndarray, y: np.ndarray, sizes: np.ndarray, violations,
             rng: np.random.RandomState) -> np.ndarray:
    """Move patients from parts above their target size to parts below it. Each move takes the
    patient whose move leaves the fewest unmet requirements and whose classes are the most
    over-represented in its part relative to the receiving part (the least harm to stratification)."""
    assign = assign.copy()
    yi = y.astype(np.int64)
    order = rng.permutation(len(assign))
    parts = np.arange(len(sizes))
    while True:
        have = np.bincount(assign, minlength=len(sizes))
        over, under = np.flatnonzero(have > sizes), np.flatnonzero(have < sizes)
        if len(over) == 0 or len(under) == 0:
            return assign
        src, dst = int(over[np.argmax(have[over] - sizes[over])]), int(under[np.argmax(sizes[under] - have[under])])
        counts = np.stack([yi[assign == k].sum(axis=0) for k in parts]).astype(float)
        cand = order[assign[order] == src]
        new = np.repeat(counts[None], len(cand), axis=0)
        new[:, src] -= yi[cand]
        new[:, dst] += yi[cand]
        left = violations(new)
        share = counts[src] / max(have[src], 1) - counts[dst] / max(have[dst], 1)
        score = yi[cand] @ share
        k = int(np.lexsort((-score, left))[0])
        assign[cand[k]] = dst


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        f = tuple(float(x) for x in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"fractions must be three numbers (train, val, test), got {fractions!r}") from None
    if len(f) != 3 or any(not math.isfinite(x) or x < 0 for x in f) or f[0] <= 0:
        raise ValueError(f"fractions must be three non-negative numbers with train > 0, got {fractions!r}")
    if abs(sum(f) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(f):g})")
    return f  # type: ignore[return-value]


def _sorted_ids(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=lambda i: (0, int(i), "") if i.isdigit() else (1, 0, i))


def train_val_test_split(dataset_or_patients: CirCorDataset | Iterable[Patient],
                         fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0) -> Split:
    """Split patients into train/val/test, stratified over all label fields.

    Parameters
    ----------
    dataset_or_patients : a loaded :class:`~murmurlm.data.circor.CirCorDataset` or its patients.
    fractions : (train, val, test) shares, summing to 1; val or test may be 0.
    seed : the split is a function of the patients' labels and this seed.

    Returns
    -------
    Split
        Patient ids per part, sorted numerically. Part sizes are ``fractions`` of the patients,
        rounded (largest remainder; a part with a positive share gets at least one patient).

    Examples
    --------
    >>> import tempfile
    >>> from murmurlm.signal.synth import write_synthetic_circor
    >>> from murmurlm.data.circor import load_circor
    >>> root = tempfile.mkdtemp()
    >>> _ = write_synthetic_circor(root, num_patients=10, seed=1, duration=(2.0, 2.0))
    >>> s = train_val_test_split(load_circor(root), fractions=(0.8, 0.2, 0.0), seed=3)
    >>> len(s.train), len(s.val), s.test
    (8, 2, [])
    """
    f = _check_fractions(fractions)
    patients = _patients(dataset_or_patients)
    if not patients:
        raise ValueError("train_val_test_split: no patients")
    y = label_matrix(patients)
    rng = np.random.RandomState(seed)
    active = [k for k in range(3) if f[k] > 0]
    assign = np.array(active)[_stratify(y, [f[k] for k in active], rng)]

    held = [k for k in (1, 2) if f[k] > 0]

    def violations(counts: np.ndarray) -> np.ndarray:
        """Unmet requirements: a class of >= 2 patients in train and in val + test, of >= 3 in every part."""
        total = counts.sum(axis=-2)
        out = ((total >= 2) & (counts[..., 0, :] == 0)).astype(np.int64)
        if held:
            out += (total >= 2) & (counts[..., held, :].sum(axis=-2) == 0)
        for k in held:
            out += (total >= 3) & (counts[..., k, :] == 0)
        return out.sum(axis=-1)

    assign = _repair(assign, y, 3, violations, rng, keep_in=0)
    assign = _balance(assign, y, _target_sizes(len(patients), f), violations, rng)
    assign = _repair(assign, y, 3, violations, rng, keep_in=0)
    ids = [p.patient_id for p in patients]
    parts = [_sorted_ids(ids[i] for i in np.flatnonzero(assign == k)) for k in range(3)]
    desc = (f"train_val_test_split(fractions={tuple(f)}, seed={seed}): iterative stratification "
            f"(Sechidis et al. 2011, iterstrat) over {y.shape[1]} one-hot label columns, {len(patients)} patients")
    split = Split(*parts, description=desc)
    log.info("split %d patients: %d train, %d val, %d test", len(patients), *map(len, parts))
    return split


def kfold(patients: CirCorDataset | Iterable[Patient], k: int = 5, seed: int = 0) -> list[Split]:
    """``k`` stratified folds: fold i holds out part i as ``val`` and trains on the rest (``test`` empty).

    Every patient is held out exactly once. Uses ``MultilabelStratifiedKFold`` (iterative
    stratification) over :func:`label_matrix`, then spreads a class with ``c >= 2`` patients over
    at least ``min(c, k)`` folds.

    Examples
    --------
    >>> import tempfile
    >>> from murmurlm.signal.synth import write_synthetic_circor
    >>> from murmurlm.data.circor import load_circor
    >>> root = tempfile.mkdtemp()
    >>> _ = write_synthetic_circor(root, num_patients=10, seed=1, duration=(2.0, 2.0))
    >>> folds = kfold(load_circor(root), k=5, seed=0)
    >>> [len(f.val) for f in folds]
    [2, 2, 2, 2, 2]
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    patients = _patients(patients)
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"kfold: k must be an integer >= 2, got {k!r}")
    if len(patients) < k:
        raise ValueError(f"kfold: {len(patients)} patients cannot make {k} folds")
    y = label_matrix(patients)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    assign = np.empty(len(patients), dtype=int)
    for i, (_, held) in enumerate(splitter.split(np.zeros((len(patients), 1)), y)):
        assign[held] = i

    def violations(counts: np.ndarray) -> np.ndarray:
        """Unmet requirements: a class of c >= 2 patients should be held out in min(c, k) folds."""
        total = counts.sum(axis=-2)
        folds_with = np.count_nonzero(counts, axis=-2)
        return np.where(total >= 2, np.maximum(np.minimum(total, k) - folds_with, 0), 0).sum(axis=-1)

    rng = np.random.RandomState(seed)
    assign = _repair(assign, y, k, violations, rng)
    assign = _balance(assign, y, _target_sizes(len(patients), [1 / k] * k), violations, rng)
    assign = _repair(assign, y, k, violations, rng)
    ids = [p.patient_id for p in patients]
    folds = []
    for i in range(k):
        desc = (f"kfold(k={k}, seed={seed}) fold {i}: iterative stratification (Sechidis et al. 2011, "
                f"iterstrat MultilabelStratifiedKFold) over {y.shape[1]} one-hot label columns")
        folds.append(Split(_sorted_ids(ids[j] for j in np.flatnonzero(assign != i)),
                           _sorted_ids(ids[j] for j in np.flatnonzero(assign == i)), [], description=desc))
    return folds


# --------------------------------------------------------------------------------------------
# files


def write_patient_list(ids: Sequence[str], path: str | Path, comments: Sequence[str] = ()) -> None:
    """Write one patient id per line after ``# comment`` lines."""
    lines = [f"# {c}" for c in comments] + [str(i) for i in ids]
    Path(path).write_text("\n".join(lines) + "\n")


def read_patient_list(path: str | Path) -> list[str]:
    """Read a patient list: one numeric id per line; ``#`` comment lines and blank lines skipped.

    Raises DataFormatError (with the line) for a line that is not an id or an id given twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, "patient list not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"cannot read patient list: {err}") from None
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _ID.match(line):
            raise DataFormatError(path, f"expected one numeric patient id per line, got {line!r}", lineno)
        if line in first_line:
            raise DataFormatError(path, f"patient {line} listed twice (first on line {first_line[line]})", lineno)
        first_line[line] = lineno
        ids.append(line)
    return ids


def write_split(split: Split, folder: str | Path) -> None:
    """Write ``train.txt``, ``val.txt`` and ``test.txt`` (even when empty) into ``folder`` (created)."""
    _write_parts(split, Path(folder), PARTS)


def _write_parts(split: Split, folder: Path, parts: Sequence[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sizes = ", ".join(f"{len(getattr(split, part))} {part}" for part in parts)
    for part in parts:
        ids = getattr(split, part)
        comments = [f"murmurlm patient split, {part} part: {len(ids)} patients ({sizes})"]
        if split.description:
            comments.append(f"made by murmurlm.data.splits.{split.description}")
        write_patient_list(ids, folder / f"{part}.txt", comments)


def read_split(folder: str | Path) -> Split:
    """Read ``train.txt`` (required), ``val.txt`` and ``test.txt`` (absent: empty) from ``folder``.

    Raises DataFormatError naming file and line for a bad line, a duplicate id, or an id in two parts.
    """
    folder = Path(folder)
    if not (folder / "train.txt").exists():
        raise DataFormatError(folder / "train.txt", "split folder has no train.txt")
    parts: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for part in PARTS:
        path = folder / f"{part}.txt"
        ids = read_patient_list(path) if path.exists() or part == "train" else []
        for pid in ids:
            if pid in owner:
                raise DataFormatError(path, f"patient {pid} is also in {owner[pid]}.txt", _line_of(path, pid))
            owner[pid] = part
        parts[part] = ids
    header = [ln[1:].strip() for ln in (folder / "train.txt").read_text().splitlines() if ln.startswith("#")]
    desc = next((h.removeprefix("made by murmurlm.data.splits.") for h in header if h.startswith("made by")), "")
    return Split(parts["train"], parts["val"], parts["test"], description=desc)


def _line_of(path: Path, pid: str) -> int | None:
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        if raw.strip() == pid:
            return lineno
    return None


def write_kfold(folds: Sequence[Split], folder: str | Path) -> None:
    """Write fold i to ``folder/fold<i>/`` (train.txt, val.txt: the held-out fold)."""
    for i, split in enumerate(folds):
        if split.test:
            raise ValueError(f"write_kfold: fold {i} has a test part; k-fold splits hold out val only")
        _write_parts(split, Path(folder) / f"fold{i}", ("train", "val"))


def read_kfold(folder: str | Path) -> list[Split]:
    """Read ``fold0``, ``fold1``, ... from ``folder``; checks every patient is held out exactly once
    and that each fold's parts cover the same patients."""
    folder = Path(folder)
    fold_dirs = sorted((d for d in folder.glob("fold*") if d.is_dir() and d.name[4:].isdigit()),
                       key=lambda d: int(d.name[4:]))
    if not fold_dirs:
        raise DataFormatError(folder, "no fold<i>/ folders found")
    if [int(d.name[4:]) for d in fold_dirs] != list(range(len(fold_dirs))):
        raise DataFormatError(folder, f"fold folders must be fold0..fold{len(fold_dirs) - 1}, "
                              f"got {', '.join(d.name for d in fold_dirs)}")
    folds = [read_split(d) for d in fold_dirs]
    everyone = set(folds[0].part_of())
    held: dict[str, int] = {}
    for i, f in enumerate(folds):
        if set(f.part_of()) != everyone:
            raise DataFormatError(fold_dirs[i], "this fold does not cover the same patients as fold0")
        for pid in f.val:
            if pid in held:
                raise DataFormatError(fold_dirs[i] / "val.txt", f"patient {pid} is also held out in fold{held[pid]}",
                                      _line_of(fold_dirs[i] / "val.txt", pid))
            held[pid] = i
    if set(held) != everyone:
        raise DataFormatError(folder, f"{len(everyone - set(held))} patient(s) never held out")
    return folds


# --------------------------------------------------------------------------------------------
# choosing a split: the rules every recipe, the pipeline and the benchmarks share

SHIPPED_SPLITS = Path(__file__).resolve().parents[1] / "assets" / "splits"
"""The committed split files, shipped with the package (``murmurlm/assets/splits/<data folder
name>[-<k>fold]/``; ``splits/`` in a checkout)."""


def train_val_split(patients: CirCorDataset | Iterable[Patient], val_fraction: float,
                    seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, val)`` patient ids: the stratified :func:`train_val_test_split` with no test part.

    The one validation split of the recipes (compact model, audio LM, segmenter) when no patient
    lists are given.

    Examples
    --------
    >>> import tempfile
    >>> from murmurlm.signal.synth import write_synthetic_circor
    >>> from murmurlm.data.circor import load_circor
    >>> root = tempfile.mkdtemp()
    >>> _ = write_synthetic_circor(root, num_patients=10, seed=1, duration=(2.0, 2.0))
    >>> train, val = train_val_split(load_circor(root), 0.2, seed=0)
    >>> len(train), len(val), set(train) & set(val)
    (8, 2, set())
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be within (0, 1), got {val_fraction!r}")
    split = train_val_test_split(dataset_or_patients=patients, fractions=(1.0 - val_fraction, val_fraction, 0.0),
                                 seed=seed)
    return split.train, split.val


def repository_split(data_root: str | Path, patient_ids: Iterable[str], k: int | None = None,
                     folder: str | Path | None = None) -> tuple[Split | list[Split], Path] | None:
    """The committed split of this dataset, when one matches its patients exactly, else None.

    ``splits/<data folder name>/`` (train/val/test) or, with ``k``, ``splits/<name>-<k>fold/``
    (k folds whose held-out parts cover the patients). ``folder`` replaces :data:`SHIPPED_SPLITS`.

    >>> repository_split("/nowhere/no-such-dataset", ["1", "2"]) is None
    True
    """
    base = Path(folder) if folder is not None else SHIPPED_SPLITS
    name = Path(data_root).resolve().name
    ids = set(patient_ids)
    if k is None:
        path = base / name
        if (path / "test.txt").exists():
            s = read_split(path)
            if set(s.train) | set(s.val) | set(s.test) == ids:
                return s, path
            log.info("%s does not match this dataset's patients", path)
        return None
    path = base / f"{name}-{k}fold"
    if path.is_dir():
        folds = read_kfold(path)
        if len(folds) == k and set().union(*(set(f.val) for f in folds)) == ids:
            return folds, path
        log.info("%s does not match this dataset's patients", path)
    return None


def resolve_split(dataset_or_patients: CirCorDataset | Iterable[Patient], data_root: str | Path,
                  split_dir: str | Path | None = None, *, seed: int = 0,
                  fractions: Sequence[float] = (0.7, 0.15, 0.15), folder: str | Path | None = None
                  ) -> tuple[Split, str]:
    """The train/val/test split to use, and a line saying where it came from.

    1. ``split_dir`` when given (:func:`read_split`): ``"split <dir>"``;
    2. else the committed ``splits/<data folder name>/`` when its patients are exactly the dataset's
       (:func:`repository_split`; ``folder`` replaces :data:`SHIPPED_SPLITS`):
       ``"recommended split <dir>"``;
    3. else :func:`train_val_test_split` with ``fractions`` and ``seed``:
       ``"train_val_test_split(seed=<seed>)"`` (the fractions are added when not the default).

    Examples
    --------
    >>> import tempfile
    >>> from murmurlm.signal.synth import write_synthetic_circor
    >>> from murmurlm.data.circor import load_circor
    >>> root = tempfile.mkdtemp()
    >>> _ = write_synthetic_circor(root, num_patients=20, seed=0, duration=(2.0, 2.0))
    >>> data = load_circor(root)
    >>> split, source = resolve_split(data, root, seed=0)
    >>> source, split == train_val_test_split(data, seed=0)
    ('train_val_test_split(seed=0)', True)
    >>> write_split(split, root + "/mine")
    >>> resolve_split(data, root, root + "/mine")[1].startswith("split ")
    True
    """
    if split_dir is not None:
        return read_split(split_dir), f"split {split_dir}"
    patients = _patients(dataset_or_patients)
    found = repository_split(data_root, (p.patient_id for p in patients), folder=folder)
    if found is not None:
        return found[0], f"recommended split {found[1]}"
    f = _check_fractions(fractions)
    extra = "" if f == (0.7, 0.15, 0.15) else f", fractions={f}"
    return train_val_test_split(patients, fractions=f, seed=seed), f"train_val_test_split(seed={seed}{extra})"
