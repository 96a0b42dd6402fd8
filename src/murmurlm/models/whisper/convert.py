"""A CTranslate2 Whisper as a :class:`transformers.WhisperForConditionalGeneration` and back:
``load_state_dict(strict=True)``, so every weight is accounted for.

Whisper's spec (``specs/whisper_spec.py``) fuses the attention projections: a self-attention's
``linear_0`` is ``[q; k; v]`` stacked on the output axis (the key projection has no bias in
Whisper, so its part of the fused bias is zero), a cross-attention's ``linear_1`` is ``[k; v]``;
``decoder/projection/weight`` is an alias of the token embedding.

Examples
--------
A CTranslate2 folder written from a small random Whisper converts back exactly:

>>> import tempfile, torch
>>> from transformers import WhisperConfig, WhisperForConditionalGeneration
>>> cfg = WhisperConfig(vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1,
...     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
...     num_mel_bins=8, max_source_positions=10, max_target_positions=12, pad_token_id=50,
...     bos_token_id=50, eos_token_id=50, decoder_start_token_id=51)
>>> _ = torch.manual_seed(0)
>>> hf = WhisperForConditionalGeneration(cfg).eval()
>>> folder = tempfile.mkdtemp()
>>> write_ct2_whisper(hf, folder)  # doctest: +ELLIPSIS
PosixPath('...model.bin')
>>> back = ct2_to_whisper(read_ct2_model(folder))
>>> mel = torch.randn(1, 8, 20)
>>> ids = torch.tensor([[51, 3, 4]])
>>> a = hf(input_features=mel, decoder_input_ids=ids).logits
>>> b = back(input_features=mel, decoder_input_ids=ids).logits
>>> bool(torch.allclose(a, b, atol=1e-2))  # weights went through float16
True
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from murmurlm.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

log = logging.getLogger(__name__)

from murmurlm.models.whisper.ct2_format import CT2FormatError, CT2Model, read_ct2_model, write_ct2_model

# ---------------------------------------------------------------------------------------------
# CTranslate2 Whisper <-> transformers Whisper
# ---------------------------------------------------------------------------------------------
def _weight(ct2: CT2Model, scope: str) -> np.ndarray:
    """``<scope>/weight`` as floats: int8 / int16 quantised weights are divided by their
    ``weight_scale`` (per output row for int8, one global scale for int16), as CTranslate2 does."""
    name = f"{scope}/weight"
    weight = ct2.get(name)
    if weight.dtype in (np.int8, np.int16):
        if not ct2.has(f"{scope}/weight_scale"):
            raise CT2FormatError(ct2.folders[0] if ct2.folders else "model.bin",
                                 f"{name} is {weight.dtype} but {scope}/weight_scale is missing")
        scale = ct2.get(f"{scope}/weight_scale").astype(np.float32)
        scale = scale.reshape(-1, *([1] * (weight.ndim - 1))) if scale.size > 1 else scale.reshape(())
        weight = weight.astype(np.float32) / scale
    return weight


def _linear(ct2: CT2Model, scope: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight, bias) of a CTranslate2 linear layer, quantised weights restored to floats."""
    weight = _weight(ct2, scope)
    bias = ct2.get(f"{scope}/bias") if ct2.has(f"{scope}/bias") else None
    return weight, bias


def _layer_norm(ct2: CT2Model, scope: str, out: str, sd: dict[str, np.ndarray]) -> None:
    sd[f"{out}.weight"] = ct2.get(f"{scope}/gamma")
    sd[f"{out}.bias"] = ct2.get(f"{scope}/beta")


def _split(ct2: CT2Model, scope: str, outs: Sequence[str], sd: dict[str, np.ndarray],
           no_bias: Sequence[str] = ("k_proj",)) -> None:
    """Split a fused linear layer into equal parts ``outs`` (q/k/v or k/v)."""
    weight, bias = _linear(ct2, scope)
    n = len(outs)
    if weight.shape[0] % n:
        raise CT2FormatError(ct2.folders[0] if ct2.folders else "model.bin",
                             f"{scope}: fused weight {weight.shape} does not split into {n} parts")
    for out, w, b in zip(outs, np.split(weight, n), np.split(bias, n) if bias is not None else [None] * n):
        sd[f"{out}.weight"] = w
        if out.rsplit(".", 1)[-1] in no_bias:
            if b is not None and np.any(b != 0):
                log.warning("%s: dropping a non-zero bias of %s (Whisper has none)", scope, out)
        elif b is not None:
            sd[f"{out}.bias"] = b
        else:
            sd[f"{out}.bias"] = np.zeros(w.shape[0], dtype=w.dtype)


def _plain(ct2: CT2Model, scope: str, out: str, sd: dict[str, np.ndarray]) -> None:
    weight, bias = _linear(ct2, scope)
    sd[f"{out}.weight"] = weight
    if bias is not None:
        sd[f"{out}.bias"] = bias


def _check_whisper(ct2: CT2Model) -> None:
    where = ct2.folders[0] if ct2.folders else Path("model.bin")
    if ct2.spec_name != "WhisperSpec":
        raise CT2FormatError(where, f"spec {ct2.spec_name!r} is not a Whisper model (WhisperSpec)")
    checks = {"decoder/pre_norm": 1, "decoder/activation": 3}  # pre-norm layers, exact GELU
    for name, want in checks.items():
        if ct2.has(name) and int(ct2.scalar(name)) != want:
            raise CT2FormatError(where, f"{name} = {ct2.scalar(name)}, Whisper has {want}")
    for name in ("decoder/scale_embeddings", "decoder/alibi"):
        if ct2.has(name) and ct2.scalar(name):
            raise CT2FormatError(where, f"{name} is set; a Whisper model has it off")
    if ct2.has("decoder/projection/bias"):
        raise CT2FormatError(where, "decoder/projection has a bias; Whisper's output projection has none")


def ct2_whisper_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """transformers ``WhisperForConditionalGeneration`` state dict (numpy) from a CTranslate2 model."""
    _check_whisper(ct2)
    sd: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        sd[f"{hf}.embed_positions.weight"] = ct2.get(f"{side}/position_encodings/encodings")
        _layer_norm(ct2, f"{side}/layer_norm", f"{hf}.layer_norm", sd)
        for i in range(ct2.num_layers(side)):
            src, dst = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            _layer_norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", sd)
            _split(ct2, f"{src}/self_attention/linear_0",
                   [f"{dst}.self_attn.q_proj", f"{dst}.self_attn.k_proj", f"{dst}.self_attn.v_proj"], sd)
            _plain(ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", sd)
            if side == "decoder":
                _layer_norm(ct2, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", sd)
                _plain(ct2, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj", sd)
                _split(ct2, f"{src}/attention/linear_1",
                       [f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj"], sd)
                _plain(ct2, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj", sd)
            _layer_norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", sd)
            _plain(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1", sd)
            _plain(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2", sd)
    for conv in ("conv1", "conv2"):
        _plain(ct2, f"encoder/{conv}", f"model.encoder.{conv}", sd)
    sd["model.decoder.embed_tokens.weight"] = _weight(ct2, "decoder/embeddings")
    # the output projection: an alias of the embedding (Whisper ties them), or its own variable
    projection = "decoder/projection"
    if ct2.aliases.get(f"{projection}/weight") == "decoder/embeddings/weight" or not ct2.has(f"{projection}/weight"):
        sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    else:
        sd["proj_out.weight"] = _weight(ct2, projection)
    return sd


@dataclass(frozen=True)
class WhisperTokens:
    """Ids of Whisper's special tokens in one vocabulary (they shift by one in English-only models)."""

    eot: int
    sot: int
    transcribe: int
    translate: int
    no_timestamps: int
    sot_prev: int | None
    languages: dict[str, int]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "WhisperTokens":
        vocab = tokenizer.get_vocab()

        def tid(tok: str) -> int:
            if tok not in vocab:
                raise ConfigError(f"Whisper tokenizer has no {tok!r} token")
            return vocab[tok]

        skip = {"<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
                "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|nospeech|>", "<|notimestamps|>"}
        lang = re.compile(r"^<\|([a-z]{2,3}|haw|yue)\|>$")
        languages = {t: i for t, i in vocab.items() if t not in skip and lang.match(t)}
        return cls(tid("<|endoftext|>"), tid("<|startoftranscript|>"), tid("<|transcribe|>"),
                   tid("<|translate|>"), tid("<|notimestamps|>"), vocab.get("<|startofprev|>"), languages)


def build_whisper_processor(folders: Sequence[str | Path], num_mel_bins: int = 80,
                            vocab_size: int | None = None, chunk_length: int = 30) -> "WhisperProcessor":
    """A :class:`transformers.WhisperProcessor` from the files of a CTranslate2 folder.

    The tokenizer comes from ``tokenizer.json``; tokens that ``vocabulary.txt`` lists beyond it
    (the ``<|0.00|>`` ... ``<|30.00|>`` timestamp tokens, which faster-whisper's ``tokenizer.json``
    leaves out) are added as special tokens so that the tokenizer covers the model's vocabulary.
    The feature extractor is Whisper's (16 kHz, 25 ms window, 10 ms hop, ``num_mel_bins`` bins).
    """
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    folders = [Path(f) for f in folders]
    tok_file = next((f / "tokenizer.json" for f in folders if (f / "tokenizer.json").is_file()), None)
    if tok_file is None:
        raise CT2FormatError(folders[0], "no tokenizer.json in the model folder(s); faster-whisper "
                                         "folders ship one (copy it from the model's Hub repository)")
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tok_file))
    vocab_file = next((f / "vocabulary.txt" for f in folders if (f / "vocabulary.txt").is_file()), None)
    if vocab_file is not None:
        lines = vocab_file.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        vocab = tokenizer.get_vocab()
        for idx in (0, len(vocab) // 2, len(vocab) - 1):  # spot-check that both files agree
            token = tokenizer.convert_ids_to_tokens(idx)
            if idx < len(lines) and lines[idx] != token:
                raise CT2FormatError(vocab_file, f"token {idx} is {lines[idx]!r} here but {token!r} in "
                                                 f"{tok_file}", line=idx + 1)
        extra = lines[len(vocab):]
        if extra:
            from tokenizers import AddedToken

            tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in extra],
                                 special_tokens=True)
    if vocab_size is not None and len(tokenizer) != vocab_size:
        log.warning("tokenizer has %d tokens, the model %d", len(tokenizer), vocab_size)
    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins, chunk_length=chunk_length)
    return WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer)


def whisper_config_from_ct2(ct2: CT2Model, tokens: WhisperTokens | None = None):
    """A :class:`transformers.WhisperConfig` with the sizes of a CTranslate2 Whisper model."""
    from transformers import WhisperConfig

    emb = ct2.get("decoder/embeddings/weight")
    vocab_size, d_model = emb.shape
    conv1 = ct2.get("encoder/conv1/weight")
    enc_ffn = ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0]
    dec_ffn = ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0]
    cfg = ct2.config
    # Without a tokenizer: OpenAI's multilingual ids where the vocabulary has them, else none.
    eot = tokens.eot if tokens else (50257 if vocab_size > 50258 else None)
    sot = tokens.sot if tokens else (50258 if vocab_size > 50258 else None)
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(conv1.shape[1]),
        d_model=int(d_model),
        encoder_layers=ct2.num_layers("encoder"),
        decoder_layers=ct2.num_layers("decoder"),
        encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
        decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
        encoder_ffn_dim=int(enc_ffn),
        decoder_ffn_dim=int(dec_ffn),
        max_source_positions=int(ct2.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(ct2.get("decoder/position_encodings/encodings").shape[0]),
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        **({"decoder_start_token_id": sot} if sot is not None else {}),
        suppress_tokens=list(cfg.get("suppress_ids", [])) or None,
        begin_suppress_tokens=list(cfg.get("suppress_ids_begin", [])) or None,
        tie_word_embeddings=True,
    )


def _generation_config(config, ct2: CT2Model, tokens: WhisperTokens):
    from transformers import GenerationConfig

    gen = GenerationConfig(
        decoder_start_token_id=tokens.sot, eos_token_id=tokens.eot, pad_token_id=tokens.eot,
        bos_token_id=tokens.eot, max_length=config.max_target_positions,
        suppress_tokens=list(ct2.config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2.config.get("suppress_ids_begin", [])),
        no_timestamps_token_id=tokens.no_timestamps,
        is_multilingual=len(tokens.languages) > 1 and tokens.eot == 50257,
        lang_to_id=dict(tokens.languages), task_to_id={"transcribe": tokens.transcribe,
                                                       "translate": tokens.translate},
        max_initial_timestamp_index=50,
        alignment_heads=[list(map(int, h)) for h in ct2.config.get("alignment_heads", [])],
    )
    if tokens.sot_prev is not None:
        gen.prev_sot_token_id = tokens.sot_prev
    return gen


def ct2_to_whisper(ct2: CT2Model, processor: "WhisperProcessor | None" = None,
                   dtype: "torch.dtype | None" = None) -> "WhisperForConditionalGeneration":
    """Build a ``WhisperForConditionalGeneration`` holding a CTranslate2 Whisper's weights.

    Weights are loaded with ``strict=True``: a missing or unexpected weight is an error. They are
    cast to ``dtype`` (float32 by default: float16 weights are exact in float32).
    """
    import torch
    from transformers import WhisperForConditionalGeneration

    tokens = WhisperTokens.from_tokenizer(processor.tokenizer) if processor is not None else None
    config = whisper_config_from_ct2(ct2, tokens)
    dtype = dtype or torch.float32
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in ct2_whisper_state_dict(ct2).items()}
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as err:
        raise CT2FormatError(ct2.folders[0] if ct2.folders else "model.bin",
                             f"weights do not fit WhisperForConditionalGeneration: {err}") from None
    model.tie_weights()
    # Non-persistent buffers (none in Whisper today) would still be on the meta device.
    for name, buf in model.named_buffers():
        if buf.is_meta:
            raise CT2FormatError(ct2.folders[0] if ct2.folders else "model.bin",
                                 f"buffer {name} was not initialised by the conversion")
    if tokens is not None:
        model.generation_config = _generation_config(config, ct2, tokens)
    return model.eval()


def write_ct2_whisper(model: "WhisperForConditionalGeneration", folder: str | Path,
                      dtype: str = "float16") -> Path:
    """Write a transformers Whisper as a CTranslate2 folder's ``model.bin`` (``dtype`` weights).

    The layout is what ``ct2-transformers-converter`` writes; used by tests and to serve a
    fine-tuned (LoRA-merged) model with CTranslate2 / faster-whisper.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    cfg = model.config
    f = np.dtype(dtype)
    var: dict[str, np.ndarray] = {}

    def lin(dst: str, src: str, bias: bool = True) -> None:
        var[f"{dst}/weight"] = sd[f"{src}.weight"].astype(f)
        if bias:
            var[f"{dst}/bias"] = sd[f"{src}.bias"].astype(f)

    def ln(dst: str, src: str) -> None:
        var[f"{dst}/gamma"] = sd[f"{src}.weight"].astype(f)
        var[f"{dst}/beta"] = sd[f"{src}.bias"].astype(f)

    def fused(dst: str, srcs: Sequence[str]) -> None:
        var[f"{dst}/weight"] = np.concatenate([sd[f"{s}.weight"] for s in srcs]).astype(f)
        var[f"{dst}/bias"] = np.concatenate(
            [sd.get(f"{s}.bias", np.zeros(sd[f"{s}.weight"].shape[0], np.float32)) for s in srcs]).astype(f)

    var["decoder/activation"] = np.array(3, np.int8)
    var["decoder/alibi"] = np.array(0, np.int8)
    var["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"].astype(f)
    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        layers = cfg.encoder_layers if side == "encoder" else cfg.decoder_layers
        for i in range(layers):
            src, dst = f"{hf}.layers.{i}", f"{side}/layer_{i}"
            ln(f"{dst}/self_attention/layer_norm", f"{src}.self_attn_layer_norm")
            fused(f"{dst}/self_attention/linear_0", [f"{src}.self_attn.{p}_proj" for p in "qkv"])
            lin(f"{dst}/self_attention/linear_1", f"{src}.self_attn.out_proj")
            if side == "decoder":
                ln(f"{dst}/attention/layer_norm", f"{src}.encoder_attn_layer_norm")
                lin(f"{dst}/attention/linear_0", f"{src}.encoder_attn.q_proj")
                fused(f"{dst}/attention/linear_1", [f"{src}.encoder_attn.{p}_proj" for p in "kv"])
                lin(f"{dst}/attention/linear_2", f"{src}.encoder_attn.out_proj")
            ln(f"{dst}/ffn/layer_norm", f"{src}.final_layer_norm")
            lin(f"{dst}/ffn/linear_0", f"{src}.fc1")
            lin(f"{dst}/ffn/linear_1", f"{src}.fc2")
        ln(f"{side}/layer_norm", f"{hf}.layer_norm")
        var[f"{side}/num_heads"] = np.array(
            cfg.encoder_attention_heads if side == "encoder" else cfg.decoder_attention_heads, np.int16)
        var[f"{side}/position_encodings/encodings"] = sd[f"{hf}.embed_positions.weight"].astype(f)
    var["decoder/pre_norm"] = np.array(1, np.int8)
    var["decoder/scale_embeddings"] = np.array(0, np.int8)
    for conv in ("conv1", "conv2"):
        lin(f"encoder/{conv}", f"model.encoder.{conv}")
    var = dict(sorted(var.items()))
    config = {
        "suppress_ids": list(cfg.suppress_tokens or []),
        "suppress_ids_begin": list(cfg.begin_suppress_tokens or []),
        "lang_ids": [],
        "alignment_heads": [[cfg.decoder_layers - 1, h] for h in range(cfg.decoder_attention_heads)],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return write_ct2_model(folder / "model.bin", "WhisperSpec", 3, var,
                           {"decoder/projection/weight": "decoder/embeddings/weight"})


def load_ct2_whisper(path: str | Path | Sequence[str | Path], dtype: "torch.dtype | None" = None
                     ) -> tuple["WhisperForConditionalGeneration", "WhisperProcessor"]:
    """Model and processor from a CTranslate2 Whisper folder (or the parts of a split one)."""
    ct2 = read_ct2_model(path)
    _check_whisper(ct2)
    num_mel_bins = int(ct2.get("encoder/conv1/weight").shape[1])
    vocab_size = int(ct2.get("decoder/embeddings/weight").shape[0])
    positions = int(ct2.get("encoder/position_encodings/encodings").shape[0])
    seconds = positions * 2 * 160 / 16000  # two stride-1/2 convolutions over 10 ms mel frames
    if seconds != int(seconds):
        raise CT2FormatError(ct2.folders[0], f"{positions} encoder positions are not a whole number "
                                             "of seconds of audio (50 positions per second)")
    processor = build_whisper_processor(ct2.folders, num_mel_bins, vocab_size, chunk_length=int(seconds))
    model = ct2_to_whisper(ct2, processor, dtype)
    log.info("loaded Whisper from CTranslate2 %s: d_model %d, %d+%d layers, %.1fM parameters",
             ", ".join(map(str, ct2.folders)), model.config.d_model, model.config.encoder_layers,
             model.config.decoder_layers, model.num_parameters() / 1e6)
    return model, processor


