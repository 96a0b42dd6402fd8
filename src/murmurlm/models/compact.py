"""The compact multi-task murmur model: a small CNN with attention pooling over log-mel frames.

Reads top to bottom (nanoGPT style): :class:`CompactConfig` beside the model, the blocks, the model,
whose ``forward(x, targets=None)`` returns ``(logits, loss)`` so one method serves training and
inference.

Architecture (input ``(batch, n_mels, frames)``, a log-mel spectrogram of one recording):

1. ``BatchNorm1d`` over mel bands: learns each band's level and spread (a per-band standardisation).
2. ``len(channels)`` conv blocks: 3x3 conv, batch norm, ReLU, max-pool. Each halves the mel axis;
   the first ``time_pools`` blocks also halve time (20 ms -> 80 ms steps by default).
3. Mean over the remaining mel axis -> a sequence ``(batch, C, T)``; a 1-D conv (kernel 5) mixes
   neighbouring steps so that one step sees about a heart cycle.
4. Attention pooling: ``softmax`` weights over time (one learned query), concatenated with the
   max over time -> one recording embedding. Any length works, so training uses crops of a few
   seconds and inference the whole recording.
5. One linear head per target: the 11 features of :mod:`murmurlm.data.labels` (plus the auxiliary
   ``Outcome`` when ``aux_outcome``).

The loss is a weighted sum of per-head cross-entropies; a target of ``IGNORE`` (-100) is skipped,
and ``class_weights`` (set from training counts by the recipe) rebalance rare classes.

Examples
--------
>>> import torch
>>> cfg = CompactConfig(channels=(8, 16), n_mels=32)
>>> model = CompactModel(cfg)
>>> x = torch.randn(2, 32, 150)
>>> logits, loss = model(x)
>>> logits["Murmur"].shape, loss is None
(torch.Size([2, 3]), True)
>>> targets = {name: torch.zeros(2, dtype=torch.long) for name in model.head_names}
>>> logits, loss = model(x, targets)
>>> bool(loss > 0)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from murmurlm.data import labels as L

IGNORE = -100
"""Target value that a head skips (e.g. character features of an unusable recording)."""


def head_names(aux_outcome: bool) -> tuple[str, ...]:
    """The heads of a model: the 11 features, then the auxiliary targets switched on."""
    return (*L.FEATURE_NAMES, *((L.OUTCOME.name,) if aux_outcome else ()))


@dataclass
class CompactConfig:
    n_mels: int = 64  # input mel bands (must match the front end)
    channels: tuple[int, ...] = (8, 16, 32, 64)  # conv block widths; wider: better fit, slower
    time_pools: int = 2  # blocks that also halve time; more: faster, coarser timing
    context_kernel: int = 5  # temporal conv after the CNN, in pooled steps (80 ms each by default)
    dropout: float = 0.2  # before the heads
    aux_outcome: bool = True  # extra Outcome head (patient-level target, shared representation)
    character_weight: float = 1.0  # loss weight of each character head relative to Murmur
    aux_weight: float = 0.3  # loss weight of the auxiliary heads
    class_weights: dict[str, list[float]] = field(default_factory=dict)  # per-head CE weights

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("channels must list at least one conv block width")
        if not 0 <= self.time_pools <= len(self.channels):
            raise ValueError(f"time_pools must be in 0..{len(self.channels)}, got {self.time_pools}")
        if self.n_mels < 2 ** len(self.channels):
            raise ValueError(f"n_mels ({self.n_mels}) too small for {len(self.channels)} pooling blocks")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        names = head_names(self.aux_outcome)
        for name, w in self.class_weights.items():
            if name not in names:
                raise ValueError(f"class_weights: unknown head {name!r}; valid: {', '.join(names)}")
            if len(w) != L.feature(name).num_classes:
                raise ValueError(f"class_weights[{name!r}] needs {L.feature(name).num_classes} values")


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, pool_time: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.pool = nn.MaxPool2d((2, 2) if pool_time else (2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))


class AttentionPool(nn.Module):
    """Softmax-weighted mean over time (one learned scoring vector) concatenated with the max."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Conv1d(dim, 1, kernel_size=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, 2C)
        w = torch.softmax(self.score(h), dim=-1)
        return torch.cat([(h * w).sum(-1), h.amax(-1)], dim=1)


class CompactModel(nn.Module):
    def __init__(self, config: CompactConfig):
        super().__init__()
        self.config = config
        self.input_norm = nn.BatchNorm1d(config.n_mels)
        widths = (1, *config.channels)
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], i < config.time_pools) for i in range(len(config.channels))
        )
        c = config.channels[-1]
        self.context = nn.Sequential(
            nn.Conv1d(c, c, config.context_kernel, padding=config.context_kernel // 2, bias=False),
            nn.BatchNorm1d(c), nn.ReLU(),
        )
        self.pool = AttentionPool(c)
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict({_key(n): nn.Linear(2 * c, L.feature(n).num_classes)
                                    for n in head_names(config.aux_outcome)})
        self.head_names = head_names(config.aux_outcome)
        for name, w in config.class_weights.items():
            self.register_buffer(f"cw_{_key(name)}", torch.tensor(w, dtype=torch.float32), persistent=False)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def min_frames(self) -> int:
        """Shortest input (frames) the pooling stack accepts."""
        return 2 ** self.config.time_pools

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Recording embeddings ``(batch, 2 * channels[-1])`` from log-mel ``(batch, n_mels, frames)``."""
        if x.shape[-1] < self.min_frames:
            x = F.pad(x, (0, self.min_frames - x.shape[-1]), value=float(x.min()))
        h = self.input_norm(x).unsqueeze(1)  # (B, 1, M, T)
        for block in self.blocks:
            h = block(h)
        h = self.context(h.mean(dim=2))  # (B, C, T')
        return self.pool(h)

    def forward(self, x: torch.Tensor, targets: dict[str, torch.Tensor] | None = None
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        z = self.dropout(self.embed(x))
        logits = {name: self.heads[_key(name)](z) for name in self.head_names}
        if targets is None:
            return logits, None
        loss = x.new_zeros(())
        for name, target in targets.items():
            if name not in logits or not bool((target != IGNORE).any()):
                continue
            weight = getattr(self, f"cw_{_key(name)}", None)
            head_loss = F.cross_entropy(logits[name], target, weight=weight, ignore_index=IGNORE)
            loss = loss + self._head_weight(name) * head_loss
        return logits, loss

    def _head_weight(self, name: str) -> float:
        if name == L.MURMUR.name:
            return 1.0
        if name in L.FEATURE_NAMES:
            return self.config.character_weight
        return self.config.aux_weight


class CompactEnsemble(nn.Module):
    """Several compact models trained alike (seeds of one config) that predict as one.

    Per head, the members' class probabilities are averaged; the forward pass returns the log of
    that mean as the "logits", so ``softmax(logits)`` is the mean again and code written for one
    :class:`CompactModel` (the predictor, the service) works unchanged. Inference only: the members
    are trained one by one, then combined.

    Examples
    --------
    >>> import torch
    >>> cfg = CompactConfig(channels=(8, 16), n_mels=32)
    >>> members = [CompactModel(cfg).eval() for _ in range(3)]
    >>> ensemble = CompactEnsemble(members).eval()
    >>> x = torch.randn(2, 32, 150)
    >>> logits, _ = ensemble(x)
    >>> mean = torch.stack([torch.softmax(m(x)[0]["Murmur"], -1) for m in members]).mean(0)
    >>> bool(torch.allclose(torch.softmax(logits["Murmur"], -1), mean, atol=1e-6))
    True
    """

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("CompactEnsemble needs at least one member model")
        heads = members[0].head_names
        for i, m in enumerate(members[1:], 1):
            if m.head_names != heads:
                raise ValueError(f"ensemble member {i} has heads {m.head_names}, member 0 has {heads}")
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        self.head_names = heads

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def min_frames(self) -> int:
        return max(m.min_frames for m in self.members)

    def forward(self, x: torch.Tensor, targets: dict[str, torch.Tensor] | None = None
                ) -> tuple[dict[str, torch.Tensor], None]:
        if targets is not None:
            raise ValueError("a CompactEnsemble does not train: train its members, then combine them")
        outputs = [m(x)[0] for m in self.members]
        return {h: torch.log(torch.stack([torch.softmax(o[h].float(), dim=-1) for o in outputs]).mean(0))
                for h in self.head_names}, None


def _key(name: str) -> str:
    """ModuleDict keys cannot hold spaces: 'Systolic murmur timing' -> 'systolic_murmur_timing'."""
    return name.lower().replace(" ", "_")
