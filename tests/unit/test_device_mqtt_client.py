"""The runtime's MQTT client, packet by packet, against a peer a test plays on a socket pair."""

from __future__ import annotations

import asyncio

import pytest

from edgeprov.device.mqtt_client import ConnectionLost, ConnectionRefused, MqttClient
from edgeprov.mqtt import codec
from edgeprov.mqtt.packets import (
    SUBACK_FAILURE,
    ConnackCode,
    Connect,
    Disconnect,
    PingReq,
    PubAck,
    Publish,
    Subscribe,
)
from tests.mqtt_peer import CONNECT, connected, run, socket_pair


def test_a_refused_connect_raises_with_its_code() -> None:
    async def scenario() -> None:
        async with socket_pair() as ((reader, writer), peer):
            starting = asyncio.create_task(MqttClient.start(reader, writer, CONNECT))
            sent = await peer.expect(Connect)
            assert (sent.client_id, sent.clean_session, sent.keep_alive) == ("dev/$edgeAgent", False, 60)
            peer.send(codec.encode_connack(ConnackCode.NOT_AUTHORIZED))
            with pytest.raises(ConnectionRefused) as refused:
                await starting
            assert refused.value.code is ConnackCode.NOT_AUTHORIZED
            assert str(refused.value) == "CONNACK 5 (not authorized)"
            assert await peer.next() is None, "closed, without a DISCONNECT"

    run(scenario)


def test_anything_but_a_connack_first_is_a_lost_connection() -> None:
    async def scenario() -> None:
        async with socket_pair() as ((reader, writer), peer):
            starting = asyncio.create_task(MqttClient.start(reader, writer, CONNECT))
            await peer.expect(Connect)
            peer.send(codec.PINGRESP)
            with pytest.raises(ConnectionLost, match="answered the CONNECT with PingResp"):
                await starting

    run(scenario)


def test_a_publish_arriving_with_the_connack_is_kept() -> None:
    async def scenario() -> None:
        async with socket_pair() as ((reader, writer), peer):
            starting = asyncio.create_task(MqttClient.start(reader, writer, CONNECT))
            await peer.expect(Connect)
            peer.send(codec.encode_connack(ConnackCode.ACCEPTED, True) + codec.encode_publish("t/1", b"early"))
            client = await starting
            try:
                assert client.session_present
                assert (await client.next_message()).payload == b"early"
            finally:
                await client.close()
            assert isinstance(await peer.next(), Disconnect), "a close says DISCONNECT first"

    run(scenario)


def test_qos1_messages_from_the_hub_are_acknowledged_and_queued() -> None:
    async def scenario() -> None:
        async with connected() as (client, peer):
            peer.send(codec.encode_publish("$iothub/twin/res/200/?$rid=1", b"{}", 1, 7))
            peer.send(codec.encode_publish("$iothub/twin/res/204/?$rid=2", b"", 0))
            assert await peer.expect(PubAck) == PubAck(7)
            first, second = await client.next_message(), await client.next_message()
            assert (first.topic, first.qos, second.qos) == ("$iothub/twin/res/200/?$rid=1", 1, 0)

    run(scenario)


def test_publish_waits_for_its_puback_and_subscribe_returns_the_granted_codes() -> None:
    async def scenario() -> None:
        async with connected() as (client, peer):
            publishing = asyncio.create_task(client.publish("$iothub/twin/GET/?$rid=1", b" "))
            sent = await peer.expect(Publish)
            assert (sent.topic, sent.payload, sent.qos) == ("$iothub/twin/GET/?$rid=1", b" ", 1)
            await asyncio.sleep(0)
            assert not publishing.done(), "QoS 1 returns only once acknowledged"
            assert sent.packet_id is not None
            peer.send(codec.encode_puback(sent.packet_id))
            await publishing

            subscribing = asyncio.create_task(client.subscribe(("a/#", "b/#")))
            asked = await peer.expect(Subscribe)
            assert asked.topics == (("a/#", 1), ("b/#", 1))
            peer.send(codec.encode_suback(asked.packet_id, (1, SUBACK_FAILURE)))
            assert await subscribing == (1, SUBACK_FAILURE)

    run(scenario)


def test_the_hub_closing_fails_every_waiting_call() -> None:
    async def scenario() -> None:
        async with connected() as (client, peer):
            publishing = asyncio.create_task(client.publish("$iothub/twin/GET/?$rid=1", b" "))
            await peer.expect(Publish)
            peer.close()
            with pytest.raises(ConnectionLost, match="the hub closed the connection"):
                await publishing
            for _ in range(2):  # and every call after
                with pytest.raises(ConnectionLost, match="the hub closed the connection"):
                    await client.next_message()
            with pytest.raises(ConnectionLost):
                await client.publish("t", b"", 0)

    run(scenario)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xf0\x00", "protocol error: packet type 15"),
        (codec.encode_connack(ConnackCode.ACCEPTED), "protocol error: a hub does not send Connack"),
        (codec.encode_publish("t", b"", 2, 1), "protocol error: the hub sent a QoS 2 PUBLISH"),
    ],
)
def test_what_a_hub_may_not_send_ends_the_connection(data: bytes, reason: str) -> None:
    async def scenario() -> None:
        async with connected() as (client, peer):
            peer.send(data)
            with pytest.raises(ConnectionLost, match=reason):
                await client.next_message()

    run(scenario)


def test_pings_every_keep_alive_period_and_gives_up_when_a_ping_is_unanswered() -> None:
    async def scenario() -> None:
        quick = Connect("dev", "localhost/dev/?api-version=2021-04-12", "token", False, 1)
        async with connected(quick) as (client, peer):
            await peer.expect(PingReq)
            peer.send(codec.PINGRESP + codec.encode_publish("still/here", b""))
            assert (await client.next_message()).topic == "still/here"
            await peer.expect(PingReq)
            with pytest.raises(ConnectionLost, match=r"no PINGRESP within the keep-alive period \(1 s\)"):
                await client.next_message()

    run(scenario)
