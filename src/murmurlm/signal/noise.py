"""Noise for robustness tests and noise-aware training: what a stethoscope hears besides the heart.

:func:`pcg_add_noise` adds one noise type to a recording at a chosen signal-to-noise ratio, the
noise scaled against the recording's own RMS (as the independent noise check of the noise issue
did): ``SNR = 20 log10(rms(recording) / rms(noise))``.

Noise types (:data:`NOISE_TYPES`):

- ``white``, ``pink`` (power ~ 1/f), ``brown`` (~ 1/f²): coloured Gaussian noise, shaped in the
  rFFT domain (amplitude ``f ** -alpha/2``), which numpy does well and no audio library adds;
- ``hum``: mains hum, 50 or 60 Hz (drawn) with its 2nd to 5th harmonics at falling levels and a
  small frequency wobble;
- ``friction``: stethoscope friction and rubbing: short band-limited bursts (50-150 ms, 200-1500 Hz
  noise under a Hann envelope) at random times, 1-3 per second;
- ``speech``: a voice-like signal without a speech engine: a glottal pulse train (100-250 Hz,
  drifting pitch) through three formant resonators that change every syllable (~4 per second), with
  pauses (see :func:`murmurlm.signal.noise.speech_like`; ``espeak-ng`` speech can be passed as
  ``bank`` instead);
- ``ambient``: real noise, cut from a ``bank`` of waveforms (e.g. the unannotated stretches of
  CirCor recordings, ``.tsv`` state 0, or recordings of patients labelled Unknown:
  :func:`circor_noise_bank`), looped to length.

Examples
--------
>>> import numpy as np
>>> from murmurlm.signal.synth import synth_pcg
>>> pcg = synth_pcg(6.0, 4000, heart_rate=80, seed=0)
>>> noisy = pcg_add_noise(pcg.waveform, 4000, "pink", snr_db=5.0, seed=1)
>>> noise = noisy - pcg.waveform
>>> round(float(20 * np.log10(np.sqrt(np.mean(pcg.waveform.astype(float) ** 2)) / np.sqrt(np.mean(noise.astype(float) ** 2)))), 2)
5.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

NOISE_TYPES = ("white", "pink", "brown", "hum", "friction", "speech", "ambient")
_COLOUR_ALPHA = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def coloured_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as ``1 / f ** alpha`` (0 white, 1 pink, 2 brown), unit std."""
    white = rng.standard_normal(n)
    if alpha == 0.0 or n < 4:
        return white / (white.std() + 1e-12)
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(n)
    f[0] = f[1]  # no infinite DC gain
    shaped = np.fft.irfft(spectrum * f ** (-alpha / 2.0), n)
    shaped -= shaped.mean()
    return shaped / (shaped.std() + 1e-12)


def mains_hum(n: int, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """50 or 60 Hz hum with harmonics (those below Nyquist), unit std."""
    f0 = float(rng.choice([50.0, 60.0])) * rng.uniform(0.998, 1.002)
    t = np.arange(n) / sampling_rate
    wobble = 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)  # Hz of slow drift
    x = np.zeros(n)
    for k, level in zip(range(1, 6), (1.0, 0.5, 0.35, 0.2, 0.1)):
        if k * f0 < sampling_rate / 2:
            x += level * np.sin(2 * np.pi * k * (f0 * t + np.cumsum(wobble) / sampling_rate) + rng.uniform(0, 2 * np.pi))
    return x / (x.std() + 1e-12)


def friction_bursts(n: int, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Stethoscope friction: short band-limited bursts at random times, unit std."""
    from scipy import signal as sps

    x = np.zeros(n)
    seconds = n / sampling_rate
    count = max(1, int(rng.uniform(1.0, 3.0) * seconds))
    high = min(1500.0, 0.45 * sampling_rate)
    sos = sps.butter(4, (200.0, high), btype="bandpass", fs=sampling_rate, output="sos") if high > 250 else None
    for _ in range(count):
        length = int(rng.uniform(0.05, 0.15) * sampling_rate)
        if length < 4 or length >= n:
            continue
        burst = rng.standard_normal(length)
        if sos is not None:
            burst = sps.sosfiltfilt(sos, burst) if length > 30 else burst
        start = int(rng.integers(0, n - length))
        x[start:start + length] += burst * np.hanning(length) * rng.uniform(0.5, 1.5)
    if not np.any(x):
        x = rng.standard_normal(n) * 1e-3
    return x / (x.std() + 1e-12)


def speech_like(n: int, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A voice-like signal: a glottal pulse train (100-250 Hz, drifting) through three formant
    resonators re-drawn every syllable, with pauses between phrases; unit std."""
    from scipy import signal as sps

    out = np.zeros(n)
    syllable = int(0.25 * sampling_rate)
    f0 = rng.uniform(100.0, 250.0)
    phase, pos = 0.0, 0
    formants = ((300, 900), (850, 2300), (2300, 3200))
    while pos < n:
        length = min(syllable + int(rng.integers(-syllable // 4, syllable // 4 + 1)), n - pos)
        if rng.random() < 0.2:  # a pause
            pos += length
            continue
        pitch = f0 * (1.0 + 0.1 * rng.standard_normal())
        t = np.arange(length)
        inc = pitch / sampling_rate
        pulses = (np.floor(phase + inc * (t + 1)) > np.floor(phase + inc * t)).astype(float)
        phase = (phase + inc * length) % 1.0
        seg = pulses
        for low, high in formants:
            fc = rng.uniform(low, high)
            if fc < 0.45 * sampling_rate:
                b, a = sps.iirpeak(fc, Q=8.0, fs=sampling_rate)
                seg = seg + 0.5 * sps.lfilter(b, a, pulses)
        out[pos:pos + length] = seg * np.hanning(length)
        pos += length
    return out / (out.std() + 1e-12)


def _from_bank(n: int, bank: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    usable = [np.asarray(b, dtype=np.float64) for b in bank if len(b) > 0 and np.std(b) > 0]
    if not usable:
        raise ValueError("the noise bank holds no usable (non-silent) waveform")
    source = usable[int(rng.integers(len(usable)))]
    start = int(rng.integers(len(source)))
    x = np.resize(np.roll(source, -start), n)  # looped to length, from a random point
    x -= x.mean()
    return x / (x.std() + 1e-12)


def make_noise(kind: str, n: int, sampling_rate: int, seed: int | np.random.Generator = 0,
               bank: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """``n`` samples of one noise type (:data:`NOISE_TYPES`), unit std. ``bank``: waveforms at
    ``sampling_rate`` for ``ambient`` (required) and ``speech`` (optional: real speech instead of
    the synthetic voice)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if kind in _COLOUR_ALPHA:
        return coloured_noise(n, _COLOUR_ALPHA[kind], rng)
    if kind == "hum":
        return mains_hum(n, sampling_rate, rng)
    if kind == "friction":
        return friction_bursts(n, sampling_rate, rng)
    if kind == "speech":
        return _from_bank(n, bank, rng) if bank else speech_like(n, sampling_rate, rng)
    if kind == "ambient":
        if not bank:
            raise ValueError("ambient noise needs a bank of real noise waveforms (circor_noise_bank)")
        return _from_bank(n, bank, rng)
    raise ValueError(f"unknown noise type {kind!r}; valid: {', '.join(NOISE_TYPES)}")


def pcg_add_noise(waveform: np.ndarray, sampling_rate: int, kind: str, snr_db: float,
                  seed: int | np.random.Generator = 0, bank: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """The recording plus ``kind`` noise at ``snr_db`` below its own RMS (float32). A silent
    recording comes back unchanged (there is no level to scale the noise to)."""
    x = np.asarray(waveform, dtype=np.float64)
    level = _rms(x)
    if level == 0.0 or len(x) == 0:
        return x.astype(np.float32)
    noise = make_noise(kind, len(x), sampling_rate, seed, bank)
    noise *= level / (10.0 ** (snr_db / 20.0)) / (_rms(noise) + 1e-20)
    return (x + noise).astype(np.float32)


def circor_noise_bank(recordings: Sequence, min_seconds: float = 0.5, unknown_patients: Sequence = ()) -> list[np.ndarray]:
    """Real ambient noise from CirCor: every unannotated stretch (``.tsv`` state 0) of at least
    ``min_seconds`` of ``recordings``, plus the whole recordings of ``unknown_patients`` (patients
    labelled Murmur Unknown, whose recordings are mostly unusable). Use the training patients'
    recordings for training and the test patients' for testing, never both."""
    bank = []
    for rec in recordings:
        try:
            segments = rec.load_segments()
        except Exception:  # no .tsv: nothing unannotated to cut
            continue
        stretches = [s for s in segments if s.state == 0 and s.end - s.start >= min_seconds]
        if not stretches:
            continue
        wave = rec.load_audio()
        for s in stretches:
            a, b = int(s.start * rec.sampling_rate), int(s.end * rec.sampling_rate)
            if b - a > 0:
                bank.append(np.asarray(wave[a:b], dtype=np.float32))
    for patient in unknown_patients:
        for rec in patient.recordings:
            bank.append(np.asarray(rec.load_audio(), dtype=np.float32))
    return bank


SPEECH_SENTENCES = (
    "Take a deep breath and hold it for me, please.",
    "Mummy is here, it will only take a minute.",
    "Can you lie down on your back and stay very still?",
    "The next patient is waiting in room four.",
    "Il faut respirer doucement par la bouche.",
    "Bitte ruhig atmen und nicht sprechen.",
)
"""What the speech bank says: a clinic's talk in three languages (CirCor was recorded in Brazil;
espeak-ng's voices stand in for the people around the child)."""


def espeak_speech_bank(sampling_rate: int = 4000, sentences: Sequence[str] = SPEECH_SENTENCES,
                       voices: Sequence[str] = ("en-us", "en-gb", "fr", "de", "pt-br"),
                       executable: str = "espeak-ng") -> list[np.ndarray]:
    """Real synthetic speech for the ``speech`` noise type: every sentence spoken by ``espeak-ng``
    in every voice (speed and pitch varied), resampled to ``sampling_rate``. Raises
    ``FileNotFoundError`` naming the tool when it is not installed (Debian: ``espeak-ng``)."""
    import shutil
    import subprocess
    import tempfile

    import soundfile as sf

    from murmurlm.signal.filter import pcg_resample

    tool = shutil.which(executable)
    if tool is None:
        raise FileNotFoundError(f"{executable} is not installed (Debian package espeak-ng; scripts/install-system.sh)")
    bank = []
    with tempfile.TemporaryDirectory(prefix="murmurlm-speech-") as tmp:
        for i, (voice, sentence) in enumerate((v, t) for v in voices for t in sentences):
            wav = Path(tmp) / f"{i}.wav"
            speed, pitch = 130 + 15 * (i % 4), 30 + 12 * (i % 5)
            subprocess.run([tool, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), sentence],
                           check=True, capture_output=True, timeout=60)
            audio, rate = sf.read(wav, dtype="float64", always_2d=True)
            bank.append(pcg_resample(audio.mean(axis=1), int(rate), int(sampling_rate)).astype(np.float32))
    return bank


__all__ = ["NOISE_TYPES", "pcg_add_noise", "make_noise", "coloured_noise", "mains_hum", "friction_bursts",
           "speech_like", "circor_noise_bank", "espeak_speech_bank", "SPEECH_SENTENCES"]
