"""Device connections as the hub records them: who may connect, who is connected, their sessions.

The gateway calls these around each connection's life; ``connectionState``,
``connectionStateUpdatedTime`` and ``lastActivityTime`` of devices and modules are what they
write, and persistent sessions' subscriptions outlive the connection that made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from edgeprov import sas
from edgeprov.clock import Clock
from edgeprov.hub.access import check_identity_token
from edgeprov.hub.messages import CloudMessage, DeviceEvent
from edgeprov.store.base import Store, Touch, Tx


@dataclass(frozen=True, slots=True)
class ConnectedIdentity:
    """A device (or one of its modules) whose connection is open, under one session token."""

    hub: str
    device_id: str
    module_id: str
    session: str

    @property
    def client_id(self) -> str:
        return f"{self.device_id}/{self.module_id}" if self.module_id else self.device_id


class Connections:
    def __init__(self, store: Store, clock: Clock, clock_skew: float) -> None:
        self._store = store
        self._clock = clock
        self._skew = clock_skew

    async def authenticate(self, hub: str, device_id: str, module_id: str, token: sas.SasToken) -> None:
        def read(tx: Tx) -> None:
            device = tx.get_device(hub, device_id)
            module = tx.get_module(hub, device_id, module_id) if module_id and device else None
            check_identity_token(token, hub, device, module, module_id, self._clock.now(), self._skew)

        await self._store.read(read)

    async def open(self, identity: ConnectedIdentity, worker: int, persistent: bool) -> dict[str, int]:
        """Record the connection; returns the subscriptions its session kept (none when clean)."""
        now = self._clock.now()

        def write(tx: Tx) -> dict[str, int]:
            tx.set_connected(identity.hub, identity.device_id, identity.module_id, identity.session, worker, now)
            if not persistent:
                tx.delete_session(identity.hub, identity.client_id)
                return {}
            return tx.get_session(identity.hub, identity.client_id) or {}

        return await self._store.write(write)

    async def close(self, identity: ConnectedIdentity, last_activity: float) -> None:
        now = self._clock.now()

        def write(tx: Tx) -> None:
            tx.record_activity(
                [Touch(identity.hub, identity.device_id, identity.module_id, identity.session, last_activity)]
            )
            tx.set_disconnected(identity.hub, identity.device_id, identity.module_id, identity.session, now)

        await self._store.write(write)

    async def save_subscriptions(self, identity: ConnectedIdentity, subscriptions: dict[str, int]) -> None:
        await self._store.write(lambda tx: tx.put_session(identity.hub, identity.client_id, subscriptions))

    async def record_activity(self, touches: Sequence[Touch]) -> None:
        if touches:
            await self._store.write(lambda tx: tx.record_activity(touches))

    async def forget_workers(self, alive: Sequence[int] | None = None) -> int:
        """Mark connections held by workers not in ``alive`` (all, when None) disconnected."""
        now = self._clock.now()

        def write(tx: Tx) -> int:
            if alive is None:
                return tx.disconnect_workers(None, now)
            dead = [worker for worker in tx.connected_workers() if worker not in alive]
            return tx.disconnect_workers(dead, now) if dead else 0

        return await self._store.write(write)

    async def record_events(self, events: Sequence[tuple[str, DeviceEvent]]) -> None:
        """Append telemetry to the hubs' event logs, in arrival order, in one transaction."""

        def write(tx: Tx) -> None:
            for hub, run in groupby(events, key=itemgetter(0)):
                tx.add_events(hub, [event for _, event in run])

        await self._store.write(write)

    async def is_connected(self, hub: str, device_id: str, module_id: str) -> bool:
        def read(tx: Tx) -> bool:
            identity = tx.get_module(hub, device_id, module_id) if module_id else tx.get_device(hub, device_id)
            return identity is not None and identity.connection.connected

        return await self._store.read(read)

    async def pending_c2d(self, hub: str, device_id: str, limit: int) -> list[CloudMessage]:
        now = self._clock.now()
        return await self._store.write(lambda tx: tx.list_c2d(hub, device_id, now, limit))

    async def complete_c2d(self, hub: str, device_id: str, sequence: int) -> None:
        await self._store.write(lambda tx: tx.delete_c2d(hub, device_id, sequence))
