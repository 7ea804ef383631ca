"""The parsed form of a query: expressions, select items and the query itself."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Collection(StrEnum):
    DEVICES = "devices"
    MODULES = "devices.modules"


class Undefined:
    """The value of a path that leads nowhere; comparisons with it are neither true nor false."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = Undefined()


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Path:
    """A dotted path into the twin document, its system names already in their canonical case."""

    segments: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.segments[-1]


@dataclass(frozen=True, slots=True)
class Negation:
    """``NOT x`` or ``-x``."""

    operator: str
    operand: Expression


@dataclass(frozen=True, slots=True)
class Logical:
    """``a AND b AND …`` or ``a OR b OR …``, kept flat so long chains do not nest."""

    operator: str
    operands: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    operator: str
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """``a op1 b op2 c …`` of one precedence level, evaluated left to right."""

    first: Expression
    rest: tuple[tuple[str, Expression], ...]


@dataclass(frozen=True, slots=True)
class Membership:
    """``x IN [...]`` (or ``NIN`` with ``negated``)."""

    operand: Expression
    items: tuple[Expression, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    arguments: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Expression, ...]


Expression = Literal | Path | Negation | Logical | Comparison | Arithmetic | Membership | Call | Array


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``COUNT()``, ``SUM(x)``, ``AVG(x)``, ``MIN(x)`` or ``MAX(x)``."""

    function: str
    argument: Expression | None


@dataclass(frozen=True, slots=True)
class SelectItem:
    value: Expression | Aggregate
    name: str


@dataclass(frozen=True, slots=True)
class Query:
    """``SELECT [TOP n] items FROM collection [WHERE condition] [GROUP BY paths]``; ``items`` None is ``*``."""

    items: tuple[SelectItem, ...] | None
    collection: Collection
    where: Expression | None = None
    group_by: tuple[Path, ...] = ()
    top: int | None = None

    @property
    def aggregates(self) -> bool:
        """Whether rows are groups of twins rather than twins."""
        return bool(self.group_by) or any(isinstance(item.value, Aggregate) for item in self.items or ())


@dataclass(frozen=True, slots=True)
class Condition:
    """A target condition: which twins a configuration targets.

    ``expression`` None (written ``*``) targets every twin; ``text`` is the expression as written,
    without the optional ``FROM collection WHERE`` prefix, for building queries around it.
    """

    collection: Collection | None
    expression: Expression | None
    text: str
