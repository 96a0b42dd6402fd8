"""Noise augmentation for training: noisy copies of the training recordings (the noise issue).

The noise is added by `audiomentations <https://github.com/iver56/audiomentations>`_, one of:

- ``AddColorNoise``: coloured Gaussian noise, spectral slope drawn in -6..+6 dB/octave (from blue
  through white and pink to brown);
- ``AddBackgroundNoise``: real ambient noise from CirCor, the bank of
  :func:`murmurlm.signal.noise.circor_noise_bank` cut from the **training** patients only
  (unannotated stretches and the recordings of their Unknown patients), written once as WAV files
  because that is what the transform reads;

at an SNR drawn uniformly in ``[min_snr_db, max_snr_db]`` against the recording's own RMS. The
labels stay those of the clean recording: noise does not change the heart. Mains hum, friction
bursts and speech are deliberately **not** used in training, so the noise benchmark
(``benchmarks/noise_robustness.py``) tests them as noise the model never heard.

Every copy is seeded by the recording's name and copy number, so a run is reproducible and a
resumed run sees the same copies.

Example (needs ``pip install 'murmurlm[augment]'``)::

    >>> import numpy as np, tempfile
    >>> from murmurlm.train.augment import NoiseAugment, NoiseAugmenter
    >>> bank = [np.random.default_rng(0).normal(size=8000).astype(np.float32)]
    >>> aug = NoiseAugmenter(NoiseAugment(copies=1, min_snr_db=5, max_snr_db=5), bank, 4000, tempfile.mkdtemp())
    >>> x = np.sin(np.arange(20000) / 20).astype(np.float32)
    >>> y = aug(x, 4000, seed=1)
    >>> bool(abs(20 * np.log10(x.std() / (y - x).std()) - 5) < 0.5)
    True
"""

from __future__ import annotations

import random
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from murmurlm.errors import ConfigError, MurmurlmError


@dataclass
class NoiseAugment:
    """The ``noise:`` block of a compact training config (all off by default)."""

    copies: int = 0  # noisy copies per training recording; 0: no noise augmentation
    p: float = 0.5  # share of training crops drawn from a noisy copy instead of the clean recording
    min_snr_db: float = 0.0  # SNR range against the recording's RMS (uniform)
    max_snr_db: float = 20.0
    ambient: float = 0.5  # share of copies with CirCor ambient noise; the rest coloured noise

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ConfigError(f"noise.copies must be 0 (off) or more, got {self.copies}")
        if not 0.0 <= self.p <= 1.0 or not 0.0 <= self.ambient <= 1.0:
            raise ConfigError(f"noise.p and noise.ambient are shares in [0, 1], got {self.p} and {self.ambient}")
        if self.min_snr_db > self.max_snr_db:
            raise ConfigError(f"noise.min_snr_db ({self.min_snr_db}) is above noise.max_snr_db ({self.max_snr_db})")


@contextmanager
def _seeded(seed: int):
    """audiomentations draws from the global ``random`` and ``numpy.random``: seed both for one call
    and put back the caller's state afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


class NoiseAugmenter:
    """Adds one noise (coloured or CirCor ambient) to a waveform; see the module docstring.

    ``bank``: ambient noise arrays at ``bank_rate`` Hz (may be empty: then coloured noise only);
    ``workdir``: where the bank's WAV files go.
    """

    def __init__(self, cfg: NoiseAugment, bank: Sequence[np.ndarray], bank_rate: int, workdir: str | Path):
        try:
            import audiomentations as A
            import soundfile as sf
        except ImportError as err:  # an optional extra: say how to get it
            raise MurmurlmError("noise augmentation needs audiomentations: pip install 'murmurlm[augment]'") from err
        self.cfg = cfg
        self.colour = A.AddColorNoise(min_snr_db=cfg.min_snr_db, max_snr_db=cfg.max_snr_db, p=1.0)
        self.ambient = None
        clips = [np.asarray(b, np.float32) for b in bank if len(b) >= bank_rate // 4]
        if clips and cfg.ambient > 0:
            folder = Path(workdir)
            folder.mkdir(parents=True, exist_ok=True)
            paths = []
            for i, clip in enumerate(clips):
                peak = float(np.abs(clip).max()) or 1.0
                path = folder / f"noise-{i:05d}.wav"
                sf.write(path, clip / peak * 0.9, bank_rate, subtype="PCM_16")  # level is set by the SNR anyway
                paths.append(path)
            self.ambient = A.AddBackgroundNoise(sounds_path=paths, min_snr_db=cfg.min_snr_db,
                                                max_snr_db=cfg.max_snr_db, noise_rms="relative", p=1.0)

    def __call__(self, waveform: np.ndarray, sampling_rate: int, seed: int) -> np.ndarray:
        x = np.asarray(waveform, np.float32)
        if not np.any(x):
            return x.copy()  # silence: no level to scale the noise to
        with _seeded(seed):
            use_ambient = self.ambient is not None and random.random() < self.cfg.ambient
            transform = self.ambient if use_ambient else self.colour
            return np.asarray(transform(samples=x, sample_rate=sampling_rate), np.float32)


def copy_seed(name: str, copy: int, seed: int) -> int:
    """The seed of noisy copy ``copy`` of recording ``name`` in a run seeded ``seed``."""
    return zlib.crc32(f"{name}/{copy}/{seed}".encode())


def noisy_recordings(recordings: Sequence, cfg: NoiseAugment, seed: int, bank: Sequence[np.ndarray],
                     progress: bool = False) -> Iterator[tuple[object, list[np.ndarray]]]:
    """Each recording with its ``cfg.copies`` noisy waveforms (copy ``c`` seeded by
    :func:`copy_seed`), its audio read once; ``bank``: the ambient noise at the recordings' rate. The
    bank's WAV files live in a temporary folder for as long as the iteration runs."""
    from tqdm.auto import tqdm

    rate = min(r.sampling_rate for r in recordings)
    with tempfile.TemporaryDirectory(prefix="murmurlm-noise-") as workdir:
        augmenter = NoiseAugmenter(cfg, bank, rate, workdir)
        for rec in tqdm(recordings, desc="noisy copies", leave=False, disable=not progress):
            wave = rec.load_audio()
            yield rec, [augmenter(wave, rec.sampling_rate, copy_seed(rec.name, c, seed)) for c in range(cfg.copies)]


__all__ = ["NoiseAugment", "NoiseAugmenter", "copy_seed", "noisy_recordings"]
