"""The MQTT 3.1.1 codec: round trips, the refusals the gateway relies on, and survival of any input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprov.mqtt import codec, packets
from edgeprov.mqtt.codec import Decoder, ProtocolError, UnsupportedProtocolLevel
from edgeprov.mqtt.packets import Connect, Disconnect, PingReq, PubAck, Publish, Subscribe, Will


def _one(data: bytes) -> packets.Packet:
    packets = Decoder().feed(data)
    assert len(packets) == 1
    return packets[0]


def test_connect_round_trips_with_every_field() -> None:
    connect = Connect(
        "dev1",
        "localhost/dev1/?api-version=2021-04-12",
        "SharedAccessSignature sr=x",
        False,
        60,
        Will("devices/dev1/messages/events/", b"bye", 1, False),
    )
    assert _one(codec.encode_connect(connect)) == connect


def test_publish_subscribe_and_small_packets_round_trip() -> None:
    assert _one(codec.encode_publish("a/b", b"x" * 300, 1, 7)) == Publish("a/b", b"x" * 300, 1, 7)
    assert _one(codec.encode_publish("a/b", b"", 0)) == Publish("a/b", b"", 0, None)
    assert _one(codec.encode_subscribe(3, (("a/#", 1), ("b", 0)))) == Subscribe(3, (("a/#", 1), ("b", 0)))
    assert _one(codec.encode_puback(9)) == PubAck(9)
    assert _one(codec.encode_unsubscribe(4, ("a/#",))) == packets.Unsubscribe(4, ("a/#",))
    assert _one(codec.encode_unsuback(4)) == packets.UnsubAck(4)
    assert _one(codec.encode_suback(5, (1, 0x80))) == packets.SubAck(5, (1, 0x80))
    assert _one(codec.PINGREQ) == PingReq()
    assert _one(codec.DISCONNECT) == Disconnect()
    assert _one(codec.encode_connack(packets.ConnackCode.NOT_AUTHORIZED)) == packets.Connack(
        packets.ConnackCode.NOT_AUTHORIZED
    )


def test_packets_split_anywhere_decode_the_same() -> None:
    stream = codec.encode_publish("t", b"p" * 200, 1, 1) + codec.PINGREQ + codec.encode_puback(2)
    for cut in range(len(stream)):
        decoder = Decoder()
        packets = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert packets == [Publish("t", b"p" * 200, 1, 1), PingReq(), PubAck(2)]
        assert decoder.buffered == 0


def test_only_protocol_level_4_is_spoken() -> None:
    old = bytearray(codec.encode_connect(Connect("c")))
    old[8] = 3
    with pytest.raises(UnsupportedProtocolLevel):
        Decoder().feed(bytes(old))


def test_a_packet_announcing_more_than_the_limit_is_refused_from_its_header() -> None:
    header = b"\x30\xff\xff\xff\x7f"  # PUBLISH announcing 256 MB
    with pytest.raises(ProtocolError):
        Decoder().feed(header)
    with pytest.raises(ProtocolError):
        Decoder(max_packet_size=100).feed(codec.encode_publish("t", b"x" * 200))


@pytest.mark.parametrize(
    "data",
    [
        b"\x36\x05\x00\x01t\x00\x01",  # PUBLISH with QoS 3
        b"\x80\x05\x00\x01\x00\x01a",  # SUBSCRIBE with reserved flags 0
        b"\x82\x03\x00\x01\x00",  # SUBSCRIBE without a filter
        b"\x82\x06\x00\x01\x00\x01a\x03",  # SUBSCRIBE asking for QoS 3
        b"\x62\x02\x00\x01",  # PUBREL: QoS 2 flows are refused
        b"\x32\x03\x00\x01#",  # PUBLISH to a wildcard
        b"\x30\x04\x00\x02\xff\xfe",  # topic that is not UTF-8
        b"\x42\x02\x00\x01",  # PUBACK with flags
        b"\xc0\x01\x00",  # PINGREQ with a body
        b"\x10\x0c\x00\x04MQTT\x04\x01\x00\x3c\x00\x00",  # CONNECT reserved flag
        b"\x10\x0c\x00\x04MQTT\x04\x40\x00\x3c\x00\x00",  # password without user name
        b"\x10\x0c\x00\x04XXXX\x04\x02\x00\x3c\x00\x00",  # not MQTT
        b"\x00\x00",  # packet type 0
        b"\x30\x80\x80\x80\x80\x01",  # a five-byte remaining length
    ],
)
def test_malformed_packets_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        Decoder().feed(data)


@settings(max_examples=2000, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=12), limit=st.integers(min_value=2, max_value=4096))
def test_any_bytes_become_packets_or_a_protocol_error(chunks: list[bytes], limit: int) -> None:
    decoder = Decoder(max_packet_size=limit)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            # bounded memory: never more than one packet (and its header) held back
            assert decoder.buffered <= limit + 5
    except ProtocolError:
        pass


@settings(max_examples=500, deadline=None)
@given(
    prefix=st.sampled_from([b"\x10", b"\x30", b"\x32", b"\x82", b"\xa2", b"\x40", b"\x20", b"\x90"]),
    body=st.binary(max_size=80),
)
def test_well_framed_garbage_of_each_type_never_escapes_as_another_exception(prefix: bytes, body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        Decoder().feed(prefix + bytes((len(body),)) + body if len(body) < 128 else prefix + b"\x00")
