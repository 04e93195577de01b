"""Typed dataclass configuration: a docstring per field, validation, TOML round trip.

Every field is declared with :func:`param`, which records its documentation, unit and
allowed range in the dataclass field metadata. ``validate()`` walks the tree and raises
:class:`~norsim.errors.ConfigError` naming the dotted field, the value and the range.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Iterator, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
import tomli_w

from norsim.errors import ConfigError

T = TypeVar("T", bound="ConfigBase")


def param(default: Any, doc: str, *, unit: str = "", lo: float | None = None,
          hi: float | None = None, choices: tuple | None = None,
          lo_open: bool = False, hi_open: bool = False) -> Any:
    """Declare a configuration field with its documentation and allowed range.

    ``lo``/``hi`` bound numeric values (closed unless ``lo_open``/``hi_open``);
    ``choices`` restricts strings. Mutable defaults (lists) are copied per instance.
    """
    meta = {"doc": doc, "unit": unit, "lo": lo, "hi": hi, "choices": choices,
            "lo_open": lo_open, "hi_open": hi_open}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, doc: str) -> Any:
    """Declare a nested configuration section."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "section": True})


@functools.lru_cache(maxsize=None)  # classes do not change; get_type_hints is slow
def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _range_text(meta: dict) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    left = "(" if meta.get("lo_open") else "["
    right = ")" if meta.get("hi_open") else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    unit = f" {meta['unit']}" if meta.get("unit") else ""
    return f"a finite number in {left}{lo_s}, {hi_s}{right}{unit}"


@dataclasses.dataclass
class ConfigBase:
    """Base of all configuration dataclasses."""

    # ---- introspection -------------------------------------------------------------
    @classmethod
    def field_docs(cls, prefix: str = "") -> Iterator[tuple[str, dict]]:
        """Yield (dotted name, metadata) for every leaf field, recursively."""
        hints = _resolved_types(cls)
        for f in dataclasses.fields(cls):
            name = f"{prefix}{f.name}"
            if f.metadata.get("section"):
                yield from hints[f.name].field_docs(name + ".")
            else:
                yield name, dict(f.metadata)

    # ---- validation ----------------------------------------------------------------
    def validate(self, prefix: str = "") -> "ConfigBase":
        """Check every field's type and range; raise ConfigError naming the field."""
        hints = _resolved_types(type(self))
        for f in dataclasses.fields(self):
            name = f"{prefix}{f.name}"
            value = getattr(self, f.name)
            meta = f.metadata
            if meta.get("section"):
                if not isinstance(value, ConfigBase):
                    raise ConfigError(name, value, f"a {hints[f.name].__name__} section")
                value.validate(name + ".")
                continue
            _check_value(name, value, hints[f.name], meta)
        self._check_consistency(prefix)
        return self

    def _check_consistency(self, prefix: str) -> None:
        """Cross-field checks; subclasses override."""

    # ---- dict / TOML round trip ------------------------------------------------------
    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ConfigBase):
                out[f.name] = value.to_dict()
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
        """Build from a (possibly partial) dict; unknown keys raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(prefix.rstrip(".") or "<root>", data, "a table of fields")
        hints = _resolved_types(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(f"{prefix}{key}", value,
                                  f"a known field of {cls.__name__} ({', '.join(sorted(fields))})")
            f = fields[key]
            if f.metadata.get("section"):
                kwargs[key] = hints[key].from_dict(value, f"{prefix}{key}.")
            else:
                kwargs[key] = _coerce(f"{prefix}{key}", value, hints[key])
        return cls(**kwargs)

    def to_toml(self) -> str:
        return tomli_w.dumps(_drop_none(self.to_dict()))

    @classmethod
    def from_toml(cls: type[T], text: str) -> T:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<toml>", str(exc), "valid TOML") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError("config file", str(path), f"a readable TOML file ({exc.strerror})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("config file", str(path), f"a UTF-8 TOML text file (byte "
                              f"0x{raw[exc.start]:02x} at offset {exc.start} is not text)") \
                from None
        return cls.from_toml(text).validate()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml())

    # ---- overrides -------------------------------------------------------------------
    def with_overrides(self: T, assignments: list[str] | dict[str, Any]) -> T:
        """Return a copy with ``field.path=value`` assignments applied (values parsed as TOML)."""
        data = self.to_dict()
        items = assignments.items() if isinstance(assignments, dict) else (
            _split_assignment(a) for a in assignments)
        for path, value in items:
            node = data
            parts = path.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(path, value, "a dotted path to a known field")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(path, value, "a dotted path to a known field")
            node[parts[-1]] = value
        return type(self).from_dict(data).validate()

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


def _split_assignment(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError("--set", text, "field.path=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    return key.strip(), value


def _drop_none(d: dict) -> dict:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip Optional; return (type, optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(name: str, value: Any, tp: Any) -> Any:
    base, _ = _base_type(tp)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(base) is tuple and isinstance(value, list):
        return tuple(value)
    return value


def _check_value(name: str, value: Any, tp: Any, meta: dict) -> None:
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return
        raise ConfigError(name, value, "a value (this field is required)")
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, value, "true or false")
        return
    if base in (int, float):
        ok_types = (int,) if base is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            raise ConfigError(name, value, f"a {'whole number' if base is int else 'number'}; " + _range_text(meta))
        if not math.isfinite(value):
            raise ConfigError(name, value, _range_text(meta))
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
            raise ConfigError(name, value, _range_text(meta))
        if hi is not None and (value > hi or (meta.get("hi_open") and value == hi)):
            raise ConfigError(name, value, _range_text(meta))
        return
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(name, value, "a string")
        if meta.get("choices") and value not in meta["choices"]:
            raise ConfigError(name, value, _range_text(meta))
        return
    if typing.get_origin(base) is tuple:
        if not isinstance(value, tuple):
            raise ConfigError(name, value, "a list")
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                raise ConfigError(f"{name}[{i}]", item, "a finite number")
            lo, hi = meta.get("lo"), meta.get("hi")
            if (lo is not None and item < lo) or (hi is not None and item > hi):
                raise ConfigError(f"{name}[{i}]", item, _range_text(meta))
        return
