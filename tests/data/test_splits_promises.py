"""docs/synth-and-splits.md: the committed splits of circor-dev have the documented sizes (518 patients:
362 train, 78 val, 78 test; folds holding out 104, 104, 104, 103, 103) and, on the real labels, the
documented Murmur counts per part."""

from __future__ import annotations

import pytest

from repo_paths import REPO
from murmurlm.data.splits import read_kfold, read_split


def test_committed_split_sizes():
    split = read_split(REPO / "splits" / "circor-dev")
    assert (len(split.train), len(split.val), len(split.test)) == (362, 78, 78)
    folds = read_kfold(REPO / "splits" / "circor-dev-5fold")
    assert [len(f.val) for f in folds] == [104, 104, 104, 103, 103]
    assert set().union(*(f.val for f in folds)) == set(split.train) | set(split.val) | set(split.test)


@pytest.mark.circor
def test_committed_split_murmur_counts(circor_root):
    from murmurlm.data.circor import load_circor

    murmur = {p.patient_id: p.labels["Murmur"] for p in load_circor(circor_root).patients}
    split = read_split(REPO / "splits" / "circor-dev")
    counts = [tuple(sum(murmur[i] == c for i in part) for c in ("Present", "Unknown", "Absent"))
              for part in (split.train, split.val, split.test)]
    assert counts == [(68, 26, 268), (15, 5, 58), (15, 6, 57)]
