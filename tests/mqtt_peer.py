"""The hub's end of a socket pair, played by a test: it reads what the device runtime's MQTT client
sends (decoded by our codec) and answers with bytes of the test's choosing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from edgeprov.device.mqtt_client import MqttClient
from edgeprov.mqtt import codec
from edgeprov.mqtt.packets import ConnackCode, Connect, Packet

P = TypeVar("P")
BOUND = 10.0  # seconds any one scenario may take: a bound on a hang, not an assertion on time
CONNECT = Connect("dev/$edgeAgent", "localhost/dev/$edgeAgent/?api-version=2021-04-12", "token", False, 60)


class Peer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = codec.Decoder()
        self._pending: list[Packet] = []

    async def next(self) -> Packet | None:
        """The next packet from the client, or None once it has closed the connection."""
        while not self._pending:
            data = await self._reader.read(65536)
            if not data:
                return None
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

    async def expect(self, kind: type[P]) -> P:
        packet = await self.next()
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    def send(self, data: bytes) -> None:
        self._writer.write(data)

    def close(self) -> None:
        self._writer.close()


@contextlib.asynccontextmanager
async def socket_pair() -> AsyncIterator[tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], Peer]]:
    """The client's streams, and the peer at the other end."""
    ours, theirs = socket.socketpair()
    client_streams = await asyncio.open_connection(sock=ours)
    peer = Peer(*await asyncio.open_connection(sock=theirs))
    try:
        yield client_streams, peer
    finally:
        peer.close()
        client_streams[1].close()


@contextlib.asynccontextmanager
async def connected(
    connect: Connect = CONNECT, session_present: bool = False
) -> AsyncIterator[tuple[MqttClient, Peer]]:
    """A client the peer has accepted."""
    async with socket_pair() as ((reader, writer), peer):
        starting = asyncio.create_task(MqttClient.start(reader, writer, connect))
        assert await peer.expect(Connect) == connect
        peer.send(codec.encode_connack(ConnackCode.ACCEPTED, session_present))
        client = await starting
        try:
            yield client, peer
        finally:
            await client.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run one async scenario, bounded by ``BOUND``."""

    async def bounded() -> None:
        async with asyncio.timeout(BOUND):
            await scenario()

    asyncio.run(bounded())
