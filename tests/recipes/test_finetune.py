"""Smoke tests of recipes/finetune_audio_lm.py on the tiny Qwen2-Audio and the synthetic CirCor:
outputs, resume after an interruption, and 2 CPU processes (gloo) against one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from murmurlm.recipes import config_path, load_recipe
from murmurlm.data.circor import load_circor
from murmurlm.data.splits import Split, write_split
from murmurlm.models.audio_lm import load_backend_from_adapter
from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = config_path("audio_lm/tiny")
FEATURES = "data.features=[Murmur, Systolic murmur pitch]"


@pytest.fixture(scope="module")
def recipe():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add synchronisation on a shared machine
    yield load_recipe("finetune_audio_lm")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny_model"), seed=0)


@pytest.fixture(scope="module")
def split(synthetic_circor, tmp_path_factory):
    ids = sorted(p.patient_id for p in load_circor(synthetic_circor).patients)
    folder = tmp_path_factory.mktemp("split")
    write_split(Split(train=ids[:6], val=ids[6:7]), folder)
    return folder


def overrides(tiny, *extra):
    return [f"model.source={tiny}", FEATURES, "train.batch_size=4", "train.log_every=1", *extra]


def run(recipe, tiny, data, split, out, *extra, resume=False):
    from murmurlm.data.splits import read_split

    cfg = recipe.load_finetune_config(TINY_CONFIG, overrides(tiny, *extra))
    s = read_split(split)
    return recipe.finetune(cfg, data, out, s.train, s.val, resume=resume, progress=False, cpu=True)


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "loss" in r}


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def test_finetune_writes_adapter_checkpoints_metrics_and_predictions(recipe, tiny, synthetic_circor, split, tmp_path):
    from murmurlm.evaluate.predictions import read_predictions

    out = tmp_path / "run"
    summary = run(recipe, tiny, synthetic_circor, split, out, "train.max_steps=4", "train.save_every=2")
    assert summary["steps"] == 4 and np.isfinite(summary["loss"])
    log = losses(out)
    assert sorted(log) == [1, 2, 3, 4] and all(np.isfinite(v) for v in log.values())
    assert log[4] < log[1]  # lr 3e-3 on 4 examples a step: the answer format is learnt fast
    assert (out / "checkpoints" / "step_2" / "trainer_state.pt").exists()
    assert (out / "config.yaml").exists() and (out / "prompts.yaml").exists()
    assert recipe.load_finetune_config(out / "config.yaml").model.source == str(tiny)
    preds = read_predictions(out / "predictions_val.csv")
    from murmurlm.data.splits import read_split

    assert list(preds.index.astype(str)) == read_split(split).val
    final = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r.get("final")]
    assert final and set(final[0]["val"]) >= {"Murmur", "Systolic murmur pitch", "mean_macro_f1"}
    backend = load_backend_from_adapter(out / "adapter")  # the finished run's adapter loads on its own
    probs = backend.score([np.zeros(16000, np.float32)], ["Is a heart murmur present?"], ["Present", "Absent"])
    assert probs.shape == (1, 2)


# 48 training examples, 3 optimiser steps an epoch either way; the run is killed after step 4:
# - grad_accum 1, save_every 2: resumed from step 2, mid-epoch (2 batches skipped), across the epoch boundary;
# - grad_accum 2, save_every 3: resumed from the checkpoint at the very end of epoch 0 (nothing left to skip).
@pytest.mark.parametrize("batch_size, grad_accum, save_every", [(16, 1, 2), (8, 2, 3)])
def test_resume_after_interruption_is_bit_identical_to_an_uninterrupted_run(
        recipe, tiny, synthetic_circor, split, tmp_path, monkeypatch, batch_size, grad_accum, save_every):
    extra = ("train.max_steps=5", f"train.save_every={save_every}", "train.schedule=cosine", "train.warmup_steps=1",
             "model.lora.dropout=0.1",  # dropout masks must be replayed too
             f"train.batch_size={batch_size}", f"train.grad_accum={grad_accum}")
    reference = tmp_path / "reference"
    run(recipe, tiny, synthetic_circor, split, reference, *extra)

    interrupted = tmp_path / "interrupted"
    write = recipe.MetricsLog.write

    def crash_at_step_4(self, record):
        if record.get("step") == 4 and "loss" in record:
            raise KeyboardInterrupt  # killed after step 4, whose checkpoint was never written
        write(self, record)

    monkeypatch.setattr(recipe.MetricsLog, "write", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run(recipe, tiny, synthetic_circor, split, interrupted, *extra)
    monkeypatch.setattr(recipe.MetricsLog, "write", write)
    assert sorted(losses(interrupted)) == [1, 2, 3]

    resumed = run(recipe, tiny, synthetic_circor, split, interrupted, *extra, resume=True)
    assert resumed["steps"] == 5
    epochs = {r["step"]: r["epoch"] for r in map(json.loads, (reference / "metrics.jsonl").read_text().splitlines())
              if "loss" in r}
    assert epochs == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1}  # the layout the two cases above rely on
    assert losses(interrupted) == losses(reference)  # bit-identical: exact floats, no tolerance
    ref, got = adapter_weights(reference / "adapter"), adapter_weights(interrupted / "adapter")
    assert ref.keys() == got.keys() and ref
    for key in ref:
        assert torch.equal(got[key], ref[key]), key
    # the final evaluation of the resumed adapter is the uninterrupted one's, to the last digit
    assert resumed["val"] == json.loads((reference / "summary.json").read_text())["val"]
    assert (interrupted / "predictions_val.csv").read_bytes() == (reference / "predictions_val.csv").read_bytes()
    # resuming a finished run trains no further
    assert run(recipe, tiny, synthetic_circor, split, interrupted, *extra, resume=True)["steps"] == 5
    assert sorted(losses(interrupted)) == [1, 2, 3, 4, 5]


def test_resume_without_checkpoint_is_a_clear_error(recipe, tiny, synthetic_circor, split, tmp_path):
    from murmurlm.errors import MurmurlmError

    with pytest.raises(MurmurlmError, match="no checkpoint"):
        run(recipe, tiny, synthetic_circor, split, tmp_path / "empty", "train.max_steps=1", resume=True)


def test_cli_rejects_bad_config_in_one_line(tiny, synthetic_circor, tmp_path, capsys):
    from murmurlm.cli import main

    code = main(["finetune", "--config", str(TINY_CONFIG), "--data", str(synthetic_circor), "--out",
                 str(tmp_path / "x"), "--cpu", "model.lora.target=decoder"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "decoder" in err and len(err.splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(recipe, tiny, synthetic_circor, split, tmp_path):
    """DDP over gloo with 2 processes gives the losses and the adapter of 1 process on the same
    global batches (each process takes half of every batch; token sums are gathered)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    extra = ("train.max_steps=3", "train.save_every=0", "model.lora.dropout=0.0")
    args = ["--config", str(TINY_CONFIG), "--data", str(synthetic_circor), "--split", str(split), "--cpu",
            "--no-progress", *overrides(tiny, *extra)]
    one, two = tmp_path / "one", tmp_path / "two"
    run(recipe, tiny, synthetic_circor, split, one, *extra)  # one process: this one
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                             "-m", "murmurlm.recipes.finetune_audio_lm", "--out", str(two), *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert "2 process(es)" in double.stderr
    assert sorted(losses(one)) == [1, 2, 3]
    assert losses(two) == pytest.approx(losses(one), rel=1e-5)
    a, b = adapter_weights(one / "adapter"), adapter_weights(two / "adapter")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
    # the evaluation was shared out over the two processes and gathered into one predictions file
    from murmurlm.evaluate.predictions import read_predictions

    p1, p2 = read_predictions(one / "predictions_val.csv"), read_predictions(two / "predictions_val.csv")
    assert p1.index.tolist() == p2.index.tolist()
    prob_columns = [c for c in p1.columns if c.startswith("P(")]
    assert (p1.drop(columns=prob_columns) == p2.drop(columns=prob_columns)).all().all()
    np.testing.assert_allclose(p2[prob_columns].to_numpy(float), p1[prob_columns].to_numpy(float), atol=1e-5)


def test_the_recipe_runs_the_whisper_backend_too(recipe, synthetic_circor, split, tmp_path):
    """Recipes never care which model is behind the interface."""
    from murmurlm.testing.tiny_whisper import build_tiny_whisper

    source = build_tiny_whisper(tmp_path / "tiny_whisper", seed=0)
    summary = run(recipe, source, synthetic_circor, split, tmp_path / "run", "model.backend=whisper",
                  "model.lora.target_modules=[q_proj, v_proj, out_proj]", "model.lora.modules_to_save=[]",
                  "train.max_steps=2", "train.save_every=0")
    assert summary["steps"] == 2 and np.isfinite(summary["loss"])
    assert json.loads((tmp_path / "run" / "adapter" / "murmurlm_backend.json").read_text())["backend"] == "whisper"
    assert (tmp_path / "run" / "predictions_val.csv").exists()
