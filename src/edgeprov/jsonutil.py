"""JSON on the wire: orjson for speed, with the one error type the edges map."""

from __future__ import annotations

from typing import Any

import orjson

from edgeprov.errors import BadRequest
from edgeprov.types import JsonObject


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def loads_object(data: bytes | str, *, what: str = "body") -> JsonObject:
    value = loads(data) if data else {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value
