"""What carries MQTT: a TLS listener (asyncio Protocol, no stream objects) and WebSocket at ``/$iothub/websocket``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any, cast

from edgeprov.api.asgi import Receive, Scope, Send
from edgeprov.mqtt.connection import Connection
from edgeprov.mqtt.gateway import Gateway

SUBPROTOCOL = "mqtt"
TLS_HANDSHAKE_TIMEOUT = 10.0
BACKLOG = 4096


class MqttProtocol(asyncio.Protocol):
    __slots__ = ("_connection", "_gateway", "_transport")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._connection: Connection | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._connection = Connection(self._gateway, self._transport, f"{peer[0]}:{peer[1]}" if peer else "")

    # A client that does not read its answers stops being read: its backlog cannot grow without bound.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        assert self._connection is not None
        self._connection.received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._connection.lost()


async def listen_tls(gateway: Gateway, sock: socket.socket, context: ssl.SSLContext) -> asyncio.AbstractServer:
    return await asyncio.get_running_loop().create_server(
        lambda: MqttProtocol(gateway),
        sock=sock,
        ssl=context,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
        backlog=BACKLOG,
    )


class _WebSocketWire:
    """Writes are queued and sent in order by one task: ASGI's send is a coroutine, MQTT's write is not."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self._writer = asyncio.get_running_loop().create_task(self._write_all())

    def write(self, data: bytes) -> None:
        if not self.closed:
            self._queue.put_nowait(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def _write_all(self) -> None:
        # A peer that is gone makes send raise (uvicorn's ClientDisconnected is an OSError): stop quietly.
        with contextlib.suppress(OSError):
            while (data := await self._queue.get()) is not None:
                await self._send({"type": "websocket.send", "bytes": data})
            await self._send({"type": "websocket.close", "code": 1000})

    def stop(self) -> None:
        self._writer.cancel()


async def serve_websocket(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """MQTT in binary WebSocket messages, subprotocol ``mqtt`` (spec/hub-protocol.md §1.1)."""
    if (await receive())["type"] != "websocket.connect":
        return
    if SUBPROTOCOL not in scope.get("subprotocols", []):
        await send({"type": "websocket.close", "code": 1002})
        return
    await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
    wire = _WebSocketWire(send)
    client: Any = scope.get("client")
    connection = Connection(gateway, wire, f"{client[0]}:{client[1]}" if client else "")
    try:
        # After an abort the writer sends the close frame; the peer's answer ends this loop.
        while (message := await receive())["type"] == "websocket.receive":
            connection.received(message.get("bytes") or (message.get("text") or "").encode())
    finally:
        connection.lost()
        wire.stop()
