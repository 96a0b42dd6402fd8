"""Configs: small dataclasses, loaded from commented YAML files, overridden by ``key=value``.

A config file maps onto a dataclass field by field; nested dataclasses are nested mappings, and an
override addresses them with dots (``optim.lr=3e-4``). Unknown keys are rejected with the list of
valid ones, values are converted to the field's type, and ``__post_init__`` validation runs after
every override. :func:`config_to_dict` gives the resolved config that checkpoints carry.

Examples
--------
>>> from dataclasses import dataclass, field
>>> @dataclass
... class Optim:
...     lr: float = 1e-3
>>> @dataclass
... class Run:
...     epochs: int = 10
...     optim: Optim = field(default_factory=Optim)
>>> cfg = load_config(Run, overrides=["epochs=3", "optim.lr=0.01"])
>>> cfg.epochs, cfg.optim.lr
(3, 0.01)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml

from murmurlm.errors import ConfigError

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    # Nested configs defined in a local scope (a function, a doctest) are not in the module's
    # globals; their ``default_factory`` names them.
    local = {f.default_factory.__name__: f.default_factory for f in dataclasses.fields(cls)
             if isinstance(f.default_factory, type)}
    try:
        hints = typing.get_type_hints(cls, localns=local)
    except NameError as err:
        raise ConfigError(f"{cls.__name__}: cannot resolve a field type ({err})") from None
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value (or an override string already parsed by YAML) to ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} fits none of {annotation}")
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {value!r}")
        return from_dict(annotation, value, prefix=f"{where}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return converted if origin is list else tuple(converted)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, str):  # '3e-4': YAML 1.1 reads exponents without a dot as strings
            text = value.strip()
            try:
                value = int(text) if annotation is int and text.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if annotation is int and not (isinstance(value, int) or (math.isfinite(value) and value.is_integer())):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return annotation(value)
    if annotation is str:
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if annotation is Path:
        return Path(str(value))
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys are a ConfigError naming valid ones."""
    types_ = _field_types(cls)
    unknown = [k for k in data if k not in types_]
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"valid: {', '.join(prefix + k for k in types_)}")
    kwargs = {k: _convert(v, types_[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{prefix or cls.__name__}: {err}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain YAML-safe data (Paths as strings, tuples as lists)."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return plain(cfg)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {p} is not a mapping")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=3e-4' -> ('optim.lr', 0.0003). Values are parsed as YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads '3e-4' as a string; _convert turns it into a number where the field is one.
    return key.strip(), value


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any] | None:
    r"""A YAML file whose top level is a mapping (None when the file is empty); every problem is a
    ConfigError naming the file (and the line, for a syntax error).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
    >>> _ = p.write_text("lr: 0.1\n")
    >>> read_yaml_mapping(p)
    {'lr': 0.1}
    >>> _ = p.write_text("lr: [0.1\n")
    >>> try:
    ...     read_yaml_mapping(p)
    ... except ConfigError as err:
    ...     print(str(err).split(": ", 1)[1])
    invalid YAML: expected ',' or ']', but got '<stream end>'
    """
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping of key: value")
    return loaded


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Load ``cls`` from a YAML file (optional) and apply ``key=value`` overrides, in that order."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path) or {}
    for text in overrides:  # merged before the dataclass is built: an override may fill a required field
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return from_dict(cls, data)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
