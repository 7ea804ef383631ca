"""The MQTT gateway at the packet level: refusals that change nothing, isolation between devices,
sessions, keep-alive, takeover, and the service calls that reach connected devices."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from edgeprov import sas
from edgeprov.mqtt import codec, packets
from edgeprov.mqtt.packets import ConnackCode, Connect, PubAck, Publish, Will
from tests.mqtt_client import RawClient, hub_login
from tests.support import Server, dump_state, free_port, json_stream, running, start_server, unique

BAD = ConnackCode.NOT_AUTHORIZED


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("mqtt") / "data") as server:
        yield server


def _device(server: Server, *flags: str) -> tuple[str, str]:
    device_id = unique("d")
    shown = server.cli_ok("hub", "device-identity", "create", "--device-id", device_id, "--show-keys", *flags).json()
    return device_id, shown["authentication"]["symmetricKey"]["primaryKey"]


def _client(server: Server) -> RawClient:
    return RawClient(server.mqtt_port, server.ca)


def _connected(server: Server, device_id: str, key: str, clean: bool = True, keep_alive: int = 60) -> RawClient:
    client = _client(server)
    connack = client.connect(*hub_login(device_id, key), clean=clean, keep_alive=keep_alive)
    assert connack.code is ConnackCode.ACCEPTED
    return client


def _hub(server: Server, method: str, path: str, body: Any = None) -> Any:
    with server.hub() as hub:
        return hub.request(method, path, body, api_version="2021-04-12")


@pytest.mark.spec("hub-protocol.md §1.1")
def test_bad_connects_are_refused_and_change_nothing(srv: Server) -> None:
    device_id, key = _device(srv)
    other_id, other_key = _device(srv)
    disabled_id, disabled_key = _device(srv, "--status", "disabled")
    wrong_key = sas.generate_key(32)
    client_id, username, password = hub_login(device_id, key)
    cases: list[tuple[tuple[str, str, str], ConnackCode]] = [
        (hub_login(device_id, wrong_key), BAD),
        (hub_login("no-such-device", key), BAD),
        (hub_login(disabled_id, disabled_key), BAD),
        # the user name and client id name one device, the token another
        ((other_id, f"localhost/{other_id}/?api-version=2021-04-12", password), BAD),
        ((client_id, f"otherhub/{device_id}/?api-version=2021-04-12", password), BAD),
        ((other_id, username, password), ConnackCode.IDENTIFIER_REJECTED),
        ((client_id, username, "SharedAccessSignature garbage"), BAD),
        ((client_id, "no-slashes", password), ConnackCode.BAD_USERNAME_OR_PASSWORD),
        ((client_id, username, sas.build_token(f"localhost/devices/{device_id}", sas.decode_key(key), 1000)), BAD),
    ]
    before = dump_state(srv)
    for login, code in cases:
        with _client(srv) as client:
            assert client.connect(*login).code is code, login
            assert client.closed_by_server()
    assert dump_state(srv) == before
    assert other_key != key


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x00",  # not a packet
        codec.encode_publish("devices/x/messages/events/", b"{}"),  # PUBLISH before CONNECT
        b"\x10\xff\xff\xff\x7f",  # a CONNECT announcing 256 MB
        b"\x10\x05\x00\x04MQT",  # a truncated CONNECT body
    ],
)
def test_malformed_packets_close_the_connection_and_change_nothing(srv: Server, data: bytes) -> None:
    before = dump_state(srv)
    with _client(srv) as client:
        client.send(data)
        assert client.closed_by_server()
    assert dump_state(srv) == before


def test_protocol_level_3_is_refused_with_code_1(srv: Server) -> None:
    packet = bytearray(codec.encode_connect(Connect("c", "u", "p")))
    packet[8] = 3
    with _client(srv) as client:
        client.send(bytes(packet))
        assert client.expect(packets.Connack).code is ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION
        assert client.closed_by_server()


def test_qos_2_publish_closes_the_connection(srv: Server) -> None:
    device_id, key = _device(srv)
    with _connected(srv, device_id, key) as client:
        client.send(codec.encode_publish(f"devices/{device_id}/messages/events/", b"x", 2, 1))
        assert client.closed_by_server()


def test_a_device_cannot_touch_another_devices_messages_or_twin(srv: Server) -> None:
    device_id, key = _device(srv)
    victim, _ = _device(srv)
    before = dump_state(srv, ignore=("attempts", "operations", "presence", "sessions"))
    with _connected(srv, device_id, key) as client:
        codes = client.subscribe(
            f"devices/{victim}/messages/devicebound/#",
            f"devices/{victim}/modules/$edgeAgent/inputs/#",
            "#",
            f"devices/{device_id}/messages/devicebound/#",
        )
        assert codes == (0x80, 0x80, 0x80, 1)
        client.publish("$iothub/twin/GET/?$rid=1", b" ")
        client.expect(PubAck)
        mine = client.next_publish()
        assert mine.topic == "$iothub/twin/res/200/?$rid=1"
        client.publish(f"devices/{victim}/messages/events/", b"forged")
        assert client.closed_by_server()
    with _connected(srv, device_id, key) as client:
        client.publish(f"devices/{victim}/modules/$edgeAgent/messages/events/", b"forged")
        assert client.closed_by_server()
    with _connected(srv, device_id, key) as client:
        client.publish("$iothub/twin/PATCH/properties/desired/?$rid=2", b'{"x": 1}')
        assert client.closed_by_server()
    assert dump_state(srv, ignore=("attempts", "operations", "presence", "sessions")) == before


@pytest.mark.spec("hub-protocol.md §1.2")
def test_twin_errors_carry_a_json_body_with_error_code(srv: Server) -> None:
    device_id, key = _device(srv)
    with _connected(srv, device_id, key) as client:
        client.subscribe("$iothub/twin/res/#")
        deep: dict[str, Any] = {}
        node = deep
        for _ in range(12):
            node["n"] = {}
            node = node["n"]
        client.publish("$iothub/twin/PATCH/properties/reported/?$rid=9", json.dumps(deep).encode())
        reply = client.next_publish()
        assert reply.topic == "$iothub/twin/res/400/?$rid=9"
        assert json.loads(reply.payload)["errorCode"] == 400004
        client.publish("$iothub/twin/PATCH/properties/reported/?$rid=10", b'{"fw": "1.0"}')
        reply = client.next_publish()
        assert reply.topic == "$iothub/twin/res/204/?$rid=10&$version=2"
        assert reply.payload == b""


def test_persistent_session_keeps_subscriptions_and_a_new_connection_takes_over(srv: Server) -> None:
    device_id, key = _device(srv)
    with _connected(srv, device_id, key, clean=False) as first:
        first.subscribe("$iothub/twin/PATCH/properties/desired/#")
        with _client(srv) as second:
            connack = second.connect(*hub_login(device_id, key), clean=False)
            assert connack.session_present
            assert first.closed_by_server()
            _hub(srv, "PATCH", f"/twins/{device_id}", {"properties": {"desired": {"rate": 5}}})
            push = second.next_publish()
            assert push.topic == "$iothub/twin/PATCH/properties/desired/?$version=2"
            assert json.loads(push.payload) == {"rate": 5, "$version": 2}
    with _connected(srv, device_id, key, clean=True) as clean:
        assert _hub(srv, "GET", f"/devices/{device_id}").json()["connectionState"] == "Connected"
        assert _hub(srv, "GET", "/statistics/service").json()["connectedDeviceCount"] >= 1
        clean.send(codec.DISCONNECT)
        assert clean.closed_by_server()


@pytest.mark.spec("hub-protocol.md §1.1")
def test_a_connection_lost_without_disconnect_sends_its_will_as_telemetry(srv: Server) -> None:
    device_id, key = _device(srv)
    since = str(int(time.time() * 1000) - 1000)
    will = Will(f"devices/{device_id}/messages/events/reason=lost", b"gone", 1, False)
    client = _client(srv)
    client_id, username, password = hub_login(device_id, key)
    client.send(codec.encode_connect(Connect(client_id, username, password, True, 60, will)))
    assert client.expect(packets.Connack).code is ConnackCode.ACCEPTED
    client.send(b"\x33" + codec.encode_publish(f"devices/{device_id}/messages/events/", b"kept", 1, 1)[1:])  # RETAIN
    client.expect(PubAck)
    client.sock.close()  # no DISCONNECT
    shown = srv.cli_ok(
        "hub", "monitor-events", "--device-id", device_id, "--enqueued-time", since, "--timeout", "2", "-p", "all"
    )
    retained, event = [value["event"] for value in json_stream(shown.out)]
    assert retained["properties"]["application"] == {"mqtt-retain": "true"}
    assert event["payload"] == "gone"
    assert event["properties"]["application"] == {"reason": "lost", "iothub-MessageType": "Will"}


def test_disabling_or_deleting_an_identity_closes_its_connections(srv: Server) -> None:
    device_id, key = _device(srv, "--edge-enabled")
    module = _hub(srv, "GET", f"/devices/{device_id}/modules/$edgeHub").json()
    module_key = module["authentication"]["symmetricKey"]["primaryKey"]
    with _connected(srv, device_id, key) as device, _client(srv) as edge_hub:
        assert edge_hub.connect(*hub_login(device_id, module_key, "$edgeHub")).code is ConnackCode.ACCEPTED
        assert _hub(srv, "DELETE", f"/devices/{device_id}/modules/$edgeHub").status_code == 204
        assert edge_hub.closed_by_server()
        srv.cli_ok("hub", "device-identity", "delete", "--device-id", device_id)
        assert device.closed_by_server()


def test_keep_alive_is_enforced(srv: Server) -> None:
    device_id, key = _device(srv)
    with _connected(srv, device_id, key, keep_alive=1) as client:
        assert client.closed_by_server()


def test_c2d_is_kept_for_an_offline_device_up_to_the_limit(srv: Server) -> None:
    device_id, key = _device(srv)
    for n in range(50):
        srv.cli_ok("hub", "c2d-message", "send", "--device-id", device_id, "--data", f"m{n}", "--props", f"n={n}")
    refused = srv.cli("hub", "c2d-message", "send", "--device-id", device_id, "--data", "one too many")
    assert refused.code == 1
    assert "403002" in refused.err
    with _connected(srv, device_id, key) as client:
        client.subscribe(f"devices/{device_id}/messages/devicebound/#")
        received = [client.next_publish() for _ in range(50)]
        assert [p.payload for p in received] == [f"m{n}".encode() for n in range(50)]
        assert received[0].qos == 1
        assert received[0].topic.startswith(f"devices/{device_id}/messages/devicebound/%24.mid=")
        for packet in received:
            assert packet.packet_id is not None
            client.send(codec.encode_puback(packet.packet_id))
        client.send(codec.PINGREQ)
        client.expect(packets.PingResp)
    purged = _hub(srv, "DELETE", f"/devices/{device_id}/commands").json()
    assert purged["totalMessagesPurged"] == 0


@pytest.mark.spec("hub-protocol.md §3.2")
def test_direct_methods_offline_timeout_and_answer(srv: Server) -> None:
    device_id, key = _device(srv)
    call = {"methodName": "reboot", "payload": {"delay": 1}, "responseTimeoutInSeconds": 5}
    offline = _hub(srv, "POST", f"/twins/{device_id}/methods", call)
    assert (offline.status_code, offline.json()["errorCode"]) == (404, 404103)
    with _connected(srv, device_id, key) as client:
        client.subscribe("$iothub/methods/POST/#")
        timed_out = _hub(srv, "POST", f"/twins/{device_id}/methods", call)
        assert (timed_out.status_code, timed_out.json()["errorCode"]) == (504, 504101)
        request = client.next_publish()
        assert request.topic.startswith("$iothub/methods/POST/reboot/?$rid=")
        worker = threading.Thread(target=_answering, args=(client, 200, b'{"rebooting": true}'))
        worker.start()
        shown = srv.cli_ok(
            "hub", "invoke-device-method", "--device-id", device_id, "--method-name", "reboot",
            "--method-payload", '{"delay": 2}', "--timeout", "30",
        )  # fmt: skip
        worker.join()
        assert shown.json() == {"status": 200, "payload": {"rebooting": True}}


def _answering(client: RawClient, status: int, payload: bytes) -> Publish:
    request = client.next_publish()
    rid = request.topic.split("$rid=", 1)[1]
    client.publish(f"$iothub/methods/res/{status}/?$rid={rid}", payload)
    return request


def test_module_identity_connects_and_answers_its_methods(srv: Server) -> None:
    device_id, _ = _device(srv, "--edge-enabled")
    module = _hub(srv, "GET", f"/devices/{device_id}/modules/$edgeAgent").json()
    key = module["authentication"]["symmetricKey"]["primaryKey"]
    with RawClient(srv.mqtt_port, srv.ca) as client:
        assert client.connect(*hub_login(device_id, key, "$edgeAgent")).code is ConnackCode.ACCEPTED
        assert client.subscribe("$iothub/methods/POST/#", f"devices/{device_id}/messages/devicebound/#") == (1, 0x80)
        answered: list[Publish] = []
        worker = threading.Thread(target=lambda: answered.append(_answering(client, 201, b'{"ok": true}')))
        worker.start()
        result = _hub(
            srv, "POST", f"/twins/{device_id}/modules/$edgeAgent/methods", {"methodName": "ping", "payload": None}
        )
        worker.join()
        assert result.json() == {"status": 201, "payload": {"ok": True}}


@pytest.mark.spec("dps-protocol.md §3.2")
def test_provisioning_over_mqtt_reply_topics(srv: Server) -> None:
    registration_id = unique("reg")
    created = srv.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id, "--show-keys").json()
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    token = sas.token_for(f"{srv.id_scope}/registrations/{registration_id}", key)
    username = f"{srv.id_scope}/registrations/{registration_id}/api-version=2019-03-31&ClientVersion=x"
    with _client(srv) as client:
        assert client.connect(registration_id, username, token).code is ConnackCode.ACCEPTED
        client.subscribe("$dps/registrations/res/#")
        client.publish("$dps/registrations/PUT/iotdps-register/?$rid=a%20b", b'{"registrationId": null}', qos=0)
        accepted = client.next_publish()
        assert accepted.topic == "$dps/registrations/res/202/?$rid=a%20b&retry-after=1"
        body = json.loads(accepted.payload)
        assert body["status"] == "assigning"
        operation = body["operationId"]
        client.publish(f"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=7&operationId={operation}", b" ")
        client.expect(PubAck)
        done = client.next_publish()
        assert done.topic == "$dps/registrations/res/200/?$rid=7"
        state = json.loads(done.payload)["registrationState"]
        assert (state["status"], state["assignedHub"], state["deviceId"]) == ("assigned", "localhost", registration_id)


def test_provisioning_over_mqtt_refuses_a_wrong_key_with_the_https_outcome(srv: Server) -> None:
    registration_id = unique("reg")
    srv.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id)
    token = sas.token_for(f"{srv.id_scope}/registrations/{registration_id}", sas.generate_key(32))
    before = dump_state(srv)
    with _client(srv) as client:
        username = f"{srv.id_scope}/registrations/{registration_id}/api-version=2019-03-31&ClientVersion=x"
        assert client.connect(registration_id, username, token).code is ConnackCode.ACCEPTED
        assert client.subscribe("$dps/registrations/res/#") == (1,)
        client.publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=r1", json.dumps({"registrationId": registration_id}).encode()
        )
        client.expect(PubAck)
        reply = client.next_publish()
        assert reply.topic == "$dps/registrations/res/401/?$rid=r1"
        assert json.loads(reply.payload)["errorCode"] == 401002
    assert dump_state(srv) == before
    attempts = srv.cli_ok("dps", "attempts", "list", "--registration-id", registration_id, "-o", "json").json()
    assert [(a["outcome"], a["transport"]) for a in attempts] == [("refused", "mqtt")]


def test_workers_deliver_to_a_device_connected_to_another(tmp_path: Path) -> None:
    with running(tmp_path / "data", "--workers", "2") as server:
        device_id, key = _device(server)
        for attempt in range(4):  # connections land on either worker; so do the service calls
            with _connected(server, device_id, key) as client:
                client.subscribe("$iothub/methods/POST/#", "$iothub/twin/PATCH/properties/desired/#",
                                 f"devices/{device_id}/messages/devicebound/#")  # fmt: skip
                for _ in range(3):
                    _hub(server, "PATCH", f"/twins/{device_id}", {"properties": {"desired": {"n": attempt}}})
                    assert json.loads(client.next_publish().payload)["n"] == attempt
                server.cli_ok("hub", "c2d-message", "send", "--device-id", device_id, "--data", f"c{attempt}")
                c2d = client.next_publish()
                assert c2d.payload == f"c{attempt}".encode()
                assert c2d.packet_id is not None
                client.send(codec.encode_puback(c2d.packet_id))
                worker = threading.Thread(target=_answering, args=(client, 200, b'"pong"'))
                worker.start()
                answer = _hub(server, "POST", f"/twins/{device_id}/methods", {"methodName": "ping"})
                worker.join()
                assert answer.json() == {"status": 200, "payload": "pong"}
        previous = _connected(server, device_id, key)
        for _ in range(6):  # each new connection lands on either worker and takes over the client id
            current = _connected(server, device_id, key)
            assert previous.closed_by_server()
            previous.sock.close()
            previous = current
        disabled = server.cli_ok("hub", "device-identity", "update", "--device-id", device_id, "--status", "disabled")
        assert disabled.json()["status"] == "disabled"
        assert previous.closed_by_server()  # whichever worker holds it
        previous.sock.close()


def test_an_mqtt_port_that_cannot_be_bound_names_the_flag(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError):
            start_server(tmp_path / "data", free_port(), port)
    assert "--mqtt-port" in (tmp_path / "data.log").read_text()


@pytest.mark.spec("hub-protocol.md §1.1")
def test_mqtt_over_websocket_needs_the_mqtt_subprotocol(srv: Server) -> None:
    device_id, key = _device(srv)
    context = ssl.create_default_context(cafile=str(srv.ca))
    url = f"wss://localhost:{srv.https_port}/$iothub/websocket"
    with ws_connect(url, ssl=context, subprotocols=[Subprotocol("mqtt")]) as ws:
        assert ws.subprotocol == "mqtt"
        ws.send(codec.encode_connect(Connect(*hub_login(device_id, key))))
        frame = ws.recv(timeout=10)
        assert isinstance(frame, bytes)
        connack = codec.Decoder().feed(frame)
        assert connack == [packets.Connack(ConnackCode.ACCEPTED)]
    with pytest.raises(InvalidStatus), ws_connect(url, ssl=context):
        pass


@pytest.mark.spec("hub-protocol.md §4")
def test_queries_see_who_is_connected(srv: Server) -> None:
    device_id, key = _device(srv, "--edge-enabled")
    query = {"query": f"SELECT deviceId, connectionState FROM devices WHERE deviceId = '{device_id}'"}
    assert _hub(srv, "POST", "/devices/query", query).json() == [
        {"deviceId": device_id, "connectionState": "Disconnected"}
    ]
    with _connected(srv, device_id, key):
        rows = _hub(srv, "POST", "/devices/query", query).json()
        assert rows == [{"deviceId": device_id, "connectionState": "Connected"}]
        modules = {"query": f"SELECT moduleId, connectionState FROM devices.modules WHERE deviceId = '{device_id}'"}
        assert {row["connectionState"] for row in _hub(srv, "POST", "/devices/query", modules).json()} == {
            "Disconnected"
        }, "a module is connected only when it connects itself"
