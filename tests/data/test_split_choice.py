"""The one place that chooses a split: ``resolve_split`` (the pipeline: given folder, committed files,
or a new stratified split), ``train_val_split`` (every recipe's validation part) and
``repository_split`` (the committed split files, when they match the dataset)."""

from __future__ import annotations

import pytest

from murmurlm.data import labels as L
from murmurlm.data.circor import load_circor
from murmurlm.data.splits import (SHIPPED_SPLITS, Split, repository_split, resolve_split, train_val_split, train_val_test_split,
                                   write_kfold, write_split)
from murmurlm.signal.synth import write_synthetic_circor


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("circor-small")
    write_synthetic_circor(root, num_patients=30, seed=2, duration=(2.0, 2.0))
    return load_circor(root)


def test_train_val_split_is_stratified_patient_wise_and_seeded(dataset):
    train, val = train_val_split(dataset, 0.2, seed=0)
    ids = {p.patient_id for p in dataset.patients}
    assert (len(train), len(val)) == (24, 6)
    assert set(train) | set(val) == ids and not set(train) & set(val)
    assert train_val_split(dataset, 0.2, seed=0) == (train, val)
    murmur = {p.patient_id: p.labels[L.MURMUR.name] for p in dataset.patients}
    held = {murmur[i] for i in val}
    # stratified: every Murmur class with at least two patients reaches the validation part
    classes = [c for c in L.MURMUR.classes if sum(m == c for m in murmur.values()) >= 2]
    assert set(classes) <= held
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(dataset, 1.0)


def test_repository_split_is_used_only_when_it_matches(dataset, tmp_path):
    ids = sorted(p.patient_id for p in dataset.patients)
    data_root = tmp_path / "mydata"
    data_root.mkdir()
    splits = tmp_path / "splits"
    assert repository_split(data_root, ids, folder=splits) is None  # nothing committed
    write_split(Split(ids[:20], ids[20:25], ids[25:]), splits / "mydata")
    s, where = repository_split(data_root, ids, folder=splits)
    assert (s.train, s.val, s.test, where) == (ids[:20], ids[20:25], ids[25:], splits / "mydata")
    assert repository_split(data_root, ids[:-1], folder=splits) is None  # another set of patients
    folds = [Split([i for i in ids if i not in part], part) for part in (ids[:15], ids[15:])]
    write_kfold(folds, splits / "mydata-2fold")
    got, where = repository_split(data_root, ids, k=2, folder=splits)
    assert [f.val for f in got] == [ids[:15], ids[15:]] and where == splits / "mydata-2fold"
    assert repository_split(data_root, ids, k=3, folder=splits) is None


def test_the_committed_circor_dev_split_is_found_for_circor_dev(circor_root):
    ids = [p.patient_id for p in load_circor(circor_root, on_error="skip").patients]
    s, where = repository_split(circor_root, ids)
    assert where == SHIPPED_SPLITS / "circor-dev" and len(s.test) == 78
    folds, where = repository_split(circor_root, ids, k=5)
    assert where == SHIPPED_SPLITS / "circor-dev-5fold" and len(folds) == 5


def test_the_recipes_use_the_shared_split(dataset, monkeypatch):
    from murmurlm.recipes import train_compact

    assert train_compact.train_val_split is train_val_split
    assert not hasattr(train_compact, "default_val_split")


def test_the_segmenter_recipe_uses_the_shared_split(dataset):
    from types import SimpleNamespace

    import murmurlm.signal.segment.data as seg_data

    from murmurlm.recipes import train_segmenter

    assert not hasattr(seg_data, "seeded_split")
    cfg = SimpleNamespace(data=str(dataset.root), train_patients=None, val_patients=None, val_fraction=0.2, seed=3,
                          max_recordings=None)
    train, val = train_segmenter.split_recordings(cfg)
    want_train, want_val = train_val_split(dataset, 0.2, seed=3)
    assert sorted({r.patient_id for r in train}) == sorted(want_train)
    assert sorted({r.patient_id for r in val}) == sorted(want_val)


def test_resolve_split_takes_the_given_folder_first(dataset, tmp_path):
    given = train_val_test_split(dataset, fractions=(0.5, 0.25, 0.25), seed=3)
    write_split(given, tmp_path / "mine")
    committed = tmp_path / "splits"
    ids = sorted(p.patient_id for p in dataset.patients)
    write_split(Split(ids[:20], ids[20:25], ids[25:]), committed / dataset.root.name)  # matches, but loses
    chosen, source = resolve_split(dataset, dataset.root, tmp_path / "mine", folder=committed)
    assert chosen == given and source == f"split {tmp_path / 'mine'}"


def test_resolve_split_uses_the_committed_split_when_it_matches(dataset, tmp_path):
    ids = sorted(p.patient_id for p in dataset.patients)
    committed = tmp_path / "splits"
    write_split(Split(ids[:20], ids[20:25], ids[25:]), committed / dataset.root.name)
    chosen, source = resolve_split(dataset, dataset.root, folder=committed)
    assert (chosen.train, chosen.val, chosen.test) == (ids[:20], ids[20:25], ids[25:])
    assert source == f"recommended split {committed / dataset.root.name}"
    # the patients alone (not a dataset) work the same way
    assert resolve_split(dataset.patients, dataset.root, folder=committed) == (chosen, source)


def test_resolve_split_makes_a_stratified_split_otherwise(dataset, tmp_path):
    ids = sorted(p.patient_id for p in dataset.patients)
    committed = tmp_path / "splits"
    write_split(Split(ids[:19], ids[19:24], ids[24:29]), committed / dataset.root.name)  # one patient short
    chosen, source = resolve_split(dataset, dataset.root, seed=4, folder=committed)
    assert chosen == train_val_test_split(dataset, seed=4) and source == "train_val_test_split(seed=4)"
    chosen, source = resolve_split(dataset, dataset.root, seed=4, fractions=(0.8, 0.2, 0.0), folder=committed)
    assert chosen == train_val_test_split(dataset, fractions=(0.8, 0.2, 0.0), seed=4) and not chosen.test
    assert source == "train_val_test_split(seed=4, fractions=(0.8, 0.2, 0.0))"


def test_train_val_split_seeds_differ_and_keep_patients_apart(dataset):
    splits = {seed: train_val_split(dataset.patients, 0.25, seed=seed) for seed in range(4)}
    assert len({tuple(v) for _, v in splits.values()}) > 1  # the seed matters
    for train, val in splits.values():
        assert not set(train) & set(val) and (len(train), len(val)) == (23, 7)  # 7.5: the tie goes to train
        murmur = {p.patient_id: p.labels[L.MURMUR.name] for p in dataset.patients}
        assert {"Present", "Absent"} <= {murmur[i] for i in val}
