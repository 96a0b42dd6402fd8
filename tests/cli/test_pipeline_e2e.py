"""``make run`` end to end on a small real subset of circor-dev: the README's first command, through
the Makefile, on real recordings (one epoch of a narrow model, so that it takes seconds).

Checked: the predictions cover exactly the run's test split, and ``report/metrics.json`` is what the
evaluator gives when the written CSV is scored again."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess

import pytest

from repo_paths import REPO

pytestmark = [pytest.mark.circor, pytest.mark.slow]

PATIENTS = 24  # 8 murmur (Present), 4 Unknown, 12 Absent: a split with every Murmur class in train


def small_subset(circor_root, dest):
    """The first patients of each Murmur class, in CirCor's layout (the audio linked, not copied)."""
    with open(circor_root / "training_data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    want = {"Present": 8, "Unknown": 4, "Absent": 12}
    chosen = []
    for row in rows:
        if want.get(row["Murmur"], 0) > 0:
            want[row["Murmur"]] -= 1
            chosen.append(row)
    (dest / "training_data").mkdir(parents=True)
    with open(dest / "training_data.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    for row in chosen:
        for src in (circor_root / "training_data").glob(f"{row['Patient ID']}[._]*"):
            os.symlink(src, dest / "training_data" / src.name)
    return [row["Patient ID"] for row in chosen]


def _plain(value):
    import numpy as np

    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def test_make_run_on_a_small_real_subset(circor_root, tmp_path):
    from murmurlm.data.splits import read_patient_list
    from murmurlm.evaluate.predictions import read_predictions
    from murmurlm.evaluate.report import dataset_labels, evaluate_predictions

    data = tmp_path / "circor-small"
    ids = small_subset(circor_root, data)
    assert len(ids) == PATIENTS
    out = tmp_path / "main"
    run_args = ("--members 2 --no-progress --bootstrap 50 epochs=1 batch_size=16 model.channels=[4,8] "
                f"cache_dir={tmp_path / 'cache'}")
    make = shutil.which("make")
    assert make is not None, "make is needed for the README's commands"
    proc = subprocess.run([make, "-s", "run", f"MURMURLM_CIRCOR={data}", f"RUN_DIR={out}", f"RUN_ARGS={run_args}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    test_ids = read_patient_list(out / "split" / "test.txt")
    split_ids = [*read_patient_list(out / "split" / "train.txt"), *read_patient_list(out / "split" / "val.txt"),
                 *test_ids]
    assert sorted(split_ids) == sorted(ids) and test_ids  # a patient-wise split of exactly these patients
    predictions = read_predictions(out / "predictions" / "compact.csv")
    assert sorted(predictions.index.astype(str)) == sorted(test_ids)  # every test patient, nobody else

    labels = dataset_labels(data)
    rescored = evaluate_predictions(predictions, {p: labels[p] for p in test_ids}, known_ids=list(labels),
                                    bootstrap=50, name="compact")
    written = json.loads((out / "report" / "metrics.json").read_text())
    compact = written["models"]["compact"]
    assert compact["num_patients"] == len(test_ids)
    for part in ("headline", "challenge", "features"):  # the CSV on disk gives the report's figures
        assert json.loads(json.dumps(rescored[part], default=_plain)) == compact[part], part
    for name in ("compact", "baseline-majority", "baseline-prior"):
        assert name in (out / "report" / "report.md").read_text()
