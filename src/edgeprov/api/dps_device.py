"""The provisioning service's device API over HTTPS (spec/dps-protocol.md §1), as raw ASGI.

This is the hot path of a fleet roll-out, so it bypasses the framework: one path split, the
headers it needs, the body, and the domain call.
"""

from __future__ import annotations

from edgeprov.api.asgi import Headers, Receive, Scope, Send, header, read_body, respond
from edgeprov.api.errors import dps_error_body, new_tracking_id
from edgeprov.clock import Clock
from edgeprov.dps.model import RegistrationStatus
from edgeprov.dps.registration import Provisioning, RegisterRequest
from edgeprov.errors import BadRequest, EdgeprovError, MethodNotAllowed, NotFound
from edgeprov.jsonutil import dumps, loads_object

MAX_BODY = 96 * 1024  # the cloud's published message limit (spec/dps-protocol.md §8)


def is_device_path(path: str) -> bool:
    """``/{idScope}/registrations/{registrationId}[/...]``, never the service API's ``/registrations/...``."""
    parts = path.split("/", 3)
    return len(parts) >= 4 and parts[2].lower() == "registrations" and parts[1].lower() != "registrations"


class DpsDeviceApi:
    def __init__(self, provisioning: Provisioning, clock: Clock) -> None:
        self._provisioning = provisioning
        self._clock = clock
        self._retry_after = str(provisioning.settings.retry_after).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracking_id = new_tracking_id()
        try:
            body = await read_body(receive, MAX_BODY)
            status, payload, headers = await self._dispatch(scope, body)
        except EdgeprovError as exc:
            status, payload = exc.status, dps_error_body(exc, tracking_id, self._clock.now())
            headers = [(b"x-ms-error-code", str(exc.code).encode())]
        headers.append((b"x-ms-request-id", tracking_id.encode()))
        await respond(send, status, payload, headers)

    async def _dispatch(self, scope: Scope, body: bytes) -> tuple[int, bytes, Headers]:
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        if b"api-version=" not in scope["query_string"]:
            raise BadRequest("the request needs an api-version query parameter, e.g. ?api-version=2021-06-01")
        if len(parts) == 4 and parts[3].lower() == "register":
            _allow(method, "PUT")
            return await self._register(scope, parts, body)
        if len(parts) == 5 and parts[3].lower() == "operations":
            _allow(method, "GET")
            return await self._poll(scope, parts)
        if len(parts) == 3:
            _allow(method, "POST")
            return await self._status(scope, parts, body)
        raise NotFound(f"no device API at {scope['path'][:200]!r}")

    async def _register(self, scope: Scope, parts: list[str], body: bytes) -> tuple[int, bytes, Headers]:
        request = _request(scope, parts, body)
        operation = await self._provisioning.register(request)
        answer = dumps({"operationId": operation.operation_id, "status": str(RegistrationStatus.ASSIGNING)})
        return 202, answer, [(b"retry-after", self._retry_after)]

    async def _poll(self, scope: Scope, parts: list[str]) -> tuple[int, bytes, Headers]:
        operation = await self._provisioning.operation_status(
            parts[0], parts[2], parts[4], header(scope, b"authorization")
        )
        if operation.status is RegistrationStatus.ASSIGNING:
            return 202, operation.body, [(b"retry-after", self._retry_after)]
        return 200, operation.body, []

    async def _status(self, scope: Scope, parts: list[str], body: bytes) -> tuple[int, bytes, Headers]:
        record = await self._provisioning.registration_status(_request(scope, parts, body))
        return 200, dumps(record.to_json()), []


def _allow(method: str, expected: str) -> None:
    if method != expected:
        raise MethodNotAllowed(f"{method} is not allowed here; use {expected}")


def _request(scope: Scope, parts: list[str], body: bytes) -> RegisterRequest:
    client = scope.get("client")
    return RegisterRequest(
        id_scope=parts[0],
        registration_id=parts[2],
        body=loads_object(body) if body.strip() else {},
        authorization=header(scope, b"authorization"),
        source=f"{client[0]}:{client[1]}" if client else "",
    )
