"""An MQTT 3.1.1 client over asyncio streams, on the project's own codec (``edgeprov.mqtt.codec``).

The device runtime's only MQTT client: QoS 0 and 1, a PINGREQ every keep-alive period. One reader
task turns bytes into packets: acknowledgements complete the call waiting for them, PUBLISHes are
acknowledged (QoS 1) and queued for :meth:`MqttClient.next_message`. When the connection ends —
closed by the hub, a protocol error, no PINGRESP before the next ping is due — every waiting
call fails with :class:`ConnectionLost`, which says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from edgeprov.mqtt import codec
from edgeprov.mqtt.codec import ProtocolError
from edgeprov.mqtt.packets import Connack, ConnackCode, Connect, Packet, PingResp, PubAck, Publish, SubAck

READ_SIZE = 65536
CLOSE_TIMEOUT = 5.0


class ConnectionRefused(Exception):
    """The CONNACK refused the CONNECT; ``code`` says why."""

    def __init__(self, code: ConnackCode) -> None:
        super().__init__(f"CONNACK {int(code)} ({code.name.lower().replace('_', ' ')})")
        self.code = code


class ConnectionLost(Exception):
    """The connection ended; the message says how."""


async def open_tls(host: str, port: int, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP and a TLS handshake that checks the certificate and the host name (callers bound the time)."""
    return await asyncio.open_connection(host, port, ssl=context, server_hostname=host)


class MqttClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connect: Connect) -> None:
        self.client_id = connect.client_id
        self._reader = reader
        self._writer = writer
        self._keep_alive = connect.keep_alive
        self._decoder = codec.Decoder()
        self._early: list[Packet] = []  # what arrived with the CONNACK
        self._inbox: asyncio.Queue[Publish | None] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[Packet]] = {}
        self._next_id = 0
        self._pinged = False
        self._lost: ConnectionLost | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.session_present = False

    @classmethod
    async def start(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connect: Connect) -> MqttClient:
        """CONNECT on an open stream; the client once the hub accepted, else :class:`ConnectionRefused`.

        The caller bounds how long the hub may take to answer (``asyncio.timeout``)."""
        client = cls(reader, writer, connect)
        try:
            writer.write(codec.encode_connect(connect))
            connack = await client._connack()
        except BaseException as exc:
            client._lose(f"not connected: {exc}")  # so no DISCONNECT follows a CONNECT the hub did not accept
            await client.close()
            raise
        client.session_present = connack.session_present
        client._tasks = [asyncio.create_task(client._read()), asyncio.create_task(client._ping())]
        return client

    async def _connack(self) -> Connack:
        while not self._early:
            data = await self._reader.read(READ_SIZE)
            if not data:
                raise ConnectionLost("the hub closed the connection before its CONNACK")
            try:
                self._early = self._decoder.feed(data)
            except ProtocolError as exc:
                raise ConnectionLost(f"protocol error: {exc}") from None
        first = self._early.pop(0)
        if not isinstance(first, Connack):
            raise ConnectionLost(f"the hub answered the CONNECT with {type(first).__name__}")
        if first.code is not ConnackCode.ACCEPTED:
            raise ConnectionRefused(first.code)
        return first

    # -- calls -----------------------------------------------------------------------------------------
    async def subscribe(self, filters: tuple[str, ...], qos: int = 1) -> tuple[int, ...]:
        """The granted QoS of each filter (0x80 where the hub refused it)."""
        packet_id = self._packet_id()
        answer = await self._request(packet_id, codec.encode_subscribe(packet_id, tuple((f, qos) for f in filters)))
        assert isinstance(answer, SubAck)
        return answer.codes

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Send; at QoS 1, return once the hub acknowledged it."""
        if not qos:
            await self._write(codec.encode_publish(topic, payload))
            return
        packet_id = self._packet_id()
        await self._request(packet_id, codec.encode_publish(topic, payload, qos, packet_id))

    async def next_message(self) -> Publish:
        """The next PUBLISH from the hub; :class:`ConnectionLost` once the connection has ended."""
        message = await self._inbox.get()
        if message is None:
            self._inbox.put_nowait(None)  # every later call ends the same way
            assert self._lost is not None
            raise self._lost
        return message

    async def close(self) -> None:
        """DISCONNECT (when still connected), then close; safe to call more than once."""
        if self._lost is None:
            with contextlib.suppress(OSError):
                self._writer.write(codec.DISCONNECT)
            self._lose("closed by the device")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)

    # -- internals -------------------------------------------------------------------------------------
    def _packet_id(self) -> int:
        while True:
            self._next_id = self._next_id % 0xFFFF + 1
            if self._next_id not in self._waiting:
                return self._next_id

    async def _request(self, packet_id: int, data: bytes) -> Packet:
        answer: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = answer
        try:
            await self._write(data)
            return await answer
        finally:
            self._waiting.pop(packet_id, None)

    async def _write(self, data: bytes) -> None:
        if self._lost is not None:
            raise self._lost
        self._writer.write(data)
        try:
            await self._writer.drain()
        except OSError as exc:
            reason = f"cannot write: {exc}"
            self._lose(reason)
            raise ConnectionLost(reason) from None

    async def _read(self) -> None:
        try:
            for packet in self._early:
                self._dispatch(packet)
            while data := await self._reader.read(READ_SIZE):
                for packet in self._decoder.feed(data):
                    self._dispatch(packet)
            self._lose("the hub closed the connection")
        except ProtocolError as exc:
            self._lose(f"protocol error: {exc}")
        except OSError as exc:
            self._lose(str(exc) or type(exc).__name__)

    def _dispatch(self, packet: Packet) -> None:
        if isinstance(packet, Publish):
            if packet.qos > 1:
                raise ProtocolError("the hub sent a QoS 2 PUBLISH; the device subscribes at QoS 1")
            if packet.qos and packet.packet_id is not None:
                self._writer.write(codec.encode_puback(packet.packet_id))
            self._inbox.put_nowait(packet)
        elif isinstance(packet, PubAck | SubAck):
            answer = self._waiting.get(packet.packet_id)
            if answer is not None and not answer.done():
                answer.set_result(packet)
        elif isinstance(packet, PingResp):
            self._pinged = False
        else:
            raise ProtocolError(f"a hub does not send {type(packet).__name__} to a connected client")

    async def _ping(self) -> None:
        while self._keep_alive and self._lost is None:
            await asyncio.sleep(self._keep_alive)
            if self._pinged:
                self._lose(f"no PINGRESP within the keep-alive period ({self._keep_alive} s)")
                return
            self._pinged = True
            with contextlib.suppress(OSError):
                self._writer.write(codec.PINGREQ)

    def _lose(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = ConnectionLost(reason)
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(self._lost)
        self._inbox.put_nowait(None)
        self._writer.close()
