"""Helpers of the predict/serve tests: a tiny untrained compact predictor (and its checkpoint file)
and synthetic recordings encoded as WAV/FLAC bytes. Imported as ``from predict_helpers import ...``
(pytest puts ``tests/`` on ``sys.path`` through ``tests/conftest.py``)."""

from __future__ import annotations

import dataclasses
import io
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

TINY_MODEL = {"channels": (4, 8), "n_mels": 16}


def tiny_predictor():
    """An untrained compact model behind the real Predictor: fast; its predictions are meaningless."""
    import torch

    from murmurlm.inference.predict import Predictor
    from murmurlm.models.compact import CompactConfig, CompactModel
    from murmurlm.signal.features import FrontEnd

    torch.manual_seed(0)
    model = CompactModel(CompactConfig(**TINY_MODEL))
    return Predictor(model, FrontEnd(n_mels=TINY_MODEL["n_mels"]), window_seconds=4.0, hop_seconds=2.0)


def save_tiny_checkpoint(path: Path) -> Path:
    """The tiny predictor as a checkpoint file that ``load_model(path)`` opens."""
    from murmurlm.inference.predict import CHECKPOINT_KIND
    from murmurlm.train.checkpoint import save_checkpoint

    p = tiny_predictor()
    save_checkpoint(path, kind=CHECKPOINT_KIND, model=p.model.state_dict(),
                    model_config=dataclasses.asdict(p.model.config),
                    front_end=dataclasses.asdict(p.front_end),
                    inference={"window_seconds": 4.0, "hop_seconds": 2.0}, config={})
    return path


def synthetic_wave(duration: float = 6.0, sampling_rate: int = 4000, seed: int = 0) -> np.ndarray:
    """A synthetic PCG with a systolic murmur (float32, about [-1, 1])."""
    from murmurlm.signal.synth import MurmurSpec, synth_pcg

    spec = MurmurSpec("systolic", "Holosystolic", "Plateau", "II/VI", "Medium", "Blowing")
    return synth_pcg(duration, sampling_rate, heart_rate=80, murmurs=[spec], seed=seed).waveform


def encode(wave: np.ndarray, sampling_rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """Audio file bytes of ``wave`` (mono ``(n,)`` or multi-channel ``(n, channels)``)."""
    buf = io.BytesIO()
    sf.write(buf, wave, sampling_rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@contextmanager
def serving(app):
    """``app`` under a real uvicorn server on a free 127.0.0.1 port (in a thread); yields the port.
    Fails the test when the server does not start, or does not stop afterwards."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(15)
    assert not thread.is_alive(), "uvicorn did not stop"
