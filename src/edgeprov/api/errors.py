"""Errors on the HTTPS wire: the provisioning service's shape and the hub's, from one exception tree."""

from __future__ import annotations

import itertools
import secrets

from edgeprov.clock import iso
from edgeprov.errors import EdgeprovError
from edgeprov.jsonutil import dumps

_PROCESS = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def new_tracking_id() -> str:
    """Unique per request and cheap: a random per-process prefix and a counter."""
    return f"{_PROCESS}-{next(_COUNTER):012x}"


def dps_error_body(exc: EdgeprovError, tracking_id: str, now: float) -> bytes:
    """spec/dps-protocol.md §4.1: a six-digit errorCode whose first three digits are the status."""
    body: dict[str, object] = {
        "errorCode": exc.code,
        "trackingId": tracking_id,
        "message": exc.message,
        "timestampUtc": iso(now),
    }
    if exc.info:
        body["info"] = exc.info
    return dumps(body)


def hub_error_body(exc: EdgeprovError, tracking_id: str, now: float) -> bytes:
    """spec/hub-protocol.md §3.1: ``Message`` as the cloud writes it, which aziot-identityd parses."""
    return dumps(
        {
            "Message": f"ErrorCode:{exc.name};{exc.message}",
            "ExceptionMessage": f"Tracking ID:{tracking_id}-TimeStamp:{iso(now)}",
            "errorCode": exc.code,
            "message": exc.message,
        }
    )
