"""Patient-wise stratified splits: no leakage, coverage, determinism, rare classes, files, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from murmurlm.cli import main
from murmurlm.data.circor import load_circor
from murmurlm.data.splits import (
    Split, class_counts, kfold, label_columns, label_matrix, read_kfold, read_patient_list, read_split,
    train_val_test_split, write_kfold, write_split,
)
from murmurlm.errors import DataFormatError
from murmurlm.signal.synth import MurmurSpec, write_synthetic_circor

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def circor(circor_root):
    return load_circor(circor_root)


@pytest.fixture(scope="module")
def synthetic(synthetic_circor):
    return load_circor(synthetic_circor)


def assert_partition(split: Split, ids: list[str]) -> None:
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(map(len, parts)) == len(split.train) + len(split.val) + len(split.test)  # no duplicates
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(ids)


# --------------------------------------------------------------------------------------------
# train / val / test on the real data


def test_real_split_partitions_patients_with_requested_sizes(circor):
    split = train_val_test_split(circor, seed=0)
    assert_partition(split, [p.patient_id for p in circor.patients])
    n = len(circor.patients)
    for ids, share in ((split.train, 0.7), (split.val, 0.15), (split.test, 0.15)):
        assert abs(len(ids) - share * n) <= 1
    # every recording follows its patient
    where = split.part_of()
    for p in circor.patients:
        assert {where[r.patient_id] for r in p.recordings} == {where[p.patient_id]}


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_real_split_rare_classes_on_both_sides(circor, seed):
    counts = class_counts(train_val_test_split(circor, seed=seed), circor)
    assert counts["Systolic murmur quality=Musical"][0] == 1
    assert sum(counts["Systolic murmur quality=Musical"][1:]) == 1
    for name, (train, val, test) in counts.items():
        total = train + val + test
        if total >= 2:
            assert train > 0 and val + test > 0, (name, train, val, test)
        if total >= 3:
            assert min(train, val, test) > 0, (name, train, val, test)


def test_real_split_keeps_class_proportions(circor):
    split = train_val_test_split(circor, seed=0)
    counts = class_counts(split, circor)
    sizes = np.array([len(split.train), len(split.val), len(split.test)])
    n = sizes.sum()
    for name, c in counts.items():
        if sum(c) >= 30:
            share = np.array(c) / sizes
            assert np.all(np.abs(share - sum(c) / n) < 0.05), (name, c)


def test_split_is_deterministic_by_seed(circor):
    a, b = train_val_test_split(circor, seed=3), train_val_test_split(circor, seed=3)
    assert a == b
    assert train_val_test_split(circor, seed=4) != a
    # order of the input does not matter
    shuffled = list(reversed(circor.patients))
    assert train_val_test_split(shuffled, seed=3) == a
    assert kfold(shuffled, k=4, seed=3) == kfold(circor, k=4, seed=3)


def test_committed_splits_are_reproducible(circor):
    """splits/circor-dev and splits/circor-dev-5fold are what the code makes with seed 0."""
    folder = REPO / "splits" / "circor-dev"
    if not folder.exists():
        pytest.skip("splits/circor-dev not in this checkout")
    assert read_split(folder) == train_val_test_split(circor, seed=0)
    assert read_kfold(REPO / "splits" / "circor-dev-5fold") == kfold(circor, k=5, seed=0)


# --------------------------------------------------------------------------------------------
# k-fold


def test_real_kfold_holds_every_patient_out_once_and_spreads_rare_classes(circor):
    ids = [p.patient_id for p in circor.patients]
    folds = kfold(circor, k=5, seed=0)
    assert len(folds) == 5
    held = [pid for f in folds for pid in f.val]
    assert sorted(held) == sorted(ids)
    sizes = [len(f.val) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for f in folds:
        assert_partition(f, ids)
        assert f.test == []
    fold_of = {pid: i for i, f in enumerate(folds) for pid in f.val}
    y = label_matrix(circor.patients)
    assign = np.array([fold_of[p.patient_id] for p in circor.patients])
    for j, name in enumerate(label_columns()):
        total = int(y[:, j].sum())
        if total >= 2:
            assert len(set(assign[y[:, j]])) >= min(total, 5), name
    assert kfold(circor, k=5, seed=0) == folds
    assert kfold(circor, k=5, seed=1) != folds


# --------------------------------------------------------------------------------------------
# small synthetic data and arguments


def test_synthetic_split_and_zero_test_fraction(synthetic):
    ids = [p.patient_id for p in synthetic.patients]
    split = train_val_test_split(synthetic, seed=0)
    assert_partition(split, ids)
    assert (len(split.train), len(split.val), len(split.test)) == (8, 2, 2)
    no_test = train_val_test_split(synthetic.patients, fractions=(0.75, 0.25, 0.0), seed=0)
    assert no_test.test == [] and (len(no_test.train), len(no_test.val)) == (9, 3)
    assert_partition(no_test, ids)


def test_rare_synthetic_class_lands_on_both_sides(tmp_path):
    musical = [MurmurSpec(quality="Musical")]
    specs = [musical, musical] + [[MurmurSpec()] if i % 2 else [] for i in range(18)]
    write_synthetic_circor(tmp_path, num_patients=20, seed=0, duration=(1.5, 1.5), specs=specs,
                           locations=("MV",))
    data = load_circor(tmp_path)
    for seed in range(5):
        counts = class_counts(train_val_test_split(data, seed=seed), data)
        assert counts["Systolic murmur quality=Musical"][0] == 1, seed


@pytest.mark.parametrize("fractions", [(0.5, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1), (0.7, 0.3), ("a", 1, 0)])
def test_bad_fractions(synthetic, fractions):
    with pytest.raises(ValueError, match="fractions"):
        train_val_test_split(synthetic, fractions=fractions)


def test_bad_inputs(synthetic):
    with pytest.raises(ValueError, match="cannot make 13 folds"):
        kfold(synthetic, k=13)
    with pytest.raises(ValueError, match="k must be"):
        kfold(synthetic, k=1)
    with pytest.raises(ValueError, match="given twice"):
        train_val_test_split(synthetic.patients + synthetic.patients[:1])
    with pytest.raises(ValueError, match="no patients"):
        train_val_test_split([])
    with pytest.raises(ValueError, match="patient 1 is in train and val"):
        Split(["1", "2"], ["1"], [])


# --------------------------------------------------------------------------------------------
# files


def test_split_file_round_trip(synthetic, tmp_path):
    split = train_val_test_split(synthetic, seed=5)
    write_split(split, tmp_path / "s")
    text = (tmp_path / "s" / "train.txt").read_text()
    assert text.startswith("# ") and "seed=5" in text and "iterative stratification" in text
    back = read_split(tmp_path / "s")
    assert back == split and "seed=5" in back.description
    assert read_patient_list(tmp_path / "s" / "val.txt") == split.val


def test_empty_test_part_is_written_and_kfold_refuses_a_test_part(synthetic, tmp_path):
    split = train_val_test_split(synthetic, fractions=(0.75, 0.25, 0.0), seed=0)
    write_split(split, tmp_path / "s")
    assert read_patient_list(tmp_path / "s" / "test.txt") == []
    assert read_split(tmp_path / "s") == split
    with pytest.raises(ValueError, match="test part"):
        write_kfold([train_val_test_split(synthetic, seed=0)], tmp_path / "k")


def test_kfold_file_round_trip(synthetic, tmp_path):
    folds = kfold(synthetic, k=3, seed=2)
    write_kfold(folds, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold0", "fold1", "fold2"]
    assert sorted(p.name for p in (tmp_path / "fold1").iterdir()) == ["train.txt", "val.txt"]
    assert read_kfold(tmp_path) == folds


@pytest.mark.parametrize("content,message,line", [
    ("# header\n12\nab c\n", "numeric patient id", 3),
    ("12\n\n13\n12\n", r"listed twice \(first on line 1\)", 4),
    ("12 13\n", "numeric patient id", 1),
])
def test_bad_patient_list(tmp_path, content, message, line):
    path = tmp_path / "train.txt"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message) as err:
        read_patient_list(path)
    assert err.value.line == line and err.value.path == path
    with pytest.raises(DataFormatError):
        read_split(tmp_path)


def test_id_in_two_parts_and_missing_files(tmp_path):
    (tmp_path / "train.txt").write_text("1\n2\n3\n")
    (tmp_path / "val.txt").write_text("# v\n4\n")
    (tmp_path / "test.txt").write_text("5\n2\n")
    with pytest.raises(DataFormatError, match="patient 2 is also in train.txt") as err:
        read_split(tmp_path)
    assert err.value.path.name == "test.txt" and err.value.line == 2
    (tmp_path / "test.txt").unlink()
    assert read_split(tmp_path) == Split(["1", "2", "3"], ["4"], [])
    with pytest.raises(DataFormatError, match="no train.txt"):
        read_split(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="not found"):
        read_patient_list(tmp_path / "missing.txt")
    with pytest.raises(DataFormatError, match="no fold"):
        read_kfold(tmp_path)


def test_bad_kfold_folders(tmp_path):
    write_kfold([Split(["1", "2"], ["3"]), Split(["1", "3"], ["2"]), Split(["2", "3"], ["1"])], tmp_path / "ok")
    assert len(read_kfold(tmp_path / "ok")) == 3
    write_kfold([Split(["1", "2"], ["3"]), Split(["1", "2"], ["3"])], tmp_path / "twice")
    with pytest.raises(DataFormatError, match="also held out in fold0"):
        read_kfold(tmp_path / "twice")
    write_kfold([Split(["1", "2"], ["3"]), Split(["1"], ["2"])], tmp_path / "lost")
    with pytest.raises(DataFormatError, match="same patients"):
        read_kfold(tmp_path / "lost")
    write_kfold([Split(["1", "2"], ["3"]), Split(["1", "3"], ["2"])], tmp_path / "never")
    with pytest.raises(DataFormatError, match="never held out"):
        read_kfold(tmp_path / "never")


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_split(synthetic_circor, tmp_path, capsys):
    assert main(["data", "split", str(synthetic_circor), "--out", str(tmp_path / "s"), "--seed", "1"]) == 0
    assert "12 patients: 8 train, 2 val, 2 test" in capsys.readouterr().out
    assert read_split(tmp_path / "s") == train_val_test_split(load_circor(synthetic_circor), seed=1)
    assert main(["data", "split", str(synthetic_circor), "--out", str(tmp_path / "k"), "--folds", "3"]) == 0
    assert len(read_kfold(tmp_path / "k")) == 3
    assert main(["data", "split", str(synthetic_circor), "--out", str(tmp_path / "f"),
                 "--fractions", "0.5,0.25,0.25"]) == 0
    assert len(read_split(tmp_path / "f").val) == 3


@pytest.mark.parametrize("args,message", [
    (["--folds", "3", "--fractions", "0.5,0.25,0.25"], "either --folds or --fractions"),
    (["--fractions", "0.5,0.5"], "three numbers"),
    (["--fractions", "0.5,0.2,0.2"], "sum to 1"),
    (["--folds", "50"], "cannot make 50 folds"),
])
def test_cli_split_errors(synthetic_circor, tmp_path, capsys, args, message):
    assert main(["data", "split", str(synthetic_circor), "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
