"""edgeprov's own hub endpoints for what the cloud serves over AMQP: sending C2D, reading the event log.

``POST /edgeprov/hub/devices/{id}/messages`` queues a cloud-to-device message (the Python
service SDK sends these over AMQP, which edgeprov does not serve). ``GET /edgeprov/hub/events``
reads the hub's event log from a sequence number or a time, waiting up to ``wait`` seconds for
the first new event (a long poll; ``edgeprov hub monitor-events`` loops on it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgeprov.api import auth
from edgeprov.api.http import json_object, json_response
from edgeprov.api.services import Services
from edgeprov.errors import BadRequest
from edgeprov.hub.messages import Properties

MAX_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.1
MAX_EVENTS = 1000
# The bag's system keys the request names by their long names, as the cloud's AMQP properties do.
SYSTEM_FIELDS = {
    "messageId": "$.mid",
    "correlationId": "$.cid",
    "userId": "$.uid",
    "contentType": "$.ct",
    "contentEncoding": "$.ce",
    "expiryTimeUtc": "$.exp",
    "ack": "iothub-ack",
}


async def _authorize(request: Request) -> tuple[Services, str]:
    services: Services = request.app.state.services
    caller = await services.auth.hub(request.headers.get("authorization"), auth.SERVICE_CONNECT)
    return services, caller.service


async def send_c2d(request: Request) -> Response:
    services, hub = await _authorize(request)
    body = await json_object(request)
    message = await services.messaging.send_c2d(hub, request.path_params["device"], _data(body), _properties(body))
    return json_response({"messageId": message.message_id, "deviceId": message.device_id})


def _data(body: dict[str, object]) -> bytes:
    data, data_b64 = body.get("data"), body.get("dataBase64")
    if isinstance(data_b64, str):
        try:
            return base64.b64decode(data_b64, validate=True)
        except binascii.Error:
            raise BadRequest("'dataBase64' is not base64") from None
    if not isinstance(data, str):
        raise BadRequest("a message needs 'data' (text) or 'dataBase64'")
    return data.encode()


def _properties(body: dict[str, object]) -> Properties:
    pairs: list[tuple[str, str | None]] = []
    for field, key in SYSTEM_FIELDS.items():
        value = body.get(field)
        if value is not None:
            pairs.append((key, str(value)))
    custom = body.get("properties") or {}
    if not isinstance(custom, dict) or not all(isinstance(v, str | None) for v in custom.values()):
        raise BadRequest("'properties' must map names to strings")
    pairs.extend((str(k), v) for k, v in custom.items())
    return tuple(pairs)


async def events(request: Request) -> Response:
    services, hub = await _authorize(request)
    params = request.query_params
    try:
        after = int(params.get("after", "0"))
        since = float(params.get("since", "0")) / 1000
        wait = min(float(params.get("wait", "0")), MAX_WAIT_SECONDS)
        limit = max(1, min(int(params.get("limit", str(MAX_EVENTS))), MAX_EVENTS))
    except ValueError:
        raise BadRequest("after, since (ms), wait (s) and limit are numbers") from None
    device = params.get("deviceId")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        found, after = await services.messaging.events(hub, after, since, device, limit)
        if found or loop.time() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    return json_response({"events": [e.to_json() for e in found], "next": after})


ROUTES = [
    Route("/edgeprov/hub/devices/{device}/messages", send_c2d, methods=["POST"]),
    Route("/edgeprov/hub/events", events, methods=["GET"]),
]
