"""A tiny Qwen2-Audio, built offline: the test double for Qwen2-Audio-7B.

Same classes as the real model — :class:`~transformers.Qwen2AudioForConditionalGeneration`, a
:class:`~transformers.Qwen2AudioProcessor` holding a :class:`~transformers.WhisperFeatureExtractor`
and a byte-level BPE :class:`~transformers.Qwen2Tokenizer` — and the same special tokens and ChatML
chat template, with everything shrunk: a 2-layer audio encoder (d=64), a 2-layer Qwen2 language
model (d=64), a ~400-token vocabulary trained here with ``tokenizers`` on murmurlm's own questions
and answers, and a short audio window (``window_seconds``, 2 s by default, instead of 30 s). It is
written with ``save_pretrained`` so that every loader path (``from_pretrained`` on a folder) is the
one used for the 7B model.

Examples
--------
>>> import tempfile
>>> from transformers import Qwen2AudioForConditionalGeneration, AutoProcessor
>>> path = build_tiny_qwen2_audio(tempfile.mkdtemp(), seed=0)
>>> model = Qwen2AudioForConditionalGeneration.from_pretrained(path)
>>> processor = AutoProcessor.from_pretrained(path)
>>> model.num_parameters() < 500_000
True
>>> processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>") == model.config.audio_token_id
True
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from murmurlm.data import labels as L

log = logging.getLogger(__name__)

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>",
)
"""Qwen2-Audio's special tokens (same strings as the 7B tokenizer); <|endoftext|> is pad and unk."""

# Qwen2-Audio-7B-Instruct's ChatML template (the processor's default): a system turn is added when
# the conversation has none; each audio becomes "Audio n: <|audio_bos|><|AUDIO|><|audio_eos|>\n".
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenisation regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX).
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _tokenizer_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: murmurlm's questions, class strings, answers, chat."""
    lines = ["You are a helpful assistant.", "system", "user", "assistant", "Audio 1: ", "Audio 2: "]
    for f in (*L.FEATURES, *L.AUXILIARY):
        lines.append(f.question)
        lines.extend(f.classes)
        lines.append(f"{f.name}: " + ", ".join(f.classes))
    lines += [
        "no murmur", "no systolic murmur", "no diastolic murmur", "unknown",
        "Describe the heart murmur in this recording.", "Listen to this heart sound recording.",
        "This is a phonocardiogram recorded at the mitral valve.", "aortic pulmonary tricuspid mitral",
        "The answer is one of the following.", "Answer with one of:", "Holosystolic murmur present.",
        "0 1 2 3 4 5 6 7 8 9 . , : ; / - ( ) ? ! ' \"", "yes no true false high low medium",
    ]
    return lines * 4


def build_tokenizer(vocab_size: int = 400):
    """Train a byte-level BPE tokenizer (Qwen2's pre-tokeniser) and wrap it as a Qwen2Tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    model = tok.model
    vocab = tok.get_vocab(with_added_tokens=True)
    # The trained merges, in order, read back from the model's JSON form.
    import json

    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    del model
    qwen = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    qwen.padding_side = "left"
    return qwen


def build_tiny_qwen2_audio(
    out_dir: str | Path,
    seed: int = 0,
    window_seconds: int = 2,
    num_mel_bins: int = 32,
    d_model: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 400,
) -> Path:
    """Build a randomly initialised tiny Qwen2-Audio and save model + processor to ``out_dir``.

    Parameters
    ----------
    out_dir : folder to write (created); loadable with ``from_pretrained`` and by the
        ``qwen2-audio`` backend.
    seed : seed of the weight initialisation (the tokenizer is deterministic).
    window_seconds : the audio window the processor pads to (Qwen2-Audio: 30 s). Whole seconds.
    num_mel_bins, d_model, num_layers, num_heads, vocab_size : sizes of the encoder, the language
        model and the BPE vocabulary.

    Returns
    -------
    The output folder.
    """
    import torch
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        Qwen2Config,
        WhisperFeatureExtractor,
    )

    if int(window_seconds) != window_seconds or window_seconds < 1:
        raise ValueError(f"window_seconds must be a whole number of seconds >= 1, got {window_seconds}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(vocab_size)
    feature_extractor = WhisperFeatureExtractor(
        feature_size=num_mel_bins, sampling_rate=16000, hop_length=160, chunk_length=int(window_seconds),
        n_fft=400, return_attention_mask=True,
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )

    frames = feature_extractor.nb_max_frames  # mel frames in one window; the encoder halves them
    audio_config = Qwen2AudioEncoderConfig(
        num_mel_bins=num_mel_bins, encoder_layers=num_layers, encoder_attention_heads=num_heads,
        encoder_ffn_dim=2 * d_model, d_model=d_model, max_source_positions=frames // 2,
    )
    text_config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=d_model, intermediate_size=2 * d_model,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2), max_position_embeddings=1024,
        tie_word_embeddings=False, rope_theta=10000.0,
        # fan-in scaled init (1/sqrt(d)) rather than 0.02: in a small random model 0.02 leaves the
        # attention outputs (the only path from the audio to the answer) ~100x below the residual.
        initializer_range=d_model ** -0.5,
        bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Qwen2AudioConfig(
        audio_config=audio_config, text_config=text_config,
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config)
    _init_audio_path(model)
    gen = model.generation_config
    gen.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = None
    gen.do_sample = False
    model.save_pretrained(out)
    processor.save_pretrained(out)
    log.info("tiny Qwen2-Audio (%d parameters, vocab %d, %d s window) written to %s",
             model.num_parameters(), len(tokenizer), window_seconds, out)
    return out


def _sinusoids(length: int, channels: int, max_timescale: float = 10000.0):
    """Whisper's sinusoidal position embeddings (``length`` x ``channels``)."""
    import torch

    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([scaled_time.sin(), scaled_time.cos()], dim=1)


def _init_audio_path(model) -> None:
    """Re-initialise the audio encoder and projector so that a random encoder passes its input on.

    transformers initialises every module of Qwen2-Audio with N(0, 0.02) (the text config's
    ``initializer_range``), which is right for the 7B language model but makes a small random
    encoder all but ignore the mel features (a pretrained encoder has learned weights instead).
    Here weights get a fan-in scaled normal init (std 1/sqrt(fan_in)) and the position embeddings
    Whisper's sinusoids, as a trained Whisper encoder has.
    """
    import torch

    inner = model.model
    with torch.no_grad():
        for module in (*inner.audio_tower.modules(), *inner.multi_modal_projector.modules()):
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
                if module.bias is not None:
                    module.bias.zero_()
        emb = inner.audio_tower.embed_positions.weight
        emb.copy_(_sinusoids(emb.shape[0], emb.shape[1]).to(emb.dtype))
