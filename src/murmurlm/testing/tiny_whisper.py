"""A tiny random Whisper, built offline: the test double for the pretrained Whisper models.

Same classes as the real thing — :class:`~transformers.WhisperForConditionalGeneration` and a
:class:`~transformers.WhisperProcessor` (Whisper's feature extractor and a byte-level BPE
:class:`~transformers.WhisperTokenizerFast` with Whisper's special tokens, trained here with
``tokenizers`` on murmurlm's questions and answers) — with everything shrunk: 1-2 layers of width
64, 32 mel bins, a ~400-token vocabulary and a 2 s audio window. It is written either as a
``save_pretrained`` folder or as a CTranslate2 folder (``model.bin``, ``config.json``,
``tokenizer.json``, ``vocabulary.txt``), so that both model-source paths of
:func:`murmurlm.models.whisper.resolve_whisper_source` are tested without any download.

Examples
--------
>>> import tempfile
>>> from murmurlm.models.whisper import resolve_whisper_source
>>> folder = build_tiny_whisper(tempfile.mkdtemp(), seed=0, fmt="ct2")
>>> model, processor = resolve_whisper_source(folder)
>>> model.num_parameters() < 500_000
True
>>> processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>") == model.config.decoder_start_token_id
True
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from murmurlm.data import labels as L

log = logging.getLogger(__name__)

WHISPER_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
)
"""Whisper's special tokens, in the order of the English-only vocabularies (after the BPE tokens)."""


def _corpus() -> list[str]:
    lines = ["no murmur", "no systolic murmur", "no diastolic murmur", "yes", "no",
             "This is a heart sound recording (phonocardiogram) taken at the mitral valve.",
             "aortic valve pulmonary valve tricuspid valve another auscultation point",
             "Describe the heart murmur: give each feature as 'name: value', one per line.",
             "0 1 2 3 4 5 6 7 8 9 . , : ; / - ( ) ? ! ' \""]
    for f in (*L.FEATURES, *L.AUXILIARY):
        lines += [f.question, f.name, *f.classes, f"{f.name}: " + ", ".join(f.classes)]
    return lines * 4


def build_whisper_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer with Whisper's pre-tokeniser and special tokens (GPT-2 style)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import WhisperTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=[])
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in WHISPER_SPECIAL_TOKENS])
    whisper = WhisperTokenizerFast(tokenizer_object=tok, unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    return whisper


def build_tiny_whisper(
    out_dir: str | Path,
    seed: int = 0,
    fmt: Literal["transformers", "ct2"] = "transformers",
    window_seconds: int = 2,
    num_mel_bins: int = 32,
    d_model: int = 64,
    encoder_layers: int = 2,
    decoder_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 400,
) -> Path:
    """Build a randomly initialised tiny Whisper and write it to ``out_dir``.

    Parameters
    ----------
    out_dir : folder to write (created).
    seed : seed of the weight initialisation (the tokenizer is deterministic).
    fmt : ``"transformers"`` (``save_pretrained`` model + processor) or ``"ct2"`` (a CTranslate2
        folder as faster-whisper packages ship it, float32 weights).
    window_seconds : the encoder's audio window (whole seconds; Whisper's own is 30).
    num_mel_bins, d_model, encoder_layers, decoder_layers, num_heads, vocab_size : model sizes.

    Returns
    -------
    The output folder.
    """
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from murmurlm.models.whisper import write_ct2_whisper

    if fmt not in ("transformers", "ct2"):
        raise ValueError(f"build_tiny_whisper: fmt {fmt!r} is not one of 'transformers', 'ct2'")
    if int(window_seconds) != window_seconds or window_seconds < 1:
        raise ValueError(f"window_seconds must be a whole number of seconds >= 1, got {window_seconds}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_whisper_tokenizer(vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in WHISPER_SPECIAL_TOKENS}
    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins, chunk_length=int(window_seconds))
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=num_mel_bins, d_model=d_model,
        encoder_layers=encoder_layers, decoder_layers=decoder_layers,
        encoder_attention_heads=num_heads, decoder_attention_heads=num_heads,
        encoder_ffn_dim=2 * d_model, decoder_ffn_dim=2 * d_model,
        max_source_positions=extractor.nb_max_frames // 2, max_target_positions=128,
        pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"], decoder_start_token_id=ids["<|startoftranscript|>"],
        suppress_tokens=[], begin_suppress_tokens=[ids["<|endoftext|>"]],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    # Whisper's init (std 0.02) gives tied output logits of about +-1 at width 64: a model that
    # cannot be confident about anything without training its embeddings. Pretrained Whisper
    # embeddings are much larger; give the tiny one the same room (logits of about +-15).
    # Likewise the encoder's convolutions: at std 0.02 their output is tiny beside the sinusoidal
    # positions, and every audio encodes to nearly the same states. Scale them to unit gain.
    with torch.no_grad():
        model.model.decoder.embed_tokens.weight.normal_(0.0, 2.0 / d_model ** 0.5)
        for conv in (model.model.encoder.conv1, model.model.encoder.conv2):
            conv.weight.normal_(0.0, 2.0 / (conv.in_channels * conv.kernel_size[0]) ** 0.5)
    gen = model.generation_config
    gen.decoder_start_token_id = ids["<|startoftranscript|>"]
    gen.eos_token_id = gen.pad_token_id = ids["<|endoftext|>"]
    gen.no_timestamps_token_id = ids["<|notimestamps|>"]
    gen.is_multilingual = False
    if fmt == "transformers":
        model.save_pretrained(out)
        WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    else:
        write_ct2_whisper(model, out, dtype="float32")
        tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
        vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        (out / "vocabulary.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8")
        cfg = json.loads((out / "config.json").read_text())
        cfg["suppress_ids_begin"] = [ids["<|endoftext|>"]]
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    log.info("tiny Whisper (%d parameters, vocab %d, %d s window) written to %s as %s",
             model.num_parameters(), len(tokenizer), window_seconds, out, fmt)
    return out
