"""Errors on the MQTT wire: the JSON body of a twin error reply, and the provisioning service's shape."""

from __future__ import annotations

from edgeprov.api.errors import dps_error_body, new_tracking_id
from edgeprov.errors import EdgeprovError
from edgeprov.jsonutil import dumps


def hub_error_body(exc: EdgeprovError) -> bytes:
    """The Node client raises on any body with ``errorCode``; the Python one reads the status in the topic."""
    return dumps({"errorCode": exc.code, "message": exc.message})


def dps_error(exc: EdgeprovError, now: float) -> bytes:
    return dps_error_body(exc, new_tracking_id(), now)
