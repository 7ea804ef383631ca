"""Evaluating an expression against one twin document.

Values are JSON values or :data:`UNDEFINED`. Logic is three-valued: a comparison with an
undefined value, or between values of different types, is undefined, and ``NOT undefined`` is
undefined too; a condition holds only when it is exactly ``true`` (spec/hub-protocol.md §4).
"""

from __future__ import annotations

import math
from typing import Any

from edgeprov.hub.query.functions import FUNCTIONS, is_number, json_number
from edgeprov.hub.query.nodes import (
    UNDEFINED,
    Arithmetic,
    Array,
    Call,
    Comparison,
    Expression,
    Literal,
    Logical,
    Membership,
    Negation,
    Path,
)
from edgeprov.types import JsonObject


def holds(condition: Expression | None, document: JsonObject) -> bool:
    return condition is None or evaluate(condition, document) is True


def evaluate(expression: Expression, document: JsonObject) -> Any:
    match expression:
        case Literal(value):
            return value
        case Path(segments):
            return resolve(segments, document)
        case Comparison(operator, left, right):
            return compare(operator, evaluate(left, document), evaluate(right, document))
        case Logical(operator, operands):
            return _logical(operator, operands, document)
        case Negation(operator, operand):
            return _negate(operator, evaluate(operand, document))
        case Arithmetic(first, rest):
            value = evaluate(first, document)
            for operator, operand in rest:
                value = _arithmetic(operator, value, evaluate(operand, document))
            return json_number(value) if is_number(value) else value
        case Membership(operand, items, negated):
            return _membership(evaluate(operand, document), items, negated, document)
        case Call(function, arguments):
            return FUNCTIONS[function].implementation(*(evaluate(a, document) for a in arguments))
        case Array(items):
            values = [evaluate(item, document) for item in items]
            return [v for v in values if v is not UNDEFINED]
    raise AssertionError(f"unknown expression {expression!r}")


def resolve(segments: tuple[str, ...], document: JsonObject) -> Any:
    value: Any = document
    for segment in segments:
        if not isinstance(value, dict) or segment not in value:
            return UNDEFINED
        value = value[segment]
    return value


def type_rank(value: Any) -> int | None:
    """Values compare only within one type; objects and arrays not at all."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    if is_number(value):
        return 2
    if isinstance(value, str):
        return 3
    return None


def compare(operator: str, left: Any, right: Any) -> Any:
    rank = type_rank(left)
    if rank is None or rank != type_rank(right):
        return UNDEFINED
    if operator == "=":
        return left == right
    if operator in ("!=", "<>"):
        return left != right
    if rank < 2:  # null and booleans have no order
        return UNDEFINED
    if operator == "<":
        return left < right
    if operator == ">":
        return left > right
    if operator == "<=":
        return left <= right
    return left >= right


def _logical(operator: str, operands: tuple[Expression, ...], document: JsonObject) -> Any:
    # AND is false as soon as one operand is false, OR true as soon as one is true; otherwise an
    # operand that is not a boolean makes the result undefined.
    decisive = operator == "OR"
    result: Any = not decisive
    for operand in operands:
        value = evaluate(operand, document)
        if value is decisive:
            return decisive
        if not isinstance(value, bool):
            result = UNDEFINED
    return result


def _negate(operator: str, value: Any) -> Any:
    if operator == "NOT":
        return (not value) if isinstance(value, bool) else UNDEFINED
    return json_number(-value) if is_number(value) else UNDEFINED


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    if not (is_number(left) and is_number(right)):
        return UNDEFINED
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if right == 0:
        return UNDEFINED
    if operator == "%":
        # The sign of the dividend, as in JavaScript, not Python's sign of the divisor.
        if isinstance(left, int) and isinstance(right, int):
            remainder = abs(left) % abs(right)
            return remainder if left >= 0 else -remainder
        return math.fmod(left, right)
    if isinstance(left, int) and isinstance(right, int) and left % right == 0:
        return left // right
    return left / right


def _membership(value: Any, items: tuple[Expression, ...], negated: bool, document: JsonObject) -> Any:
    if type_rank(value) is None:
        return UNDEFINED
    found = any(compare("=", value, evaluate(item, document)) is True for item in items)
    return found is not negated
