"""Telemetry from every connection of a worker, committed in batches.

A message is acknowledged only once committed, and one commit per message would cap telemetry at
the disk's commit rate; so everything that arrives while one batch commits goes into the next,
in arrival order, and each message's ``done`` is told the batch's fate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from edgeprov.errors import EdgeprovError
from edgeprov.hub.connections import Connections
from edgeprov.hub.messages import DeviceEvent

log = logging.getLogger("edgeprov.mqtt")

Done = Callable[[bool], None]


class EventRecorder:
    def __init__(self, connections: Connections, spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self._connections = connections
        self._spawn = spawn
        self._waiting: list[tuple[str, DeviceEvent, Done]] = []
        self._flushing = False

    def record(self, hub: str, event: DeviceEvent, done: Done) -> None:
        self._waiting.append((hub, event, done))
        if not self._flushing:
            self._flushing = True
            self._spawn(self._flush())

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._connections.record_events([(hub, event) for hub, event, _ in batch])
                    ok = True
                except EdgeprovError:
                    log.exception("could not record %d telemetry messages", len(batch))
                    ok = False
                for _, _, done in batch:
                    done(ok)
        finally:
            self._flushing = False
