"""One MQTT connection, whatever carries it (TLS or WebSocket): framing, CONNECT, keep-alive, dispatch.

The transport hands bytes to :meth:`Connection.received` and writes what the connection sends;
the session behind the CONNECT (provisioning or hub) handles the packets. Packets that arrive
while a CONNECT is being authenticated wait their turn, so order is kept.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from edgeprov.mqtt import codec
from edgeprov.mqtt.codec import ProtocolError, UnsupportedProtocolLevel
from edgeprov.mqtt.packets import (
    ConnackCode,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PubAck,
    Publish,
    Subscribe,
    Unsubscribe,
)

if TYPE_CHECKING:
    from edgeprov.mqtt.gateway import Gateway

log = logging.getLogger("edgeprov.mqtt")

KEEP_ALIVE_FACTOR = 1.5
CONNECT_TIMEOUT = 10.0


class Wire(Protocol):
    """What carries the bytes: a TLS transport or a WebSocket."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Session(Protocol):
    @property
    def present(self) -> bool:
        """Whether the CONNACK says a session was kept from before."""
        ...

    def started(self) -> None:
        """Called once the CONNACK is out: deliver what waited for the client."""
        ...

    def on_publish(self, packet: Publish) -> None: ...

    def on_puback(self, packet_id: int) -> None: ...

    def on_subscribe(self, packet: Subscribe) -> None: ...

    def on_unsubscribe(self, packet: Unsubscribe) -> None: ...

    def closed(self, graceful: bool) -> None:
        """The connection is gone; ``graceful`` when the client said DISCONNECT (no will is sent)."""
        ...


class Refused(Exception):
    """A CONNECT that is answered with a refusal code, then closed."""

    def __init__(self, code: ConnackCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connection:
    __slots__ = (
        "_backlog",
        "_decoder",
        "_keep_alive",
        "_timer",
        "closing",
        "gateway",
        "graceful",
        "last_activity",
        "last_received",
        "peer",
        "session",
        "wire",
    )

    def __init__(self, gateway: Gateway, wire: Wire, peer: str) -> None:
        self.gateway = gateway
        self.wire = wire
        self.peer = peer
        self.session: Session | None = None
        self.closing = False
        self.graceful = False
        self._decoder = codec.Decoder()
        self._backlog: list[Packet] | None = None
        self._keep_alive = CONNECT_TIMEOUT
        self.last_received = gateway.loop.time()
        self.last_activity = gateway.clock.now()
        self._timer = gateway.loop.call_later(CONNECT_TIMEOUT, self._check_alive)

    # -- transport side ------------------------------------------------------------------------------
    def received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_received = self.gateway.loop.time()
        try:
            packets = self._decoder.feed(data)
        except UnsupportedProtocolLevel as exc:
            self._refuse(ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION, str(exc))
            return
        except ProtocolError as exc:
            self.abort(f"protocol error: {exc}")
            return
        for packet in packets:
            if self.closing:
                return
            if self._backlog is not None:
                self._backlog.append(packet)
            else:
                self._dispatch(packet)

    def lost(self) -> None:
        """The transport is gone; the session records the disconnection."""
        self.closing = True
        self._timer.cancel()
        session, self.session = self.session, None
        if session is not None:
            session.closed(self.graceful)

    # -- session side --------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.closing:
            self.wire.write(data)

    def publish(self, topic: str, payload: bytes, qos: int = 0, packet_id: int | None = None) -> None:
        self.send(codec.encode_publish(topic, payload, qos, packet_id))

    def abort(self, reason: str) -> None:
        if not self.closing:
            log.info("closing MQTT connection from %s: %s", self.peer, reason)
            self.closing = True
            self.wire.close()

    # -- internals -----------------------------------------------------------------------------------
    def _dispatch(self, packet: Packet) -> None:
        session = self.session
        if session is None:
            if not isinstance(packet, Connect):
                self.abort(f"the first packet is {type(packet).__name__}, not CONNECT")
                return
            self._backlog = []
            self.gateway.spawn(self._connect(packet))
            return
        self.last_activity = self.gateway.clock.now()
        if isinstance(packet, Publish):
            if packet.qos > 1:
                self.abort("QoS 2 is not supported")
            else:
                session.on_publish(packet)
        elif isinstance(packet, PubAck):
            session.on_puback(packet.packet_id)
        elif isinstance(packet, Subscribe):
            session.on_subscribe(packet)
        elif isinstance(packet, Unsubscribe):
            session.on_unsubscribe(packet)
        elif isinstance(packet, PingReq):
            self.send(codec.PINGRESP)
        elif isinstance(packet, Disconnect):
            self.graceful = True
            self.abort("the client disconnected")
        else:
            self.abort(f"a client does not send {type(packet).__name__}")

    async def _connect(self, packet: Connect) -> None:
        try:
            session = await self.gateway.open_session(self, packet)
        except Refused as exc:
            self._refuse(exc.code, exc.reason)
            return
        if self.closing:
            session.closed(False)
            return
        self.session = session
        self.send(codec.encode_connack(ConnackCode.ACCEPTED, session.present))
        session.started()
        self._keep_alive = packet.keep_alive * KEEP_ALIVE_FACTOR
        self._timer.cancel()
        if self._keep_alive:
            self._timer = self.gateway.loop.call_later(self._keep_alive, self._check_alive)
        backlog, self._backlog = self._backlog or [], None
        for queued in backlog:
            if self.closing:
                return
            self._dispatch(queued)

    def _refuse(self, code: ConnackCode, reason: str) -> None:
        log.info("refusing MQTT CONNECT from %s (rc %d): %s", self.peer, code, reason)
        self.send(codec.encode_connack(code))
        self.abort(reason)

    def _check_alive(self) -> None:
        if self.closing:
            return
        if self.session is None:
            self.abort("no CONNECT accepted in time")
            return
        if not self._keep_alive:
            return
        idle = self.gateway.loop.time() - self.last_received
        if idle >= self._keep_alive:
            self.abort(f"nothing received for {idle:.0f} s (1.5 x keep-alive)")
            return
        self._timer = self.gateway.loop.call_later(self._keep_alive - idle, self._check_alive)
