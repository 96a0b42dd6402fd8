"""Recipe smoke tests: a tiny train -> predict -> evaluate run that must learn a synthetic timing task,
and an interrupted run that resumes to bit-identical weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

from murmurlm.recipes import train_compact  # noqa: E402

from murmurlm.data.circor import load_circor  # noqa: E402
from murmurlm.signal.synth import MurmurSpec, write_synthetic_circor  # noqa: E402

TIMINGS = ("Early-systolic", "Holosystolic")


def timing_specs(n: int, offset: int = 0) -> list[list[MurmurSpec]]:
    """Loud systolic murmurs that differ only in timing, alternating the two classes."""
    return [[MurmurSpec("systolic", TIMINGS[(i + offset) % 2], "Plateau", "III/VI", "Medium", "Blowing")]
            for i in range(n)]


TINY = ["epochs=6", "patience=6", "batch_size=16", "crops_per_recording=8", "crop_seconds=2.0",
        "window_hop_seconds=1.0", "lr=0.005", "model.channels=[8,16]", "model.dropout=0.0", "threads=1",
        "murmur_scale=[1.0,1.0,1.0]"]


@pytest.fixture(scope="module")
def timing_task(tmp_path_factory):
    train_root = tmp_path_factory.mktemp("timing_train")
    test_root = tmp_path_factory.mktemp("timing_test")
    write_synthetic_circor(train_root, num_patients=40, seed=1, locations=("MV",), duration=(4.0, 5.0),
                           specs=timing_specs(40))
    write_synthetic_circor(test_root, num_patients=16, seed=2, locations=("MV",), duration=(4.0, 5.0),
                           specs=timing_specs(16, offset=1))
    return train_root, test_root


@pytest.fixture(scope="module")
def timing_run(timing_task, tmp_path_factory):
    train_root, _ = timing_task
    out = tmp_path_factory.mktemp("timing_run")
    cache = tmp_path_factory.mktemp("cache")
    cfg = train_compact.load_train_config(REPO / "configs" / "compact" / "default.yaml", [*TINY, f"cache_dir={cache}"])
    summary = train_compact.train(cfg, train_root, out, progress=False)
    return out, summary


@pytest.mark.slow
def test_train_predict_evaluate_beats_chance_on_timing(timing_task, timing_run):
    from murmurlm.evaluate.report import evaluate_predictions
    from murmurlm.inference.predict import load_model, predict_dataset

    _, test_root = timing_task
    out, summary = timing_run
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.yaml", "summary.json", "split.json"):
        assert (out / name).exists(), name
    assert summary["best_epoch"] >= 1
    frame, problems = predict_dataset(load_model(out / "best.pt"), test_root, progress=False)
    assert not problems and len(frame) == 16
    truth = {p.patient_id: p.labels for p in load_circor(test_root).patients}
    result = evaluate_predictions(frame, truth, bootstrap=0)
    timing = result["features"]["Systolic murmur timing"]["characterisation"]
    # two balanced classes: chance is 0.5 (P(>= 12 of 16 right by chance) = 0.038)
    assert timing["accuracy"] >= 0.75, timing


def test_metrics_log_has_one_line_per_epoch(timing_run):
    from murmurlm.train.metrics_log import MetricsLog

    out, summary = timing_run
    records = MetricsLog(out / "metrics.jsonl").read()
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
    assert all(np.isfinite(r["train_loss"]) and 0 <= r["val_score"] <= 1 for r in records)


class Interrupt(Exception):
    pass


def assert_identical(a, b, where: str) -> None:
    """Nested dicts/lists/tuples equal, tensors and arrays bit for bit (torch.equal / array_equal)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{where} differs after resume"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"{where} differs after resume"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.slow
def test_resume_after_interrupt_gives_identical_weights(timing_task, tmp_path):
    train_root, _ = timing_task
    overrides = ["epochs=3", "patience=3", "batch_size=8", "crops_per_recording=1", "crop_seconds=1.0",
                 "model.channels=[4,8]", "threads=1", f"cache_dir={tmp_path / 'cache'}"]
    cfg = lambda: train_compact.load_train_config(REPO / "configs" / "compact" / "default.yaml", overrides)  # noqa: E731

    straight = train_compact.train(cfg(), train_root, tmp_path / "straight", progress=False)

    def stop_in_epoch_two(step: int) -> None:
        if step == 3:  # 2 steps per epoch: this is inside epoch 2, after epoch 1's checkpoint
            raise Interrupt
    with pytest.raises(Interrupt):
        train_compact.train(cfg(), train_root, tmp_path / "cut", progress=False, on_step=stop_in_epoch_two)
    resumed = train_compact.train(cfg(), train_root, tmp_path / "cut", resume=True, progress=False)

    # every tensor of both checkpoints (weights, EMA weights, AdamW moments, RNG states) is equal
    # bit for bit, and every other entry (epoch, step, best score, metrics, config) exactly
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "straight" / name, weights_only=False)
        b = torch.load(tmp_path / "cut" / name, weights_only=False)
        assert_identical(a, b, name)
    last = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    assert last["epoch"] == 3 and last["ema"] is not None and last["optimizer"]["state"]  # all compared above
    assert straight == resumed  # best epoch, score, validation metrics, steps, murmur scale
    assert (tmp_path / "straight" / "summary.json").read_bytes() == (tmp_path / "cut" / "summary.json").read_bytes()
    from murmurlm.train.metrics_log import MetricsLog

    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(MetricsLog(tmp_path / "straight" / "metrics.jsonl").read()) == \
        strip(MetricsLog(tmp_path / "cut" / "metrics.jsonl").read())


def test_select_last_keeps_the_final_epoch_and_never_stops_early(timing_task, tmp_path):
    train_root, _ = timing_task
    overrides = ["epochs=4", "patience=1", "select=last", "batch_size=8", "crops_per_recording=1",
                 "crop_seconds=1.0", "model.channels=[4,8]", "threads=1", "ema_decay=0",
                 f"cache_dir={tmp_path / 'cache'}"]
    cfg = train_compact.load_train_config(REPO / "configs" / "compact" / "default.yaml", overrides)
    summary = train_compact.train(cfg, train_root, tmp_path / "run", progress=False)
    assert summary["best_epoch"] == 4  # patience 1 would have stopped a "best" run at the first dip
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)["model"]
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(best[k], last[k]) for k in best)
    with pytest.raises(ValueError, match="select must be"):
        train_compact.load_train_config(None, ["select=median"])


def test_resume_refuses_a_different_config(timing_task, tmp_path):
    from murmurlm.errors import ConfigError

    train_root, _ = timing_task
    base = ["epochs=1", "batch_size=8", "crops_per_recording=0.5", "crop_seconds=1.0", "model.channels=[4,8]",
            "threads=1", "tune_murmur_scale=false", f"cache_dir={tmp_path / 'cache'}"]
    train_compact.train(train_compact.load_train_config(None, base), train_root, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="different config"):
        train_compact.train(train_compact.load_train_config(None, [*base, "lr=0.1"]), train_root, tmp_path / "run",
                            resume=True, progress=False)


@pytest.mark.slow
def test_pipeline_command_trains_predicts_and_reports(timing_task, tmp_path):
    from murmurlm.cli import main

    train_root, _ = timing_task
    out = tmp_path / "main"
    code = main(["pipeline", "--data", str(train_root), "--out", str(out), "--no-progress", "--bootstrap", "0",
                 "--members", "2", "epochs=2", "batch_size=8", "crops_per_recording=1", "crop_seconds=1.0", "model.channels=[4,8]",
                 f"cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    for rel in ("split/train.txt", "split/test.txt", "model/best.pt", "model/member0/metrics.jsonl",
                "model/member1/best.pt",
                "predictions/compact.csv", "predictions/baseline-majority.csv", "report/report.md", "report/metrics.json"):
        assert (out / rel).exists(), rel
    assert "compact" in (out / "report" / "report.md").read_text()
    from murmurlm.inference.predict import load_model

    ensemble = load_model(out / "model" / "best.pt")
    assert len(ensemble.model.members) == 2
    seeds = [load_model(out / "model" / f"member{i}" / "best.pt").config["seed"] for i in range(2)]
    assert seeds == [0, 1]
    # the train command refuses an unknown config key with the valid ones
    assert main(["train", "--data", str(train_root), "--out", str(tmp_path / "t"), "colour=blue"]) == 2


def test_noise_augmentation_trains_on_noisy_copies_of_the_training_patients(timing_task, tmp_path, caplog):
    pytest.importorskip("audiomentations", reason="noise augmentation needs the augment extra (audiomentations)")
    import logging

    from murmurlm.data.circor import load_circor as load

    train_root, _ = timing_task
    overrides = ["epochs=1", "batch_size=8", "crop_seconds=1.0", "model.channels=[4,8]", "threads=1",
                 f"cache_dir={tmp_path / 'cache'}", "noise.copies=2", "noise.min_snr_db=0", "noise.max_snr_db=0"]
    cfg = train_compact.load_train_config(REPO / "configs" / "compact" / "default.yaml", overrides)
    patients = load(train_root).patients[:6]
    copies = train_compact.noisy_copies(patients, cfg, progress=False)
    clean = train_compact.build_split(patients, cfg, progress=False).features
    n = len(clean)
    assert len(copies) == 2 * n
    for i in range(n):  # same frames as the clean recording, louder (0 dB: as much noise as signal), copies differ
        assert copies[i].shape == copies[n + i].shape == clean[i].shape
        assert not np.array_equal(copies[i], copies[n + i])
        assert np.mean(np.exp(copies[i].astype(np.float64))) > np.mean(np.exp(clean[i].astype(np.float64)))
    with caplog.at_level(logging.INFO, logger="murmurlm.recipes.train_compact"):
        summary = train_compact.train(cfg, train_root, tmp_path / "run", progress=False)
    assert summary["best_epoch"] == 1 and "noise augmentation: 2 copies" in caplog.text
    saved = train_compact.load_train_config(tmp_path / "run" / "config.yaml")
    assert saved.noise.copies == 2  # the checkpoint's resolved config carries the augmentation


def test_noise_augmentation_needs_the_unprocessed_front_end():
    with pytest.raises(ValueError, match="preprocess"):
        train_compact.load_train_config(REPO / "configs" / "compact" / "default.yaml",
                                        ["noise.copies=1", "front_end.preprocess=annotated"])
