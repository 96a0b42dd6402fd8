"""SSAMBA-style segmenter: log-mel patches, bidirectional Mamba2 blocks, a per-frame head over 5 states.

After SSAMBA (S. Shams, S. Dindar, X. Jiang, N. Mesgarani, "SSAMBA: Self-Supervised Audio Representation
Learning with Mamba State Space Model", arXiv 2405.11831, 2024), which the paper (Florea et al. 2025)
uses to segment PCGs. The audio (resampled to 4 kHz) becomes a log-mel spectrogram with a 10 ms hop,
standardised per recording; every ``patch_frames`` spectrogram frames (2: 20 ms) form one patch,
linearly embedded. Each block applies two Mamba2 mixers to the normalised sequence — one scanning
forward, one scanning the time-reversed sequence (Vision Mamba / SSAMBA's bidirectional scan) — and adds
both to the residual stream. A linear head gives per-frame logits over CirCor's states (0 unannotated,
1 S1, 2 systole, 3 S2, 4 diastole) at 50 frames per second.

The mixer is ``transformers.models.mamba2.modeling_mamba2.Mamba2Mixer`` (pure PyTorch on CPU; the
mamba-ssm CUDA kernels on GPU when installed). :meth:`MambaSegmenter.pretrain_loss` is SSAMBA's
self-supervised objective: mask a fraction of the patches and reconstruct them (mean squared error on
the masked patches). Decoding turns the posteriors into emission likelihoods for the duration-dependent
HSMM (:mod:`.hsmm`), with heart rate and systolic interval from the posteriors' periodicity.

Examples
--------
>>> import torch
>>> from murmurlm.signal.synth import synth_pcg
>>> torch.manual_seed(0) and None
>>> model = MambaSegmenter(MambaSegmenterConfig(d_model=32, n_layers=1))
>>> pcg = synth_pcg(4.0, sampling_rate=4000, seed=0)
>>> feats = model.features(pcg.waveform, 4000)
>>> feats.shape                                  # 4 s: 200 patches of 2 frames x 32 mel bands
torch.Size([200, 64])
>>> logits, loss = model(feats[None])
>>> logits.shape, loss is None
(torch.Size([1, 200, 5]), True)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from murmurlm.errors import ConfigError
from murmurlm.signal.filter import pcg_resample
from murmurlm.signal.segment.envelopes import num_frames
from murmurlm.signal.segment.hsmm import NUM_STATES, HSMMParams, decode_posteriors

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


@dataclass
class MambaSegmenterConfig:
    """Architecture and front end of :class:`MambaSegmenter`."""

    sampling_rate: int = 4000      # audio is resampled to this rate first
    n_fft: int = 256               # 64 ms windows at 4 kHz
    hop_length: int = 40           # 10 ms between spectrogram frames
    n_mels: int = 32
    fmin: float = 20.0
    fmax: float = 1000.0           # heart sounds < 200 Hz, most murmur energy < 600 Hz
    patch_frames: int = 2          # frames per patch: output every 2 x 10 ms = 20 ms (50 Hz)
    d_model: int = 64              # higher: more capacity, slower on CPU
    n_layers: int = 4
    d_state: int = 16
    expand: int = 2
    head_dim: int = 16
    conv_kernel: int = 4
    chunk_size: int = 32           # the chunked scan is exact for any size: speed only (32 fastest on CPU here)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("sampling_rate", "n_fft", "hop_length", "n_mels", "patch_frames", "d_model", "n_layers",
                     "d_state", "expand", "head_dim", "conv_kernel", "chunk_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if (self.d_model * self.expand) % self.head_dim:
            raise ValueError(f"d_model * expand ({self.d_model * self.expand}) must be a multiple of head_dim "
                             f"({self.head_dim})")
        if not 0 < self.fmin < self.fmax <= self.sampling_rate / 2:
            raise ValueError(f"need 0 < fmin < fmax <= sampling_rate / 2, got {self.fmin}, {self.fmax}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be within [0, 1), got {self.dropout}")
        if self.sampling_rate % (self.hop_length * self.patch_frames):
            raise ValueError("sampling_rate must be a multiple of hop_length * patch_frames "
                             f"({self.hop_length * self.patch_frames}) so that frames are whole")

    @property
    def frame_rate(self) -> int:
        """Output frames per second."""
        return self.sampling_rate // (self.hop_length * self.patch_frames)

    @property
    def patch_dim(self) -> int:
        return self.patch_frames * self.n_mels


def _mamba2_config(cfg: MambaSegmenterConfig):
    from transformers.models.mamba2.configuration_mamba2 import Mamba2Config

    return Mamba2Config(
        hidden_size=cfg.d_model, num_heads=cfg.d_model * cfg.expand // cfg.head_dim, head_dim=cfg.head_dim,
        state_size=cfg.d_state, expand=cfg.expand, n_groups=1, conv_kernel=cfg.conv_kernel,
        num_hidden_layers=cfg.n_layers, chunk_size=cfg.chunk_size, vocab_size=1, use_bias=False,
        pad_token_id=None, bos_token_id=None, eos_token_id=None,
        use_conv_bias=True, residual_in_fp32=True,
    )


class BiMambaBlock(nn.Module):
    """Pre-norm residual block with a forward and a backward (time-reversed) Mamba2 mixer."""

    def __init__(self, cfg: MambaSegmenterConfig, layer_idx: int):
        super().__init__()
        from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer, Mamba2RMSNorm

        mcfg = _mamba2_config(cfg)
        self.norm = Mamba2RMSNorm(cfg.d_model, eps=mcfg.layer_norm_epsilon)
        self.forward_mixer = Mamba2Mixer(mcfg, layer_idx=layer_idx)
        self.backward_mixer = Mamba2Mixer(mcfg, layer_idx=layer_idx)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        fwd = self.forward_mixer(h)
        bwd = self.backward_mixer(h.flip(1)).flip(1)
        return x + self.dropout(fwd + bwd)


class MambaSegmenter(nn.Module):
    """Bidirectional Mamba2 segmenter (see the module docstring).

    ``forward(patches, targets=None) -> (logits, loss)``: ``patches`` ``(B, T, patch_dim)``, targets
    ``(B, T)`` states with -100 for padding; ``loss`` is the mean cross-entropy (None without targets).
    """

    def __init__(self, cfg: MambaSegmenterConfig | None = None):
        super().__init__()
        self.cfg = cfg or MambaSegmenterConfig()
        c = self.cfg
        self.embed = nn.Linear(c.patch_dim, c.d_model)
        self.mask_token = nn.Parameter(torch.zeros(c.patch_dim))
        self.blocks = nn.ModuleList(BiMambaBlock(c, i) for i in range(c.n_layers))
        from transformers.models.mamba2.modeling_mamba2 import Mamba2RMSNorm
        self.norm = Mamba2RMSNorm(c.d_model)
        self.head = nn.Linear(c.d_model, NUM_STATES)
        self.reconstruct = nn.Linear(c.d_model, c.patch_dim)   # pre-training head
        from transformers.audio_utils import mel_filter_bank
        mel = mel_filter_bank(num_frequency_bins=c.n_fft // 2 + 1, num_mel_filters=c.n_mels, min_frequency=c.fmin,
                              max_frequency=c.fmax, sampling_rate=c.sampling_rate, norm="slaney",
                              mel_scale="slaney")
        self.register_buffer("mel", torch.tensor(mel, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        # emission priors and HSMM parameters, set by training (used by decode)
        self.register_buffer("priors", torch.full((NUM_STATES,), 1.0 / NUM_STATES))
        self.hsmm = HSMMParams()
        self.use_unannotated = True  # False: decode the four cardiac states only (every frame annotated)

    @property
    def frame_rate(self) -> int:
        return self.cfg.frame_rate

    def set_chunk_size(self, chunk_size: int) -> None:
        """Chunk length of the Mamba2 scans. The chunked scan computes the same sequence for any chunk
        length (to float rounding); only its cost changes, so a checkpoint may run with another."""
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.cfg.chunk_size = chunk_size
        for block in self.blocks:
            block.forward_mixer.chunk_size = chunk_size
            block.backward_mixer.chunk_size = chunk_size

    # ---------------------------------------------------------------------------------- front end
    @torch.no_grad()
    def features(self, waveform: np.ndarray | torch.Tensor, sampling_rate: float) -> torch.Tensor:
        """Standardised log-mel patches ``(num_frames, patch_dim)`` of one recording."""
        c = self.cfg
        x = np.asarray(waveform, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"MambaSegmenter.features: expected a 1-D waveform, got shape {x.shape}")
        n_out = num_frames(len(x), sampling_rate, c.frame_rate)
        if int(sampling_rate) != c.sampling_rate:
            x = pcg_resample(x, int(sampling_rate), c.sampling_rate).astype(np.float32)
        wav = torch.from_numpy(np.ascontiguousarray(x))
        spec = torch.stft(wav, c.n_fft, c.hop_length, window=self.window, center=True, return_complex=True)
        power = spec.abs().pow(2)                                   # (freq, frames)
        logmel = torch.log(self.mel.T @ power + 1e-10).T            # (frames, mels)
        logmel = (logmel - logmel.mean(dim=0)) / (logmel.std() + 1e-5)
        need = n_out * c.patch_frames
        if logmel.shape[0] < need:
            logmel = torch.cat([logmel, logmel[-1:].expand(need - logmel.shape[0], -1)])
        return logmel[:need].reshape(n_out, c.patch_dim).contiguous()

    # ---------------------------------------------------------------------------------- network
    def encode(self, patches: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            patches = torch.where(mask[..., None], self.mask_token.to(patches.dtype), patches)
        h = self.embed(patches)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward(self, patches: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.head(self.encode(patches))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, NUM_STATES), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def pretrain_loss(self, patches: torch.Tensor, mask_ratio: float = 0.4,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """SSAMBA-style masked patch prediction: MSE of the reconstructed masked patches."""
        mask = torch.rand(patches.shape[:2], generator=generator, device=patches.device) < mask_ratio
        recon = self.reconstruct(self.encode(patches, mask))
        return F.mse_loss(recon[mask], patches[mask])

    # ---------------------------------------------------------------------------------- decoding
    @torch.no_grad()
    def posteriors(self, waveform: np.ndarray, sampling_rate: float) -> np.ndarray:
        """``P(state | frame)`` ``(T, 5)`` for one recording."""
        was_training = self.training
        self.eval()
        try:
            logits, _ = self(self.features(waveform, sampling_rate)[None])
        finally:
            self.train(was_training)
        return torch.softmax(logits[0].float(), dim=-1).numpy().astype(np.float64)

    def decode(self, waveform: np.ndarray, sampling_rate: float) -> tuple[np.ndarray, float, float]:
        """Per-frame states (HSMM-decoded), heart rate (bpm) and systolic interval (s)."""
        post = self.posteriors(waveform, sampling_rate)
        return decode_posteriors(post, self.priors.double().numpy(), self.frame_rate, self.hsmm,
                                 allow_unannotated=self.use_unannotated)


# -------------------------------------------------------------------------------------- checkpoints


def save_mamba_segmenter(model: MambaSegmenter, path: str | Path, extra: dict[str, Any] | None = None,
                         half: bool = False) -> None:
    """A self-describing checkpoint: weights, model config, HSMM parameters, priors, ``extra``
    (training config, step, metrics). ``half`` stores the weights in float16 (halves the size)."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({
        "version": CHECKPOINT_VERSION, "kind": "murmurlm.segment.mamba",
        "model_config": asdict(model.cfg), "hsmm": model.hsmm.to_dict(), "state_dict": state,
        **(extra or {}),
    }, Path(path))


def load_mamba_segmenter(path: str | Path, chunk_size: int | None = None) -> MambaSegmenter:
    """Load a checkpoint written by :func:`save_mamba_segmenter` (CPU, eval mode). ``chunk_size``
    overrides the checkpoint's scan chunk length (speed only, see :meth:`MambaSegmenter.set_chunk_size`)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"Mamba segmenter checkpoint not found: {path}") from None
    except Exception as err:  # torch raises several types for a file that is not a checkpoint
        raise ConfigError(f"{path}: not a Mamba segmenter checkpoint ({err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "murmurlm.segment.mamba":
        raise ConfigError(f"{path}: not a murmurlm Mamba segmenter checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(f"{path}: checkpoint version {ckpt.get('version')}, this murmurlm reads {CHECKPOINT_VERSION}")
    valid = {f.name for f in fields(MambaSegmenterConfig)}
    cfg = MambaSegmenterConfig(**{k: v for k, v in ckpt["model_config"].items() if k in valid})
    model = MambaSegmenter(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(state)
    hsmm_valid = {f.name for f in fields(HSMMParams)}
    model.hsmm = HSMMParams(**{k: v for k, v in ckpt.get("hsmm", {}).items() if k in hsmm_valid})
    if chunk_size is not None:
        model.set_chunk_size(chunk_size)
    return model.eval()
