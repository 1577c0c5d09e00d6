"""One serializer for the benchmark's records: a dataclass to JSON data and back, typed by its annotations.

:func:`to_data` turns a dataclass (nested dataclasses, enums, ``X | None``, lists, tuples, mappings) into what
``json.dumps`` writes; :func:`from_data` reads it back as the annotated types say: a float field takes an int,
a tuple field a list, an enum field its value, a nested dataclass an object. A key a record lacks takes the
field's default, so records written before a field existed still load. A required key missing, a value of the
wrong kind or a record's own validation failing raises ``ConfigError`` naming the key (dotted through nested
records: ``configuration.instance_type``), the value and what is allowed.

Where a record's JSON is not a plain image of its fields, the class says how in one ``JSON_SHAPE`` class
attribute (:class:`JsonShape`): keys under other names, fields written with their own codec, derived values
written beside the fields (ignored on reading), a header (``schema``) written first and checked on reading,
unknown keys refused.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from catalog.errors import ConfigError, Issue

T = TypeVar("T")


@dataclass(frozen=True)
class Codec:
    """A field whose JSON is not its type's: ``encode(value) -> data`` and ``decode(data) -> value``."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


@dataclass(frozen=True)
class JsonShape:
    """How one record class differs from the plain image of its fields."""

    keys: Mapping[str, str] = field(default_factory=dict)  # field -> the JSON key, where they differ
    codecs: Mapping[str, Codec] = field(default_factory=dict)  # field -> its own codec
    derived: tuple[str, ...] = ()  # properties written after the fields, for readers of the file; never read
    omitted: tuple[str, ...] = ()  # fields not written (read back with their default)
    header: Mapping[str, str] = field(default_factory=dict)  # constant keys written first, checked on reading
    strict: bool = False  # an unknown key is refused (ConfigError naming it and the allowed keys)
    # What a null (or absent) value of this type reads as, where a record may hold null for it.
    empty: Callable[[], Any] | None = None


PLAIN = JsonShape()


def shape_of(cls: type[Any]) -> JsonShape:
    shape = getattr(cls, "JSON_SHAPE", PLAIN)
    return shape if isinstance(shape, JsonShape) else PLAIN


# --- writing ---------------------------------------------------------------------------------------------------


def to_data(value: Any) -> Any:
    """``value`` as JSON data: objects, arrays, strings, numbers, booleans and null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _record_to_data(value)
    if isinstance(value, enum.Enum):
        return to_data(value.value)
    if isinstance(value, Mapping):
        return {str(to_data(k)): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_data(v) for v in value]
    return value


def _record_to_data(record: Any) -> dict[str, Any]:
    shape = shape_of(type(record))
    data: dict[str, Any] = dict(shape.header)
    for f in dataclasses.fields(record):
        if f.name in shape.omitted:
            continue
        value = getattr(record, f.name)
        codec = shape.codecs.get(f.name)
        data[shape.keys.get(f.name, f.name)] = codec.encode(value) if codec else to_data(value)
    for name in shape.derived:
        data[name] = to_data(getattr(record, name))
    return data


def dumps(record: Any) -> str:
    """One JSON line: keys sorted, no NaN or infinity (not JSON), newline-terminated."""
    return json.dumps(to_data(record), sort_keys=True, allow_nan=False) + "\n"


# --- reading ---------------------------------------------------------------------------------------------------


def from_data(cls: type[T], data: Any) -> T:
    """An instance of the dataclass ``cls`` from JSON data (see the module docstring for the rules).

    Every problem is a :class:`ConfigError` whose issue names the key (dotted through nested records), the
    value and what is allowed; a record's own validation (``__post_init__``) speaks for itself the same way.
    """
    try:
        value: T = _convert(cls, data)
    except _Refused as refused:
        raise ConfigError([Issue(cls.__name__, data, refused.allowed)]) from None
    return value


def loads(cls: type[T], text: str) -> T:
    return from_data(cls, json.loads(text))


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The class's annotations, evaluated once per class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


class _Refused(Exception):  # noqa: N818 - internal: a value of the wrong kind, turned into an Issue by the field
    def __init__(self, allowed: str) -> None:
        super().__init__(allowed)
        self.allowed = allowed


def _record_from_data(cls: type[Any], data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise _Refused(f"must be a JSON object ({cls.__name__})")
    shape = shape_of(cls)
    for key, expected in shape.header.items():
        if data.get(key) != expected:
            raise ConfigError([Issue(key, data.get(key), f"must be {expected}")])
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in shape.omitted}
    key_of = {name: shape.keys.get(name, name) for name in fields}
    if shape.strict:
        allowed = set(key_of.values())
        unknown = sorted(set(data) - allowed - set(shape.header) - set(shape.derived))
        if unknown:
            allowed_text = ", ".join(sorted(allowed))
            raise ConfigError([Issue(unknown[0], data[unknown[0]], f"is not a field; allowed: {allowed_text}")])
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    issues: list[Issue] = []  # every field's problem at once, then the record's own validation
    for name, f in fields.items():
        key = key_of[name]
        try:
            if key in data:
                kwargs[name] = _field(key, data[key], hints[name], shape.codecs.get(name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                empty = _empty_of(hints[name])
                if empty is None:
                    raise ConfigError([Issue(key, None, "is required")])
                kwargs[name] = empty()
        except ConfigError as err:
            issues.extend(err.issues)
    if issues:
        raise ConfigError(issues)
    return cls(**kwargs)


def _field(key: str, value: Any, kind: Any, codec: Codec | None) -> Any:
    """One field's value, its problems named by its key (prefixed to those of a nested record)."""
    try:
        return codec.decode(value) if codec else _convert(kind, value)
    except _Refused as refused:
        raise ConfigError([Issue(key, value, refused.allowed)]) from None
    except ConfigError as err:
        raise ConfigError([Issue(f"{key}.{i.field}", i.value, i.allowed) for i in err.issues]) from None
    except (TypeError, ValueError, LookupError) as err:  # a codec's own refusal
        raise ConfigError([Issue(key, value, f"is not readable ({err!r})")]) from None


def _empty_of(kind: Any) -> Callable[[], Any] | None:
    return shape_of(kind).empty if dataclasses.is_dataclass(kind) and isinstance(kind, type) else None


_SCALARS: dict[type[Any], tuple[tuple[type[Any], ...], str]] = {
    bool: ((bool,), "must be true or false"),
    int: ((int,), "must be an integer"),
    float: ((int, float), "must be a number"),
    str: ((str,), "must be a string"),
}


def _convert(kind: Any, data: Any) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any or kind is object:
        return data
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unions other than X | None are not supported: {kind}")
        if data is None and len(members) < len(args):
            return None
        return _convert(members[0], data)
    if data is None:
        return _null(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _record_from_data(kind, data)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(data)
        except ValueError:
            raise _Refused(f"must be one of {', '.join(str(m.value) for m in kind)}") from None
    if kind in _SCALARS:
        return _scalar(kind, data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item) for item in _array(data))
        items = _array(data)
        if len(items) != len(args):
            raise _Refused(f"must hold {len(args)} items")
        return tuple(_convert(a, item) for a, item in zip(args, items, strict=True))
    if origin in (list, Sequence):
        return [_convert(args[0] if args else Any, item) for item in _array(data)]
    if origin in (dict, Mapping):
        if not isinstance(data, Mapping):
            raise _Refused("must be a JSON object")
        key_kind, value_kind = args or (Any, Any)
        return {_convert(key_kind, k): _convert(value_kind, v) for k, v in data.items()}
    raise TypeError(f"cannot read {kind!r} from JSON")


def _scalar(kind: type[Any], data: Any) -> Any:
    """A number, string or boolean of the annotated kind; a number written as a string is read too."""
    accepted, allowed = _SCALARS[kind]
    if isinstance(data, bool) and kind is not bool:
        raise _Refused(allowed)
    if isinstance(data, accepted):
        return kind(data)
    if kind in (int, float) and isinstance(data, str):
        try:
            return kind(data)
        except ValueError:
            raise _Refused(allowed) from None
    if kind is int and isinstance(data, float) and data.is_integer():
        return int(data)
    raise _Refused(allowed)


def _null(kind: Any) -> Any:
    empty = _empty_of(kind)
    if empty is None:
        raise _Refused("must not be null")
    return empty()


def _array(data: Any) -> list[Any]:
    if not isinstance(data, list | tuple):
        raise _Refused("must be a JSON array")
    return list(data)
