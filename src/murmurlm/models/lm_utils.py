"""Small torch helpers shared by the audio-LM backends (Qwen2-Audio, Whisper): device and dtype
resolution, padding of token-id lists, position ids under padding, and a peft warning filter."""

from __future__ import annotations

import contextlib
import warnings
from typing import Sequence

import torch

from murmurlm.models.audio_lm import AudioLMError

IGNORE_INDEX = -100
"""Label id that cross-entropy ignores: prompt and padding positions."""

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; a cuda device without CUDA is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AudioLMError(f"device {device!r} asked for, but CUDA is not available; use device=cpu")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' -> bf16 on GPU, fp32 on CPU; else one of DTYPES."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise AudioLMError(f"dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}") from None


def pad_ids(rows: Sequence[Sequence[int]], value: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to one tensor on the ``side`` ('right' to train, 'left' to generate);
    returns (ids, attention mask)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        ids[i, sl] = torch.tensor(list(r), dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding (left or right): cumsum of the mask, from 0."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@contextlib.contextmanager
def quiet_peft():
    """peft 0.21 reads transformers' deprecated ``is_gradient_checkpointing``: silence that warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
