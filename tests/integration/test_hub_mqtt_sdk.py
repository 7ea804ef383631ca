"""Acceptance: the official device SDKs provision over MQTT, then live on their hub (issue 3).

Three devices of one group enrollment register with the Python ProvisioningDeviceClient over
MQTT; each then runs the whole hub flow with another official client: Python over MQTT, Python
over MQTT-over-WebSocket, and Node over MQTT.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeprov import sas
from tests.support import Server, json_stream, run_driver, run_harness, unique

pytestmark = pytest.mark.sdk

INITIAL_DESIRED = {"interval": 30, "mode": "eco"}


@dataclass(frozen=True)
class Fleet:
    group: str
    group_key: str
    devices: dict[str, str]  # registration id -> derived key


@pytest.fixture(scope="module")
def fleet(server: Server, sdk: Path) -> Fleet:
    group = unique("mqtt-grp")
    server.cli_ok(
        "dps", "enrollment-group", "create", "--enrollment-id", group,
        "--initial-twin-tags", json.dumps({"fleet": group}),
        "--initial-twin-properties", json.dumps(INITIAL_DESIRED),
    )  # fmt: skip
    shown = server.cli_ok("dps", "enrollment-group", "show", "--enrollment-id", group, "--show-keys").json()
    group_key = shown["attestation"]["symmetricKey"]["primaryKey"]
    devices = {f"{group}-{n}": sas.derive_device_key_b64(group_key, f"{group}-{n}") for n in range(3)}

    def provision(registration_id: str) -> dict[str, Any]:
        return run_harness(
            sdk, "provision_py.py", "--host", "localhost", "--ca", str(server.ca), "--scope", server.id_scope,
            "--registration-id", registration_id, "--key", devices[registration_id],
        )  # fmt: skip

    with ThreadPoolExecutor(len(devices)) as pool:  # each registration polls after a fixed 2 s
        reports = list(pool.map(provision, devices))
    for registration_id, report in zip(devices, reports, strict=True):
        assert report["ok"], report
        assert (report["status"], report["assigned_hub"], report["device_id"]) == (
            "assigned", "localhost", registration_id,
        )  # fmt: skip
    return Fleet(group, group_key, devices)


@pytest.mark.spec("dps-protocol.md §3.1")
def test_python_over_websocket_and_node_over_mqtt_provision_too(server: Server, sdk: Path, fleet: Fleet) -> None:
    key = fleet.group_key
    python_ws, node_mqtt = f"{fleet.group}-ws", f"{fleet.group}-node"
    common = ("--host", "localhost", "--ca", str(server.ca), "--scope", server.id_scope)
    reports = [
        run_harness(
            sdk, "provision_py.py", *common, "--registration-id", python_ws, "--group-key", key, "--websockets"
        ),
        run_harness(
            sdk, "provision_node.js", *common, "--port", str(server.mqtt_port), "--transport", "mqtt",
            "--registration-id", node_mqtt, "--group-key", key,
        ),
    ]  # fmt: skip
    for registration_id, report in zip((python_ws, node_mqtt), reports, strict=True):
        assert report["ok"], report
        assert report["device_id"] == registration_id


@pytest.mark.spec("dps-protocol.md §3")
def test_python_client_provisions_a_group_over_mqtt(server: Server, fleet: Fleet) -> None:
    records = server.cli_ok("dps", "registration", "list", "--enrollment-id", fleet.group, "-o", "json").json()
    assert set(fleet.devices) <= {r["registrationId"] for r in records}
    attempts = server.cli_ok("dps", "attempts", "list", "--enrollment-id", fleet.group, "-o", "json").json()
    assert {a["transport"] for a in attempts} == {"mqtt"}


def _monitor(server: Server, device_id: str, since_ms: int) -> list[dict[str, Any]]:
    shown = server.cli_ok(
        "hub", "monitor-events", "--device-id", device_id, "--enqueued-time", str(since_ms),
        "--timeout", "1", "--properties", "all",
    )  # fmt: skip
    return [value["event"] for value in json_stream(shown.out)]


def _run_flow(server: Server, sdk: Path, fleet: Fleet, index: int, script: str, *extra: str) -> None:
    device_id = sorted(fleet.devices)[index]
    common = ("--ca", str(server.ca), "--device-id", device_id, "--key", fleet.devices[device_id], *extra)
    started_ms = int(time.time() * 1000) - 1000
    online = run_driver(
        sdk, script, "--phase", "online", "--hub-connection-string", server.hub_connection_string(), *common,
        env={"REQUESTS_CA_BUNDLE": str(server.ca)},
    )  # fmt: skip
    assert online["ok"], online
    assert online["twin"]["desired"] == {**INITIAL_DESIRED, "$version": 1}
    assert online["desired_patch"]["driverPatch"] in (7, 9)
    assert online["desired_patch"]["$version"] >= 2
    assert online["method"] == {"status": 200, "payload": {"echo": {"x": 1}}}

    twin = server.cli_ok("hub", "device-twin", "show", "--device-id", device_id).json()
    assert twin["properties"]["reported"]["driver"]["phase"] in ("online", "node")
    assert twin["tags"] == {"fleet": fleet.group}
    events = _monitor(server, device_id, started_ms)
    assert [e["payload"] for e in events] == [{"seq": n} for n in range(100)]
    assert [e["properties"]["application"]["seq"] for e in events] == [str(n) for n in range(100)]
    assert all(e["origin"] == device_id for e in events)
    assert events[0]["properties"]["system"]["content-type"] == "application/json"

    device = server.cli_ok("hub", "device-identity", "show", "--device-id", device_id).json()
    assert device["connectionState"] == "Disconnected"
    assert device["lastActivityTime"] > "2000"
    server.cli_ok(
        "hub", "c2d-message", "send", "--device-id", device_id, "--data", "while you were away",
        "--props", "kind=greeting;n=1",
    )  # fmt: skip
    later = run_driver(sdk, script, "--phase", "c2d", *common)
    assert later["ok"], later
    assert later["c2d_received"], later
    assert later["c2d"]["data"] == "while you were away"


@pytest.mark.spec("hub-protocol.md §1")
def test_python_device_client_lives_on_its_hub_over_mqtt(server: Server, sdk: Path, fleet: Fleet) -> None:
    _run_flow(server, sdk, fleet, 0, "device_flow_py.py")


@pytest.mark.spec("hub-protocol.md §1.1")
def test_python_device_client_over_mqtt_websocket(server: Server, sdk: Path, fleet: Fleet) -> None:
    _run_flow(server, sdk, fleet, 1, "device_flow_py.py", "--websockets")


@pytest.mark.spec("hub-protocol.md §1")
def test_node_device_client_over_mqtt(server: Server, sdk: Path, fleet: Fleet) -> None:
    _run_flow(server, sdk, fleet, 2, "device_flow_node.js", "--https-port", str(server.https_port))
