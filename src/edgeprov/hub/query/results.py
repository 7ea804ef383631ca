"""What a query returns for the twins it is shown: one projected row per matching twin, or groups."""

from __future__ import annotations

from typing import Any

import orjson

from edgeprov.hub.query.evaluate import evaluate, holds, type_rank
from edgeprov.hub.query.functions import is_number, json_number
from edgeprov.hub.query.nodes import UNDEFINED, Aggregate, Path, Query
from edgeprov.types import JsonObject


def project(query: Query, document: JsonObject) -> JsonObject:
    """The row a matching twin gives: the twin itself for ``SELECT *``; undefined values are left out."""
    if query.items is None:
        return document
    row: JsonObject = {}
    for item in query.items:
        assert not isinstance(item.value, Aggregate), "aggregate queries are answered by Aggregation"
        value = evaluate(item.value, document)
        if value is not UNDEFINED:
            row[item.name] = value
    return row


class Aggregation:
    """The groups of an aggregate query, fed one twin at a time (memory grows with groups, not twins)."""

    def __init__(self, query: Query) -> None:
        assert query.aggregates, "plain queries are answered by project"
        self._query = query
        self._groups: dict[bytes, _Group] = {}
        if not query.group_by:
            self._group(())  # COUNT() over no twins is still one row: 0

    def add(self, document: JsonObject) -> None:
        if holds(self._query.where, document):
            self._group(tuple(evaluate(path, document) for path in self._query.group_by)).add(document)

    def rows(self) -> list[JsonObject]:
        rows = [group.row() for group in self._groups.values()]
        return rows if self._query.top is None else rows[: self._query.top]

    def _group(self, keys: tuple[Any, ...]) -> _Group:
        identity = orjson.dumps(
            [[k is UNDEFINED, None if k is UNDEFINED else k] for k in keys], option=orjson.OPT_SORT_KEYS
        )
        group = self._groups.get(identity)
        if group is None:
            group = self._groups[identity] = _Group(self._query, keys)
        return group


class _Group:
    def __init__(self, query: Query, keys: tuple[Any, ...]) -> None:
        self._query = query
        self._keys = keys
        items = query.items or ()
        self._accumulators = {
            item.name: _Accumulator(item.value) for item in items if isinstance(item.value, Aggregate)
        }

    def add(self, document: JsonObject) -> None:
        for accumulator in self._accumulators.values():
            accumulator.add(document)

    def row(self) -> JsonObject:
        row: JsonObject = {}
        for item in self._query.items or ():
            if isinstance(item.value, Path):
                value = self._keys[self._query.group_by.index(item.value)]
            else:
                value = self._accumulators[item.name].result()
            if value is not UNDEFINED:
                row[item.name] = value
        return row


class _Accumulator:
    def __init__(self, aggregate: Aggregate) -> None:
        self._aggregate = aggregate
        self._count = 0
        self._total: int | float = 0
        self._best: Any = UNDEFINED

    def add(self, document: JsonObject) -> None:
        argument = self._aggregate.argument
        if argument is None:
            self._count += 1
            return
        value = evaluate(argument, document)
        if self._aggregate.function in ("SUM", "AVG"):
            if is_number(value):
                self._total += value
                self._count += 1
        elif type_rank(value) is not None and (self._best is UNDEFINED or self._replaces(value)):
            self._best = value

    def _replaces(self, value: Any) -> bool:
        # Across types the order is null < booleans < numbers < strings.
        key, best = _order(value), _order(self._best)
        return key < best if self._aggregate.function == "MIN" else key > best

    def result(self) -> Any:
        function = self._aggregate.function
        if function == "COUNT":
            return self._count
        if function == "SUM":
            return json_number(self._total)
        if function == "AVG":
            return self._total / self._count if self._count else UNDEFINED
        return self._best


def _order(value: Any) -> tuple[int, Any]:
    rank = type_rank(value)
    assert rank is not None
    return rank, value if value is not None else 0
