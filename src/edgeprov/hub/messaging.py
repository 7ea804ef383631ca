"""The service side of talking to devices: direct methods, cloud-to-device messages, the event log.

Reaching a connected device is the job of a :class:`DeviceLink` (the MQTT gateway implements
it); this module holds the rules that do not depend on how: limits, validation, what is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from edgeprov.clock import Clock
from edgeprov.errors import BadRequest, DeviceNotFound, MessageTooLarge, ModuleNotFound, QueueDepthExceeded
from edgeprov.hub.messages import MAX_C2D_BYTES, MAX_C2D_PENDING, CloudMessage, DeviceEvent, Properties
from edgeprov.jsonutil import dumps
from edgeprov.store.base import Store, Tx
from edgeprov.types import JsonObject

MAX_METHOD_PAYLOAD = 128 * 1024
DEFAULT_RESPONSE_TIMEOUT = 30
MIN_RESPONSE_TIMEOUT, MAX_RESPONSE_TIMEOUT = 5, 300
MAX_CONNECT_TIMEOUT = 300


@dataclass(frozen=True, slots=True)
class MethodCall:
    name: str
    payload: Any
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT
    connect_timeout: float = 0

    @classmethod
    def from_json(cls, body: JsonObject) -> MethodCall:
        name = body.get("methodName")
        if not isinstance(name, str) or not name or "/" in name or len(name) > 128:
            raise BadRequest("'methodName' must be a non-empty name without '/' of at most 128 characters")
        payload = body.get("payload")
        if len(dumps(payload)) > MAX_METHOD_PAYLOAD:
            raise MessageTooLarge(f"a method payload is limited to {MAX_METHOD_PAYLOAD} bytes")
        response = _seconds(body, "responseTimeoutInSeconds", DEFAULT_RESPONSE_TIMEOUT, MAX_RESPONSE_TIMEOUT)
        connect = _seconds(body, "connectTimeoutInSeconds", 0, MAX_CONNECT_TIMEOUT)
        return cls(name, payload, max(response, MIN_RESPONSE_TIMEOUT), connect)


def _seconds(body: JsonObject, name: str, default: int, limit: int) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
        raise BadRequest(f"'{name}' must be a number of seconds from 0 to {limit}")
    return float(value)


@dataclass(frozen=True, slots=True)
class MethodResult:
    status: int
    payload: Any

    def to_json(self) -> JsonObject:
        return {"status": self.status, "payload": self.payload}


class DeviceLink(Protocol):
    """Reaches connected devices, wherever they are connected."""

    async def invoke_method(self, hub: str, device_id: str, module_id: str, call: MethodCall) -> MethodResult: ...

    def c2d_enqueued(self, hub: str, device_id: str) -> None: ...


class Messaging:
    def __init__(self, store: Store, clock: Clock, link: DeviceLink) -> None:
        self._store = store
        self._clock = clock
        self._link = link

    async def invoke(self, hub: str, device_id: str, module_id: str, body: JsonObject) -> MethodResult:
        call = MethodCall.from_json(body)
        await self._store.read(lambda tx: _check_identity(tx, hub, device_id, module_id))
        return await self._link.invoke_method(hub, device_id, module_id, call)

    async def send_c2d(self, hub: str, device_id: str, body: bytes, properties: Properties) -> CloudMessage:
        size = len(body) + sum(len(k) + len(v or "") for k, v in properties)
        if size > MAX_C2D_BYTES:
            raise MessageTooLarge(f"a cloud-to-device message is limited to {MAX_C2D_BYTES} bytes, not {size}")
        message = CloudMessage.new(device_id, body, properties, self._clock.now())

        def write(tx: Tx) -> None:
            _check_identity(tx, hub, device_id, "")
            if tx.count_c2d(hub, device_id) >= MAX_C2D_PENDING:
                raise QueueDepthExceeded(
                    f"device {device_id!r} already has {MAX_C2D_PENDING} cloud-to-device messages waiting"
                )
            tx.add_c2d(hub, message)

        await self._store.write(write)
        self._link.c2d_enqueued(hub, device_id)
        return message

    async def purge_c2d(self, hub: str, device_id: str) -> int:
        def write(tx: Tx) -> int:
            _check_identity(tx, hub, device_id, "")
            return tx.purge_c2d(hub, device_id)

        return await self._store.write(write)

    async def events(
        self, hub: str, after: int, since: float, device_id: str | None, limit: int
    ) -> tuple[list[DeviceEvent], int]:
        """Events after sequence ``after`` enqueued at ``since`` or later, and where to read on from.

        With none found, reading on starts after the newest event: anything committed later has a
        higher sequence, so the next read need not scan the log again for ``since``.
        """

        def read(tx: Tx) -> tuple[list[DeviceEvent], int]:
            found = tx.list_events(hub, after, since, device_id, limit)
            return found, found[-1].sequence if found else max(after, tx.last_event(hub))

        return await self._store.read(read)

    async def connected_devices(self, hub: str) -> int:
        return await self._store.read(lambda tx: tx.count_connected(hub))


def _check_identity(tx: Tx, hub: str, device_id: str, module_id: str) -> None:
    if tx.get_device(hub, device_id) is None:
        raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
    if module_id and tx.get_module(hub, device_id, module_id) is None:
        raise ModuleNotFound(f"module {module_id!r} does not exist on device {device_id!r}")
