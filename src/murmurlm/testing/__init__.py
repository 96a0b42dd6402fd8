"""Test doubles that are part of the package: tiny, randomly initialised audio LMs built offline in
seconds, for tests, docstring examples, the CPU smoke config (``configs/audio_lm/tiny.yaml``) and
the recipes' smoke runs. Their predictions are meaningless; nothing in the product loads them.

- :mod:`~murmurlm.testing.tiny_qwen2_audio`: ``build_tiny_qwen2_audio`` (a Qwen2-Audio folder).
- :mod:`~murmurlm.testing.tiny_whisper`: ``build_tiny_whisper`` (a Whisper folder, or CTranslate2 format).
"""
