"""Options of recipes/finetune_audio_lm.py that the Whisper benchmark runs with: class-weighted draws
with replacement (``train.sample_power``), a wall-clock budget (``train.max_minutes``) and more
windows per recording when scoring (``data.eval_max_windows``); on the tiny Qwen2-Audio and the
synthetic CirCor."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from murmurlm.data.circor import load_circor
from murmurlm.recipes import config_path, load_recipe
from murmurlm.testing.tiny_qwen2_audio import build_tiny_qwen2_audio
from murmurlm.train.seeding import epoch_seed

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
def ids(synthetic_circor):
    ids = sorted(p.patient_id for p in load_circor(synthetic_circor).patients)
    return ids[:6], ids[6:7]


def run(recipe, tiny, data, ids, out, *extra, resume=False):
    cfg = recipe.load_recipe_config(TINY_CONFIG, [f"model.source={tiny}", FEATURES, "train.batch_size=4",
                                                  "train.log_every=1", *extra])
    return recipe.finetune(cfg, data, out, ids[0], ids[1], resume=resume, progress=False, cpu=True)


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "loss" in r}


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


# --------------------------------------------------------------------------------------------
# sample_power


def test_the_options_default_to_the_old_behaviour(recipe):
    cfg = recipe.FinetuneConfig()
    assert cfg.train.sample_power == 0.0 and cfg.train.max_minutes is None and cfg.data.eval_max_windows is None
    assert cfg.data.eval_audio() == cfg.data.audio
    # 0: every item once an epoch, in the permutation the recipe always used (written out here)
    assert recipe._epoch_order(50, 3, 2) == np.random.default_rng(epoch_seed(3, 2)).permutation(50).tolist()
    for bad in ("train.sample_power=-0.5", "train.max_minutes=0", "data.eval_max_windows=-1"):
        with pytest.raises(Exception, match=bad.split("=")[0].split(".")[1]):
            recipe.load_recipe_config(TINY_CONFIG, [bad])


def test_rare_classes_are_drawn_more_often_than_their_share(recipe):
    classes = [("Murmur", "Absent")] * 90 + [("Murmur", "Present")] * 10
    share = {}
    for power in (0.5, 1.0):
        weights = recipe.item_weights(classes, power)
        assert weights.sum() == pytest.approx(1.0)
        drawn = [i for step in range(500) for i in recipe.draw_items(weights, 16, seed=0, step=step)]
        share[power] = np.mean([classes[i][1] == "Present" for i in drawn])
    # count ** -power: Present drawn sqrt(10) : sqrt(90) = 0.25 with power 0.5, half with power 1 (10 % of the items)
    assert share[0.5] == pytest.approx(0.25, abs=0.02) and share[1.0] == pytest.approx(0.5, abs=0.02)
    # a function of (seed, step) alone
    w = recipe.item_weights(classes, 0.5)
    assert recipe.draw_items(w, 16, 0, 7) == recipe.draw_items(w, 16, 0, 7) != recipe.draw_items(w, 16, 0, 8)
    assert recipe.draw_items(w, 16, 0, 7) != recipe.draw_items(w, 16, 1, 7)


def test_the_draws_of_a_run_favour_its_rare_classes(recipe, synthetic_circor, ids):
    from murmurlm.models.instructions import InstructionDataset, load_prompts

    cfg = recipe.load_recipe_config(TINY_CONFIG, [FEATURES, "train.batch_size=4", "train.sample_power=1"])
    data = load_circor(synthetic_circor)
    train = [p for p in data.patients if p.patient_id in ids[0]]
    ds = InstructionDataset(train, load_prompts(recipe.shipped_file(cfg.data.prompts), cfg.data.features),
                            cfg.data.audio, cfg.data.features, label_rule="patient")
    classes = recipe.item_classes(ds)
    assert len(classes) == len(ds) and {f for f, _ in classes} == {"Murmur", "Systolic murmur pitch"}
    counts = Counter(classes)
    rare = min(counts, key=counts.get)
    assert counts[rare] < max(counts.values())  # the synthetic data has a rarer class
    weights = recipe.item_weights(classes, cfg.train.sample_power)
    order = [i for e in range(40) for i in recipe._drawn_order(weights, cfg.train, e, 3)]
    assert len(order) == 40 * 3 * 4  # 3 optimiser steps of 4 drawn items an "epoch"
    drawn = Counter(classes[i] for i in order)
    assert drawn[rare] / len(order) > 1.5 * counts[rare] / len(classes)
    # power 1: each (feature, class) weighs 1 in all, so each is drawn alike
    expected = len(order) / len(counts)
    assert all(abs(drawn[c] - expected) < 0.3 * expected for c in counts), (counts, drawn)


def test_power_zero_keeps_the_epoch_order(recipe, tiny, synthetic_circor, ids, tmp_path):
    extra = ("train.max_steps=2", "train.save_every=0")
    default = run(recipe, tiny, synthetic_circor, ids, tmp_path / "default", *extra)
    explicit = run(recipe, tiny, synthetic_circor, ids, tmp_path / "zero", *extra, "train.sample_power=0")
    assert losses(tmp_path / "zero") == losses(tmp_path / "default")  # exact floats
    assert default["stopped"] == explicit["stopped"] == "steps" and default["steps"] == 2
    drawn = run(recipe, tiny, synthetic_circor, ids, tmp_path / "drawn", *extra, "train.sample_power=0.5",
                "data.eval_max_windows=0")
    assert losses(tmp_path / "drawn") != losses(tmp_path / "default")  # other examples
    assert drawn["steps"] == 2 and np.isfinite(drawn["loss"])


# --------------------------------------------------------------------------------------------
# max_minutes


def test_the_budget_stops_a_run_after_one_step(recipe, tiny, synthetic_circor, ids, tmp_path):
    out = tmp_path / "run"
    summary = run(recipe, tiny, synthetic_circor, ids, out, "train.max_steps=50", "train.save_every=0",
                  "train.max_minutes=0.000001")  # 60 microseconds: over after the first step
    assert summary["steps"] == 1 and summary["planned_steps"] == 50 and summary["stopped"] == "budget"
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert (out / "checkpoints" / "step_1" / "trainer_state.pt").exists()  # resumable from there
    assert sorted(losses(out)) == [1]
    assert summary["val"] is not None and (out / "predictions_val.csv").exists()  # evaluated as at the end
    assert json.loads((out / "summary.json").read_text())["stopped"] == "budget"
    # a fresh run into the same folder is refused (it would mix its log and checkpoints with these)
    from murmurlm.errors import MurmurlmError

    with pytest.raises(MurmurlmError, match="already holds a run"):
        run(recipe, tiny, synthetic_circor, ids, out, "train.max_steps=2")
    assert sorted(losses(out)) == [1]  # nothing was appended


# --------------------------------------------------------------------------------------------
# resume


def test_resume_with_drawn_examples_is_bit_identical(recipe, tiny, synthetic_circor, ids, tmp_path, monkeypatch):
    """Killed after step 4, resumed from step 2 (mid-"epoch" of 3 steps, 2 micro-steps each): the draws
    are replayed from (seed, micro-step), across the epoch boundary."""
    extra = ("train.max_steps=5", "train.save_every=2", "train.warmup_steps=1", "model.lora.dropout=0.1",
             "train.batch_size=8", "train.grad_accum=2", "train.sample_power=0.5")
    reference = tmp_path / "reference"
    run(recipe, tiny, synthetic_circor, ids, reference, *extra)

    interrupted = tmp_path / "interrupted"
    write = recipe.MetricsLog.write

    def crash_at_step_4(self, record):
        if record.get("step") == 4 and "loss" in record:
            raise KeyboardInterrupt
        write(self, record)

    monkeypatch.setattr(recipe.MetricsLog, "write", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run(recipe, tiny, synthetic_circor, ids, interrupted, *extra)
    monkeypatch.setattr(recipe.MetricsLog, "write", write)
    assert sorted(losses(interrupted)) == [1, 2, 3]

    resumed = run(recipe, tiny, synthetic_circor, ids, interrupted, *extra, resume=True)
    assert resumed["steps"] == 5
    epochs = {r["step"]: r["epoch"] for r in map(json.loads, (reference / "metrics.jsonl").read_text().splitlines())
              if "loss" in r}
    assert epochs == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1}
    assert losses(interrupted) == losses(reference)  # bit-identical
    ref, got = adapter_weights(reference / "adapter"), adapter_weights(interrupted / "adapter")
    assert ref.keys() == got.keys() and ref
    for key in ref:
        assert torch.equal(got[key], ref[key]), key
    assert resumed["val"] == json.loads((reference / "summary.json").read_text())["val"]
