"""``murmurlm segment train|predict|evaluate`` on the synthetic CirCor folder, and the recipe smoke test."""

from __future__ import annotations

import json

import pytest

from murmurlm.cli import main
from murmurlm.data.circor import read_tsv


def test_predict_writes_tsv_files_the_reader_accepts(synthetic_circor, tmp_path):
    audio = sorted((synthetic_circor / "training_data").glob("*.wav"))[:3]
    out = tmp_path / "pred"
    assert main(["segment", "predict", *map(str, audio), "--out", str(out), "--method", "springer"]) == 0
    written = sorted(out.glob("*.tsv"))
    assert [p.stem for p in written] == [a.stem for a in audio]
    for path in written:
        segments, problems = read_tsv(path)
        assert segments and not problems
        assert {s.state for s in segments} & {1, 3}


def test_predict_accepts_a_circor_folder(synthetic_circor, tmp_path):
    out = tmp_path / "all"
    assert main(["segment", "predict", str(synthetic_circor), "--out", str(out)]) == 0  # default: mamba
    assert len(list(out.glob("*.tsv"))) == len(list((synthetic_circor / "training_data").glob("*.wav")))


def test_evaluate_scores_against_the_tsv_files(synthetic_circor, tmp_path):
    report = tmp_path / "seg.json"
    assert main(["segment", "evaluate", "--data", str(synthetic_circor), "--method", "springer",
                 "--json", str(report)]) == 0
    figures = json.loads(report.read_text())
    assert figures["recordings"] > 0 and 0.5 < figures["s1_f1"] <= 1.0


def test_train_springer_then_predict_with_it(synthetic_circor, tmp_path):
    run = tmp_path / "run"
    assert main(["segment", "train", "--method", "springer", "--data", str(synthetic_circor),
                 "--out", str(run)]) == 0
    assert (run / "model.npz").exists() and (run / "config.yaml").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "springer" and metrics["s1_f1"] > 0.8
    audio = sorted((synthetic_circor / "training_data").glob("*.wav"))[0]
    assert main(["segment", "predict", str(audio), "--model", str(run / "model.npz"), "--out", str(tmp_path / "p")]) == 0
    assert main(["segment", "evaluate", "--data", str(synthetic_circor), "--model", str(run / "model.npz")]) == 0


def test_bad_arguments_are_one_line_errors(synthetic_circor, tmp_path, capsys):
    assert main(["segment", "evaluate", "--data", str(synthetic_circor), "--method", "hmm"]) == 2
    assert "springer, mamba" in capsys.readouterr().err
    assert main(["segment", "predict", str(tmp_path / "nothing.wav"), "--out", str(tmp_path)]) == 2
    assert main(["segment", "predict", str(tmp_path), "--out", str(tmp_path), "--method", "hmm"]) == 2
    assert "springer, mamba" in capsys.readouterr().err


@pytest.mark.slow
def test_mamba_recipe_smoke(synthetic_circor, tmp_path):
    run = tmp_path / "mamba"
    assert main(["segment", "train", "--method", "mamba", "--data", str(synthetic_circor), "--out", str(run),
                 "max_steps=3", "eval_every=3", "log_every=1", "eval_recordings=2", "batch_size=2",
                 "crop_frames=64", "model.d_model=32", "model.n_layers=1", "pretrain_steps=2",
                 "max_recordings=6"]) == 0
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log].count("pretrain") == 2
    assert any(r["phase"] == "eval" for r in log)
    from murmurlm.signal.segment.mamba import load_mamba_segmenter

    ckpt = load_mamba_segmenter(run / "model.pt")
    assert ckpt.cfg.d_model == 32
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "mamba" and metrics["steps"] == 3
