"""The MQTT 3.1.1 codec, sans I/O: feed bytes to a :class:`Decoder`, get packets; encode what is sent.

Everything that parses network bytes ends in a packet or a :class:`ProtocolError` (nothing else
escapes, whatever arrives), and a decoder never holds more than one packet's worth of bytes: a
packet that announces more than ``max_packet_size`` is refused as soon as its header is read.
Both directions are here because the gateway, the device runtime and the benchmarks' clients
all speak the same packets.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeprov.mqtt.packets import (
    PROTOCOL_LEVEL,
    PROTOCOL_NAME,
    Connack,
    ConnackCode,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
)

# The cloud's 256 KB message limit, plus room for a topic carrying the property bag.
MAX_PACKET_SIZE = 256 * 1024 + 64 * 1024
_MAX_REMAINING_LENGTH_BYTES = 4


class ProtocolError(Exception):
    """The peer broke MQTT 3.1.1; the connection must be closed."""


class UnsupportedProtocolLevel(ProtocolError):
    """A CONNECT for another protocol level: answered with CONNACK 1, then closed."""


class Decoder:
    """Incremental decoder: ``feed`` any slice of the stream, get the packets it completes."""

    __slots__ = ("_buffer", "max_packet_size")

    def __init__(self, max_packet_size: int = MAX_PACKET_SIZE) -> None:
        self._buffer = bytearray()
        self.max_packet_size = max_packet_size

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        buffer = self._buffer
        buffer += data
        packets: list[Packet] = []
        start = 0
        end = len(buffer)
        while end - start >= 2:
            length, offset = _remaining_length(buffer, start + 1, end)
            if length < 0:
                break
            if length > self.max_packet_size:
                raise ProtocolError(f"a packet of {length} bytes exceeds the limit of {self.max_packet_size}")
            if offset + length > end:
                break
            packets.append(_decode(buffer[start], bytes(buffer[offset : offset + length])))
            start = offset + length
        if start:
            del buffer[:start]
        return packets


def _remaining_length(buffer: bytearray, index: int, end: int) -> tuple[int, int]:
    """(length, offset of the variable header), or (-1, 0) when more bytes are needed."""
    value = 0
    for position in range(_MAX_REMAINING_LENGTH_BYTES):
        if index + position >= end:
            return -1, 0
        byte = buffer[index + position]
        value |= (byte & 0x7F) << (7 * position)
        if not byte & 0x80:
            return value, index + position + 1
    raise ProtocolError("the remaining length takes more than four bytes")


class _Reader:
    __slots__ = ("_data", "_position")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    def remaining(self) -> int:
        return len(self._data) - self._position

    def byte(self) -> int:
        if self._position >= len(self._data):
            raise ProtocolError("the packet ends early")
        value = self._data[self._position]
        self._position += 1
        return value

    def uint16(self) -> int:
        return (self.byte() << 8) | self.byte()

    def binary(self) -> bytes:
        length = self.uint16()
        if length > self.remaining():
            raise ProtocolError("a field is longer than its packet")
        value = self._data[self._position : self._position + length]
        self._position += length
        return value

    def text(self) -> str:
        try:
            value = self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("a string is not valid UTF-8") from None
        if "\x00" in value:
            raise ProtocolError("a string contains U+0000")
        return value

    def rest(self) -> bytes:
        value = self._data[self._position :]
        self._position = len(self._data)
        return value

    def packet_id(self) -> int:
        value = self.uint16()
        if value == 0:
            raise ProtocolError("packet identifier 0 is not allowed")
        return value

    def done(self) -> None:
        if self.remaining():
            raise ProtocolError("the packet has bytes left over")


def _decode(first: int, body: bytes) -> Packet:
    kind, flags = first >> 4, first & 0x0F
    reader = _Reader(body)
    if kind == PacketType.PUBLISH:
        return _decode_publish(flags, reader)
    expected_flags = 0b0010 if kind in (PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE, PacketType.PUBREL) else 0
    if flags != expected_flags:
        raise ProtocolError(f"packet type {kind} has reserved flags {flags:#x}")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"packet type {kind} is not supported (QoS 2 flows are refused)")
    packet = decoder(reader)
    reader.done()
    return packet


def _decode_connect(reader: _Reader) -> Connect:
    name = reader.binary()
    level = reader.byte()
    if name not in (PROTOCOL_NAME, b"MQIsdp"):
        raise ProtocolError(f"protocol name {name[:10]!r} is not MQTT")
    if level != PROTOCOL_LEVEL or name != PROTOCOL_NAME:
        raise UnsupportedProtocolLevel(f"protocol level {level} is not supported; only 4 (MQTT 3.1.1)")
    flags = reader.byte()
    if flags & 0x01:
        raise ProtocolError("the CONNECT reserved flag is set")
    keep_alive = reader.uint16()
    client_id = reader.text()
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos > 2:
            raise ProtocolError("will QoS 3 is not allowed")
        topic = reader.text()
        will = Will(topic, reader.binary(), will_qos, bool(flags & 0x20))
    elif flags & 0x38:
        raise ProtocolError("will QoS or retain set without a will")
    if flags & 0x40 and not flags & 0x80:
        raise ProtocolError("a password without a user name")
    username = reader.text() if flags & 0x80 else None
    password = None
    if flags & 0x40:
        try:
            password = reader.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the password is not UTF-8 text") from None
    return Connect(client_id, username, password, bool(flags & 0x02), keep_alive, will)


def _decode_publish(flags: int, reader: _Reader) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    topic = reader.text()
    if not topic or "+" in topic or "#" in topic:
        raise ProtocolError("a PUBLISH topic must be non-empty and without wildcards")
    packet_id = reader.packet_id() if qos else None
    return Publish(topic, reader.rest(), qos, packet_id, bool(flags & 0x01), bool(flags & 0x08))


def _decode_connack(reader: _Reader) -> Connack:
    acknowledge = reader.byte()
    code = reader.byte()
    if acknowledge & 0xFE or code > ConnackCode.NOT_AUTHORIZED:
        raise ProtocolError("malformed CONNACK")
    return Connack(ConnackCode(code), bool(acknowledge & 0x01))


def _decode_subscribe(reader: _Reader) -> Subscribe:
    packet_id = reader.packet_id()
    topics: list[tuple[str, int]] = []
    while reader.remaining():
        topic = reader.text()
        qos = reader.byte()
        if qos > 2 or not topic:
            raise ProtocolError("a SUBSCRIBE asks for QoS above 2 or an empty filter")
        topics.append((topic, qos))
    if not topics:
        raise ProtocolError("a SUBSCRIBE without topic filters")
    return Subscribe(packet_id, tuple(topics))


def _decode_suback(reader: _Reader) -> SubAck:
    packet_id = reader.packet_id()
    return SubAck(packet_id, tuple(reader.rest()))


def _decode_unsubscribe(reader: _Reader) -> Unsubscribe:
    packet_id = reader.packet_id()
    topics: list[str] = []
    while reader.remaining():
        topics.append(reader.text())
    if not topics:
        raise ProtocolError("an UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, tuple(topics))


_DECODERS: dict[int, Callable[[_Reader], Packet]] = {
    PacketType.CONNECT: _decode_connect,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBACK: lambda r: PubAck(r.packet_id()),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: lambda r: UnsubAck(r.packet_id()),
    PacketType.PINGREQ: lambda r: PingReq(),
    PacketType.PINGRESP: lambda r: PingResp(),
    PacketType.DISCONNECT: lambda r: Disconnect(),
}


# -- encoding -----------------------------------------------------------------------------------------
def _frame(first: int, body: bytes) -> bytes:
    length = len(body)
    header = bytearray((first,))
    while True:
        byte = length & 0x7F
        length >>= 7
        header.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(header) + body


def _string(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def encode_connack(code: ConnackCode, session_present: bool = False) -> bytes:
    return bytes((0x20, 2, int(session_present), code))


def encode_publish(topic: str, payload: bytes, qos: int = 0, packet_id: int | None = None, dup: bool = False) -> bytes:
    head = _string(topic)
    if qos:
        assert packet_id is not None, "QoS 1 needs a packet identifier"
        head += packet_id.to_bytes(2, "big")
    return _frame(0x30 | (qos << 1) | (0x08 if dup else 0), head + payload)


def encode_puback(packet_id: int) -> bytes:
    return bytes((0x40, 2)) + packet_id.to_bytes(2, "big")


def encode_suback(packet_id: int, codes: tuple[int, ...]) -> bytes:
    return _frame(0x90, packet_id.to_bytes(2, "big") + bytes(codes))


def encode_unsuback(packet_id: int) -> bytes:
    return bytes((0xB0, 2)) + packet_id.to_bytes(2, "big")


PINGRESP = b"\xd0\x00"
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


def encode_connect(connect: Connect) -> bytes:
    flags = 0x02 if connect.clean_session else 0
    payload = _string(connect.client_id)
    if connect.will is not None:
        will = connect.will
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + len(will.payload).to_bytes(2, "big") + will.payload
    if connect.username is not None:
        flags |= 0x80
        payload += _string(connect.username)
    if connect.password is not None:
        flags |= 0x40
        payload += _string(connect.password)
    head = _string("MQTT") + bytes((PROTOCOL_LEVEL, flags)) + connect.keep_alive.to_bytes(2, "big")
    return _frame(0x10, head + payload)


def encode_subscribe(packet_id: int, topics: tuple[tuple[str, int], ...]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(_string(topic) + bytes((qos,)) for topic, qos in topics)
    return _frame(0x82, body)


def encode_unsubscribe(packet_id: int, topics: tuple[str, ...]) -> bytes:
    return _frame(0xA2, packet_id.to_bytes(2, "big") + b"".join(_string(topic) for topic in topics))
