"""The compact model: shapes, any input length, masked targets, class weights, config validation."""

from __future__ import annotations

import pytest
import torch

from murmurlm.data import labels as L
from murmurlm.models.compact import IGNORE, CompactConfig, CompactModel, head_names


def tiny(**kw) -> CompactModel:
    torch.manual_seed(0)
    return CompactModel(CompactConfig(n_mels=16, channels=(4, 8), **kw))


def test_one_head_per_feature_with_the_schema_classes():
    model = tiny().eval()
    logits, loss = model(torch.randn(3, 16, 60))
    assert loss is None
    assert tuple(logits) == (*L.FEATURE_NAMES, L.OUTCOME.name)
    for name, value in logits.items():
        assert value.shape == (3, L.feature(name).num_classes)
    assert tuple(tiny(aux_outcome=False).head_names) == L.FEATURE_NAMES


@pytest.mark.parametrize("frames", [1, 3, 37, 500])
def test_any_length_works(frames):
    logits, _ = tiny().eval()(torch.randn(2, 16, frames))
    assert torch.isfinite(logits["Murmur"]).all()


def test_loss_trains_and_ignores_masked_targets():
    model = tiny()
    x = torch.randn(4, 16, 40)
    targets = {h: torch.zeros(4, dtype=torch.long) for h in model.head_names}
    _, loss = model(x, targets)
    loss.backward()
    assert loss > 0 and all(p.grad is not None for p in model.heads.parameters())
    # a head whose targets are all IGNORE adds nothing (and no NaN)
    masked = {h: torch.full((4,), IGNORE) for h in model.head_names}
    _, zero = model(x, masked)
    assert float(zero) == 0.0
    only_murmur = dict(masked, Murmur=torch.tensor([0, 1, 2, 0]))
    model.eval()
    _, a = model(x, only_murmur)
    _, b = model(x, {"Murmur": torch.tensor([0, 1, 2, 0])})
    assert torch.allclose(a, b)


def test_class_weights_change_the_loss():
    x = torch.randn(6, 16, 40)
    t = {"Murmur": torch.tensor([0, 2, 2, 2, 2, 2])}
    plain = tiny().eval()
    weighted = tiny(class_weights={"Murmur": [10.0, 1.0, 0.1]}).eval()
    weighted.load_state_dict(plain.state_dict())
    assert not torch.allclose(plain(x, t)[1], weighted(x, t)[1])


def test_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="n_mels"):
        CompactConfig(n_mels=8, channels=(4, 8, 16, 32))
    with pytest.raises(ValueError, match="unknown head"):
        CompactConfig(class_weights={"Colour": [1.0]})
    with pytest.raises(ValueError, match="needs 3 values"):
        CompactConfig(class_weights={"Murmur": [1.0, 2.0]})
    with pytest.raises(ValueError, match="time_pools"):
        CompactConfig(time_pools=9)
    assert head_names(False) == L.FEATURE_NAMES

