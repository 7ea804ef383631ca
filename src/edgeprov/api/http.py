"""Request and response helpers for the service APIs (Starlette)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edgeprov.api.asgi import JSON
from edgeprov.errors import BadRequest, MessageTooLarge
from edgeprov.jsonutil import dumps, loads, loads_object
from edgeprov.types import JsonObject

MAX_SERVICE_BODY = 1024 * 1024


class JsonResponse(Response):
    media_type = JSON.decode()

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse(content, status_code=status, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


async def raw_body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_SERVICE_BODY:
        raise MessageTooLarge(f"the request body exceeds {MAX_SERVICE_BODY} bytes")
    return body


async def json_object(request: Request) -> JsonObject:
    return loads_object(await raw_body(request))


async def json_value(request: Request) -> Any:
    body = await raw_body(request)
    return loads(body) if body.strip() else None


def page_size(request: Request) -> int:
    """The page size asked for (``x-ms-max-item-count`` or ``top``); 0 when none was."""
    value = request.headers.get("x-ms-max-item-count") or request.query_params.get("top") or "0"
    try:
        size = int(value)
    except ValueError:
        size = -1
    if size < 0:
        raise BadRequest(f"page size {value[:20]!r} is not a whole number of 0 or more")
    return size


def paged(items: list[Any], continuation: str | None, item_type: str) -> JsonResponse:
    # Clients take any x-ms-continuation header, even an empty one, as "more to come".
    headers = {"x-ms-item-type": item_type}
    if continuation:
        headers["x-ms-continuation"] = continuation
    return json_response(items, headers=headers)
