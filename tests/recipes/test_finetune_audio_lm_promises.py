"""Promises of docs/audio_lm.md about ``recipes/finetune_audio_lm.py`` under several processes that need
no GPU: FSDP and DeepSpeed ZeRO-3 are refused with a clear error, ZeRO-2 gets its batch settings from
the config, and ``train.batch_size`` (the global micro-batch) must be a multiple of the process count."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from accelerate.utils import DistributedType

from murmurlm.recipes import config_path, load_recipe
from murmurlm.errors import ConfigError

TINY = config_path("audio_lm/tiny")


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("finetune_audio_lm")


def _accelerator(kind, processes=2, deepspeed=None):
    plugin = SimpleNamespace(deepspeed_config=deepspeed) if deepspeed is not None else None
    return SimpleNamespace(distributed_type=kind, num_processes=processes,
                           state=SimpleNamespace(deepspeed_plugin=plugin))


def test_fsdp_and_zero3_are_refused(recipe):
    tc = recipe.load_finetune_config(TINY).train
    with pytest.raises(ConfigError, match=r"FSDP is not supported.*multi_gpu_ddp\.yaml"):
        recipe._check_distributed(_accelerator(DistributedType.FSDP), tc)
    zero3 = {"zero_optimization": {"stage": 3}}
    with pytest.raises(ConfigError, match="ZeRO-3"):
        recipe._check_distributed(_accelerator(DistributedType.DEEPSPEED, deepspeed=zero3), tc)
    recipe._check_distributed(_accelerator(DistributedType.MULTI_GPU), tc)  # DDP is fine


def test_zero2_takes_its_batch_settings_from_the_config(recipe):
    tc = recipe.load_finetune_config(TINY, ["train.batch_size=8", "train.grad_accum=3",
                                            "train.max_grad_norm=0.5"]).train
    ds = {"zero_optimization": {"stage": 2}}
    recipe._check_distributed(_accelerator(DistributedType.DEEPSPEED, processes=4, deepspeed=ds), tc)
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["gradient_clipping"]) == \
        (2, 3, 0.5)


def test_batch_size_must_be_a_multiple_of_the_processes(recipe, monkeypatch, tmp_path):
    import accelerate

    class TwoProcesses:
        num_processes = 2

        def __init__(self, **kw):
            pass

    monkeypatch.setattr(accelerate, "Accelerator", TwoProcesses)
    cfg = recipe.load_finetune_config(TINY, ["train.batch_size=3"])
    with pytest.raises(ConfigError, match=r"train\.batch_size=3 must be a multiple of the number of processes \(2\)"):
        recipe.finetune(cfg, tmp_path / "data", tmp_path / "run", progress=False, cpu=True)
    assert not (tmp_path / "run").exists()
