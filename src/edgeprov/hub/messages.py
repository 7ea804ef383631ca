"""Device-to-cloud events and cloud-to-device messages, as the hub keeps them (spec/hub-protocol.md §1.2, §6).

Both carry a property bag: ``$.``-prefixed keys are system properties (message id, content
type, …), the others the application's own.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from edgeprov.clock import iso
from edgeprov.types import JsonObject

Properties = tuple[tuple[str, str | None], ...]

MAX_C2D_PENDING = 50
MAX_C2D_BYTES = 64 * 1024
C2D_TTL_SECONDS = 3600.0
SYSTEM_PREFIX = "$."
# The bag's short system keys and the names the service side shows them by.
SYSTEM_NAMES = {
    "$.mid": "message-id",
    "$.cid": "correlation-id",
    "$.uid": "user-id",
    "$.ct": "content-type",
    "$.ce": "content-encoding",
    "$.exp": "absolute-expiry-time",
    "$.ifid": "dt-dataschema",
    "$.on": "output-name",
    "$.sub": "dt-subject",
    "$.to": "to",
}


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One telemetry message in the hub's event log; ``sequence`` is given by the log."""

    device_id: str
    module_id: str
    enqueued: float
    properties: Properties
    body: bytes
    sequence: int = 0

    def system_properties(self) -> JsonObject:
        return {SYSTEM_NAMES.get(k, k[2:]): v for k, v in self.properties if k.startswith(SYSTEM_PREFIX)}

    def application_properties(self) -> JsonObject:
        return {k: v for k, v in self.properties if not k.startswith(SYSTEM_PREFIX)}

    def to_json(self) -> JsonObject:
        return {
            "sequenceNumber": self.sequence,
            "deviceId": self.device_id,
            "moduleId": self.module_id,
            "enqueuedTime": iso(self.enqueued),
            "enqueuedTimeMs": int(self.enqueued * 1000),
            "systemProperties": self.system_properties(),
            "properties": self.application_properties(),
            "body": base64.b64encode(self.body).decode(),
        }


@dataclass(frozen=True, slots=True)
class CloudMessage:
    """A cloud-to-device message waiting for (or on its way to) its device."""

    device_id: str
    message_id: str
    body: bytes
    properties: Properties
    enqueued: float
    expiry: float
    sequence: int = 0

    @classmethod
    def new(cls, device_id: str, body: bytes, properties: Properties, now: float) -> CloudMessage:
        given = dict(properties)
        message_id = given.get("$.mid") or str(uuid.uuid4())
        system: Properties = (("$.mid", message_id), ("$.to", f"/devices/{device_id}/messages/devicebound"))
        rest = tuple((k, v) for k, v in properties if k not in ("$.mid", "$.to"))
        return cls(device_id, message_id, body, system + rest, now, now + C2D_TTL_SECONDS)
