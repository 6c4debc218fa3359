"""Generic loader: TOML tables → frozen dataclasses, validated from their type hints.

Every config section is a frozen dataclass whose fields follow one convention::

    @dataclass(frozen=True, slots=True)
    class FooConfig:
        threads: int = field(default=1, metadata={"doc": "interpreter threads", "min": 1, "max": 8})
        mode: str = field(default="fast", metadata={"doc": "...", "choices": ("fast", "slow")})
        token_env: str = field(default="", metadata={"doc": "...", "secret": True}, repr=False)

        def __post_init__(self) -> None:
            if ...:
                raise ValueError("mode: 'slow' needs threads >= 2")

Metadata keys: ``doc`` (one line, shown in config.toml), ``min``/``max`` (inclusive bounds for numbers,
or for the length of strings, tuples and lists), ``choices`` (allowed values), ``secret`` (redacted by
:func:`to_dict` with ``redact=True``). Whatever the metadata says, every float must be finite (TOML
allows ``nan`` and ``inf``, which slip through range checks), no string or path may hold a NUL
character, and a string or path without its own ``max`` is at most :data:`MAX_STRING` characters.
``ValueError("key: message")`` from ``__post_init__`` is re-raised as :class:`ConfigError` with the
section's dotted path in front. Validators do no I/O.

Supported field types: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``Path``, ``Literal[...]``,
``X | None`` (``None`` only as a default: TOML has no null), ``tuple[X, ...]``, fixed ``tuple[X, Y]``,
``list[X]`` (stored as a tuple so the tree stays immutable), ``dict[str, X]`` (stored as a read-only
mapping) and nested section dataclasses.

Example:
    >>> load_section(FooConfig, {"threads": 2}, path="detector")  # doctest: +SKIP
    FooConfig(threads=2, mode='fast')
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rpi_agent.errors import ConfigError

T = TypeVar("T")

REDACTED = "***"

MAX_STRING = 4096
"""Longest string or path a field takes unless its ``max`` says otherwise: Linux's PATH_MAX."""


def join(path: str, key: str | int) -> str:
    """Dotted path of a child: ``join("cameras", 0)`` → ``cameras[0]``, ``join("a", "b")`` → ``a.b``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", dict: "table", list: "array"}
    return kind.get(type(value), type(value).__name__)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint in (bool, int, float, str):
        return {bool: "boolean", int: "integer", float: "number", str: "string"}[hint]
    if hint is Path:
        return "path string"
    if dataclasses.is_dataclass(hint) or origin is dict:
        return "table"
    if origin in (tuple, list):
        return "array"
    return str(hint)


def _check_bounds(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if isinstance(value, Path):
        value = str(value)
    size = len(value) if isinstance(value, str | tuple | list) else None
    measured = size if size is not None else value
    if not isinstance(measured, int | float) or isinstance(measured, bool):
        return
    what = "length" if size is not None else "value"
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and measured < lo:
        raise ConfigError(f"{path}: {what} {_shown(measured)} is below the minimum {lo}")
    if hi is not None and measured > hi:
        raise ConfigError(f"{path}: {what} {_shown(measured)} is above the maximum {hi}")


def _check_choices(value: Any, meta: Mapping[str, Any], path: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{path}: {_shown(value)} is not one of {allowed}")


def _finite(value: int | float, path: str, shown: str) -> float:
    # nan compares false with every bound, so a range check alone lets it through.
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{path}: {shown} is too large for a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{path}: {shown} is not a finite number")
    return number


def _text(value: str, path: str) -> str:
    # A NUL ends a C string: the OS, the MQTT broker and the GPIO library would each see another value.
    if "\0" in value:
        raise ConfigError(f"{path}: must not contain a NUL character (\\u0000)")
    return value


def _shown(value: Any, secret: bool = False) -> str:
    """``repr`` for a message: masked if secret, cut short if long, so the error stays one readable line."""
    text = REDACTED if secret else repr(value)
    return f"{text[:60]}... ({len(text)} characters)" if len(text) > 80 else text


def _convert_scalar(hint: Any, value: Any, path: str, secret: bool) -> Any:
    shown = _shown(value, secret)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _finite(value, path, shown)
    elif hint is str:
        if isinstance(value, str):
            return _text(value, path)
    elif hint is Path:
        if isinstance(value, str) and value:
            return Path(_text(value, path)).expanduser()
    else:
        raise ConfigError(f"{path}: unsupported field type {hint!r} in the schema")
    raise ConfigError(f"{path}: expected {_type_name(hint)}, got {_describe(value)} {shown}")


def _convert_union(args: tuple[Any, ...], value: Any, path: str, secret: bool) -> Any:
    arms = [a for a in args if a is not type(None)]
    if len(arms) == 1:
        return convert(arms[0], value, path, secret=secret)
    errors = []
    for arm in arms:
        try:
            return convert(arm, value, path, secret=secret)
        except ConfigError as exc:
            errors.append(_type_name(arm))
            last = exc
    raise ConfigError(f"{path}: expected one of {', '.join(errors)}, got {_describe(value)}") from last


def _convert_sequence(hint: Any, value: Any, path: str, secret: bool) -> tuple[Any, ...]:
    args = typing.get_args(hint)
    if not isinstance(value, list | tuple):
        tables = bool(args) and dataclasses.is_dataclass(args[0])
        hint_text = f" (write [[{path}]] for each entry)" if tables and isinstance(value, Mapping) else ""
        raise ConfigError(f"{path}: expected array, got {_describe(value)}{hint_text}")
    if typing.get_origin(hint) is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(convert(a, v, join(path, i), secret=secret) for i, (a, v) in pairs)
    item = args[0] if args else Any
    return tuple(convert(item, v, join(path, i), secret=secret) for i, v in enumerate(value))


def _convert_mapping(hint: Any, value: Any, path: str, secret: bool) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected table, got {_describe(value)}")
    args = typing.get_args(hint)
    item = args[1] if len(args) == 2 else Any
    out = {}
    for key, sub in value.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{path}: keys must be non-empty strings, got {key!r}")
        out[key] = convert(item, sub, join(path, key), secret=secret)
    return types.MappingProxyType(out)


def convert(hint: Any, value: Any, path: str, *, secret: bool = False) -> Any:
    """Check ``value`` against the type ``hint`` and convert it (lists → tuples, tables → sections).

    Raises:
        ConfigError: ``"<path>: <what is wrong>"``.
    """
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return load_section(hint, value, path=path)
    if hint is Any or hint is object or origin is typing.Literal:
        if origin is typing.Literal:
            _check_choices(value, {"choices": typing.get_args(hint)}, path)
        return value
    if origin in (typing.Union, types.UnionType):
        return _convert_union(typing.get_args(hint), value, path, secret)
    if origin in (tuple, list):
        return _convert_sequence(hint, value, path, secret)
    if origin in (dict, Mapping):
        return _convert_mapping(hint, value, path, secret)
    return _convert_scalar(hint, value, path, secret)


def load_section(cls: type[T], data: Any, *, path: str = "") -> T:
    """Build the frozen section ``cls`` from a TOML table, rejecting unknown keys.

    Args:
        cls: A dataclass following the field convention above.
        data: The table (a mapping) as parsed by ``tomllib``.
        path: Dotted path of the table, for messages (``""`` for the root).

    Raises:
        ConfigError: Unknown key, missing required key, wrong type, out of range, or a
            ``__post_init__`` check, each naming the dotted key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected table, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        expected = ", ".join(sorted(fields)) or "none"
        raise ConfigError(f"{join(path, str(unknown[0]))}: unknown key (expected one of: {expected})")
    kwargs: dict[str, Any] = {}
    for name, fld in fields.items():
        key_path = join(path, name)
        if name not in data:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key_path}: required key is missing")
            continue
        meta = fld.metadata
        value = convert(hints[name], data[name], key_path, secret=bool(meta.get("secret")))
        _check_choices(value, meta, key_path)
        _check_bounds(value, meta, key_path)
        kwargs[name] = value
    try:
        section = cls(**kwargs)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(join(path, str(exc)) if path else str(exc)) from None
    _check_default_lengths(kwargs, fields, path)
    return section


def _check_default_lengths(values: Mapping[str, Any], fields: Mapping[str, Any], path: str) -> None:
    # After __post_init__, so that a section's own, more telling check of a long value speaks first.
    for name, value in values.items():
        text = str(value) if isinstance(value, str | Path) else None
        if text is not None and "max" not in fields[name].metadata and len(text) > MAX_STRING:
            raise ConfigError(f"{join(path, name)}: length {len(text)} is above the maximum {MAX_STRING}")


def is_secret(fld: dataclasses.Field[Any]) -> bool:
    return bool(fld.metadata.get("secret"))


def to_dict(obj: Any, *, redact: bool = True) -> Any:
    """A plain (TOML/JSON-friendly) copy of a config tree; secret fields become ``"***"`` when set."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for fld in dataclasses.fields(obj):
            value = getattr(obj, fld.name)
            out[fld.name] = REDACTED if redact and is_secret(fld) and value else to_dict(value, redact=redact)
        return out
    if isinstance(obj, Mapping):
        return {k: to_dict(v, redact=redact) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_dict(v, redact=redact) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _section_of(hint: Any) -> tuple[type | None, str]:
    """The dataclass inside a hint and the path suffix to reach it (``[]`` for lists, ``.*`` for dicts)."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint, ""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            found, suffix = _section_of(arm)
            if found is not None:
                return found, suffix
    if origin in (tuple, list) and args:
        found, suffix = _section_of(args[0])
        return found, "[]" + suffix
    if origin in (dict, Mapping) and len(args) == 2:
        found, suffix = _section_of(args[1])
        return found, ".*" + suffix
    return None, ""


def iter_fields(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field[Any]]]:
    """Every field of a section tree, depth first, as ``(dotted path, field)``.

    Lists of sections appear as ``cameras[].name``, dicts of sections as ``zones.*.points``.
    """
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        path = join(prefix, fld.name)
        yield path, fld
        section, suffix = _section_of(hints[fld.name])
        if section is not None:
            yield from iter_fields(section, path + suffix)


def apply_override(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` (``mqtt.host``, ``cameras[0].source``) in a raw TOML dict, creating tables.

    Raises:
        ConfigError: The path walks through something that is not a table or array, or an index is
            past the end of an array by more than one (index == length appends a new table).
    """
    parts = _split(dotted)
    node: Any = raw
    for here, nxt in itertools.pairwise(parts):
        node = _descend(node, here, nxt, dotted)
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise ConfigError(f"{dotted}: cannot set this override")
        node[last:last + 1] = [value]
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{dotted}: cannot set this override")


def _descend(node: Any, key: str | int, nxt: str | int, dotted: str) -> Any:
    empty: Any = [] if isinstance(nxt, int) else {}
    if isinstance(key, int):
        if not isinstance(node, list) or key > len(node):
            raise ConfigError(f"{dotted}: index {key} is out of range")
        if key == len(node):
            node.append(empty)
        return node[key]
    if not isinstance(node, dict):
        raise ConfigError(f"{dotted}: {key!r} is not inside a table")
    return node.setdefault(key, empty)


def _split(dotted: str) -> list[str | int]:
    parts: list[str | int] = []
    for chunk in dotted.split("."):
        name, _, rest = chunk.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise ConfigError(f"{dotted}: bad override key")
            parts.append(int(index))
            rest = rest.removeprefix("[")
    if not parts:
        raise ConfigError(f"{dotted!r}: empty override key")
    return parts
