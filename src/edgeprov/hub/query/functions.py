"""The built-in functions of the query language: ``IS_DEFINED``, type checks and string functions.

A function given arguments of the wrong type answers undefined, as the hub does, rather than
failing the query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeprov.hub.query.nodes import UNDEFINED


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_number(value: int | float) -> int | float:
    """JSON numbers are doubles; an integer beyond 64 bits (which no twin holds) becomes one too."""
    return float(value) if isinstance(value, int) and not -(2**63) <= value < 2**63 else value


def is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, bool | str) or is_number(value)


@dataclass(frozen=True, slots=True)
class Function:
    implementation: Callable[..., Any]
    min_arguments: int
    max_arguments: int | None

    def arity(self) -> str:
        if self.max_arguments == self.min_arguments:
            return f"{self.min_arguments} argument{'s' if self.min_arguments != 1 else ''}"
        if self.max_arguments is None:
            return f"at least {self.min_arguments} arguments"
        return f"{self.min_arguments} to {self.max_arguments} arguments"


def _strings(function: Callable[..., Any]) -> Callable[..., Any]:
    """Apply ``function`` only when every argument is a string."""

    def checked(*args: Any) -> Any:
        return function(*args) if all(isinstance(a, str) for a in args) else UNDEFINED

    return checked


def _substring(text: Any, start: Any, length: Any = None) -> Any:
    if not isinstance(text, str) or not _whole(start) or (length is not None and not _whole(length)):
        return UNDEFINED
    begin = max(int(start), 0)
    return text[begin:] if length is None else text[begin : begin + max(int(length), 0)]


def _whole(value: Any) -> bool:
    return is_number(value) and float(value).is_integer()


def _length(value: Any) -> Any:
    return len(value) if isinstance(value, str) else UNDEFINED


FUNCTIONS: dict[str, Function] = {
    "IS_DEFINED": Function(lambda v: v is not UNDEFINED, 1, 1),
    "IS_NULL": Function(lambda v: v is None, 1, 1),
    "IS_BOOL": Function(lambda v: isinstance(v, bool), 1, 1),
    "IS_NUMBER": Function(is_number, 1, 1),
    "IS_STRING": Function(lambda v: isinstance(v, str), 1, 1),
    "IS_OBJECT": Function(lambda v: isinstance(v, dict), 1, 1),
    "IS_ARRAY": Function(lambda v: isinstance(v, list), 1, 1),
    "IS_PRIMITIVE": Function(is_primitive, 1, 1),
    "STARTS_WITH": Function(_strings(str.startswith), 2, 2),
    "ENDS_WITH": Function(_strings(str.endswith), 2, 2),
    "CONTAINS": Function(_strings(str.__contains__), 2, 2),
    "INDEX_OF": Function(_strings(str.find), 2, 2),
    "LOWER": Function(_strings(str.lower), 1, 1),
    "UPPER": Function(_strings(str.upper), 1, 1),
    "LENGTH": Function(_length, 1, 1),
    "CONCAT": Function(_strings(lambda *parts: "".join(parts)), 2, None),
    "SUBSTRING": Function(_substring, 2, 3),
}
