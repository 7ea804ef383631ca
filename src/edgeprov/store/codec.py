"""Storage form of the domain's frozen dataclasses: plain JSON with every key sealed.

One generic codec, driven by each class's type hints (computed once per class), instead of a
hand-written pair of functions per noun.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from functools import cache
from typing import Any, TypeVar

import orjson

from edgeprov.vault import KeyVault

T = TypeVar("T")
SECRET_FIELDS = frozenset({"primary_key", "secondary_key"})


class Codec:
    def __init__(self, vault: KeyVault) -> None:
        self._vault = vault

    def encode(self, obj: Any) -> bytes:
        # orjson serialises dataclasses, enums and tuples natively; only the keys need a copy.
        return orjson.dumps(self._sealed(obj))

    def decode(self, cls: type[T], data: bytes | str) -> T:
        return typing.cast(T, self._build(cls, orjson.loads(data)))

    def _sealed(self, obj: Any) -> Any:
        secrets = _secret_fields(obj.__class__)
        if not secrets:
            return obj
        plain = {name: getattr(obj, name) for name in _field_names(obj.__class__)}
        for name, kind in secrets:
            value = plain[name]
            if value is not None:
                plain[name] = self._vault.seal(value) if kind is _Kind.PLAIN else self._sealed(value)
        return plain

    def _build(self, cls: type[Any], data: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {}
        for name, kind, hint in _fields(cls):
            if name not in data:
                continue
            value = data[name]
            if value is not None:
                if name in SECRET_FIELDS and isinstance(value, str):
                    value = self._vault.unseal(value)
                if kind is _Kind.NESTED:
                    value = self._build(hint, value)
                elif kind is _Kind.ENUM:
                    value = hint(value)
                elif kind is _Kind.TUPLE:
                    value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)


class _Kind(enum.Enum):
    PLAIN = enum.auto()
    NESTED = enum.auto()
    ENUM = enum.auto()
    TUPLE = enum.auto()


@cache
def _field_names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@cache
def _secret_fields(cls: type[Any]) -> tuple[tuple[str, _Kind], ...]:
    """The fields holding a key (PLAIN) or a dataclass that holds one (NESTED), transitively."""
    if not dataclasses.is_dataclass(cls):
        return ()
    found = []
    for name, kind, hint in _fields(cls):
        if name in SECRET_FIELDS:
            found.append((name, _Kind.PLAIN))
        elif kind is _Kind.NESTED and _secret_fields(hint):
            found.append((name, _Kind.NESTED))
    return tuple(found)


_FIELDS: dict[type[Any], tuple[tuple[str, _Kind, Any], ...]] = {}


def _fields(cls: type[Any]) -> tuple[tuple[str, _Kind, Any], ...]:
    known = _FIELDS.get(cls)
    if known is None:
        hints = typing.get_type_hints(cls)
        known = tuple(
            (f.name, _kind_of(hint), hint) for f in dataclasses.fields(cls) for hint in [_strip_optional(hints[f.name])]
        )
        _FIELDS[cls] = known
    return known


def _strip_optional(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _kind_of(hint: Any) -> _Kind:
    if dataclasses.is_dataclass(hint):
        return _Kind.NESTED
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _Kind.ENUM
    if typing.get_origin(hint) is tuple:
        return _Kind.TUPLE
    return _Kind.PLAIN
