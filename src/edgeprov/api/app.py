"""The HTTPS application: the device hot path in front, the service APIs behind it.

Request paths are matched case-insensitively on their fixed words, as the cloud does (the Node
service client writes ``/enrollmentgroups/…`` where others write ``/enrollmentGroups/…``); ids
keep their case.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from edgeprov.api import dps_service, hub_service
from edgeprov.api.asgi import ASGIApp, Receive, Scope, Send
from edgeprov.api.dps_device import DpsDeviceApi, is_device_path
from edgeprov.api.errors import dps_error_body, hub_error_body, new_tracking_id
from edgeprov.api.services import Services
from edgeprov.errors import EdgeprovError, InternalError, MethodNotAllowed, NotFound

WEBSOCKET_PATH = "/$iothub/websocket"

KEYWORDS = frozenset(
    {
        "enrollments", "enrollmentgroups", "registrations", "attestationmechanism", "query", "devices", "modules",
        "twins", "methods", "statistics", "service", "configurations", "testqueries", "applyconfigurationcontent",
        "commands", "edgeprov", "dps", "linkedhubs", "attempts", "simulate", "hub", "events", "messages",
    }
)  # fmt: skip
# Words that may stand where an id usually does (/devices/query, /statistics/devices, ...).
SECOND_WORDS = frozenset({"query", "testqueries", "devices", "service", "dps", "hub"})
DPS_FAMILIES = frozenset({"enrollments", "enrollmentgroups", "registrations", "edgeprov"})


def canonical_path(path: str) -> str:
    parts = path.split("/")
    for index in range(1, len(parts)):
        lowered = parts[index].lower()
        keyword_position = index % 2 == 1 or (index == 2 and lowered in SECOND_WORDS)
        if keyword_position and lowered in KEYWORDS:
            parts[index] = lowered
    return "/".join(parts)


def _error_response(request: Request, exc: EdgeprovError) -> Response:
    services: Services = request.app.state.services
    tracking_id = new_tracking_id()
    family = request.url.path.split("/", 2)[1].lower() if request.url.path.count("/") else ""
    render = dps_error_body if family in DPS_FAMILIES else hub_error_body
    headers = {"x-ms-request-id": tracking_id, "x-ms-error-code": str(exc.code)}
    return Response(
        render(exc, tracking_id, services.clock.now()),
        status_code=exc.status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EdgeprovError)
    return _error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error_response(request, MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"))
    if exc.status_code == 404:
        return _error_response(request, NotFound(f"no API at {request.url.path[:200]}"))
    return _error_response(request, InternalError(str(exc.detail)))


def build_app(
    services: Services, extra_routes: list[object] | None = None, websocket: ASGIApp | None = None
) -> ASGIApp:
    """The HTTPS application; ``websocket`` serves ``/$iothub/websocket`` (MQTT over WebSocket)."""
    service_api = Starlette(
        routes=[*dps_service.ROUTES, *hub_service.ROUTES, *(extra_routes or [])],  # type: ignore[list-item]
        exception_handlers={EdgeprovError: _domain_error, HTTPException: _http_error},
    )
    service_api.state.services = services
    device_api = DpsDeviceApi(services.provisioning, services.clock)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if is_device_path(path):
                await device_api(scope, receive, send)
                return
            scope["path"] = canonical_path(path)
        elif scope["type"] == "websocket":
            if websocket is not None and scope["path"] == WEBSOCKET_PATH:
                await websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await service_api(scope, receive, send)

    return app
