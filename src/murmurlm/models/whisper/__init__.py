"""The Whisper family: CTranslate2 weights (:mod:`.ct2_format`), their conversion to transformers
(:mod:`.convert`), where a model comes from (:mod:`.sources`), and the audio-LM backend
(:mod:`.backend`, imported on its own: it loads torch, transformers and peft).

>>> from murmurlm.models.whisper import resolve_whisper_source, read_ct2_model
>>> callable(resolve_whisper_source) and callable(read_ct2_model)
True
"""

from __future__ import annotations

from murmurlm.models.whisper.ct2_format import (  # noqa: F401
    CT2FormatError, CT2Model, SUPPORTED_BINARY_VERSIONS, join_ct2_parts, read_ct2_model, write_ct2_model,
)
from murmurlm.models.whisper.convert import (  # noqa: F401
    WhisperTokens, build_whisper_processor, ct2_to_whisper, ct2_whisper_state_dict, load_ct2_whisper,
    whisper_config_from_ct2, write_ct2_whisper,
)
from murmurlm.models.whisper.sources import (  # noqa: F401
    KNOWN_PACKAGES, package_model_folders, resolve_whisper_source, save_whisper_folder, whisper_transcribe,
)
