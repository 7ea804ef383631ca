"""Messages between the worker processes of one service (desired patches, method calls, takeovers).

A device is connected to one worker while the service call that concerns it lands on any; the
bus carries the notice across. Only the wire layer uses it: domain code never imports it. The
embedded store pairs with :class:`edgeprov.bus.unix.UnixBus`; a PostgreSQL store will pair with
LISTEN/NOTIFY behind the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Handler = Callable[[bytes], None]


class Bus(Protocol):
    @property
    def worker(self) -> int:
        """This worker's address on the bus."""
        ...

    def start(self, handler: Handler) -> None: ...

    def peers(self) -> list[int]:
        """The workers on the bus now, this one included."""
        ...

    def broadcast(self, message: bytes) -> None:
        """Deliver to every other worker, at most once, without waiting."""
        ...

    def send(self, worker: int, message: bytes) -> None: ...

    def close(self) -> None: ...
