"""The runtime's hub session over MQTT, against the real server on 127.0.0.1 with real TLS.

The device must reach its assigned hub on the cloud's ports, so these tests use the session's
server on 443 and 8883. Agents with short injected retry delays are judged by the count and order
of what their log says, never by how long anything took.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeprov.device.agent import SessionLink
from edgeprov.device.hub_session import MqttHubSession, SessionSettings
from edgeprov.device.modules import EDGE_AGENT, EDGE_MODULES, ModuleIdentities
from edgeprov.device.settings import AgentSettings, DeviceKey
from edgeprov.device.state import AgentStatus, Identity
from edgeprov.device.transport import HttpSettings
from tests.device_support import Device, dps_config, short_backoff_agent, wait_for
from tests.support import Server, ServiceCaller, unique

HUB_CONNECTION = "hub-connection"
RECONNECT = re.compile(r"Hub localhost: (.*); reconnecting in ([0-9.]+) s")


def _configure(server: Server, device: Device, tmp_path: Path, *apply: str) -> tuple[str, Path]:
    """An edge-enabled individual enrollment, its config.toml, applied; the registration id and the file."""
    registration_id = unique("edge-mqtt")
    created = server.cli_ok(
        "dps", "enrollment", "create", "--enrollment-id", registration_id, "--edge-enabled", "--show-keys"
    ).json()
    key = created["attestation"]["symmetricKey"]["primaryKey"]
    config = tmp_path / "config.toml"
    key_line = f'symmetric_key = {{ value = "{key}" }}'
    config.write_text(dps_config("https://localhost", server.id_scope, registration_id, key_line, server.ca))
    device.cli_ok("config", "apply", "-c", str(config), *apply)
    return registration_id, config


@contextlib.contextmanager
def _connected_agent(server: Server, device: Device, tmp_path: Path) -> Iterator[str]:
    """A configured device whose agent (short retry delays) holds its hub session; the device id."""
    device_id, _ = _configure(server, device, tmp_path, "--no-restart")
    with short_backoff_agent(device):
        wait_for(lambda: device.services()[HUB_CONNECTION] == "Running", "the hub session")
        yield device_id


def _reported(hub: ServiceCaller, device_id: str) -> dict[str, Any]:
    response = hub.request("GET", f"/twins/{device_id}/modules/{EDGE_AGENT}")
    assert response.status_code == 200, response.text
    reported: dict[str, Any] = response.json()["properties"]["reported"]
    return reported


def _connection_states(hub: ServiceCaller, device_id: str) -> tuple[str, str]:
    device = hub.request("GET", f"/devices/{device_id}").json()
    module = hub.request("GET", f"/devices/{device_id}/modules/{EDGE_AGENT}").json()
    return device["connectionState"], module["connectionState"]


def _derived(master: bytes, module_id: str, generation_id: str) -> dict[str, str]:
    """aziot-identityd's recipe, written out independently of the runtime's code (spec edge-runtime.md §3.3)."""
    return {
        f"{which}Key": base64.b64encode(
            hmac.new(master, f"{module_id}:{generation_id}:{which}".encode(), hashlib.sha256).digest()
        ).decode()
        for which in ("primary", "secondary")
    }


def _patch_desired(hub: ServiceCaller, device_id: str, desired: dict[str, Any]) -> int:
    response = hub.request(
        "PATCH", f"/twins/{device_id}/modules/{EDGE_AGENT}", {"properties": {"desired": desired}}, {"If-Match": "*"}
    )
    assert response.status_code == 200, response.text
    version: int = response.json()["properties"]["desired"]["$version"]
    return version


@pytest.mark.spec("edge-runtime.md §3.3; hub-protocol.md §1.1, §5.3")
def test_agent_connects_reports_and_follows_desired(
    server: Server, hub: ServiceCaller, device: Device, tmp_path: Path
) -> None:
    device_id, config = _configure(server, device, tmp_path)

    device.wait_healthy()

    assert device.services()[HUB_CONNECTION] == "Running"
    assert _connection_states(hub, device_id) == ("Connected", "Connected")
    master = device.state.master_key.read_bytes()
    assert stat.S_IMODE(device.state.master_key.stat().st_mode) == 0o600
    for module_id in EDGE_MODULES:
        module = hub.request("GET", f"/devices/{device_id}/modules/{module_id}").json()
        assert module["authentication"]["symmetricKey"] == _derived(master, module_id, module["generationId"])
    wait_for(lambda: "lastDesiredStatus" in _reported(hub, device_id), "the runtime's first report")
    reported = _reported(hub, device_id)
    desired_version = hub.request("GET", f"/twins/{device_id}/modules/{EDGE_AGENT}").json()["properties"]["desired"][
        "$version"
    ]
    assert reported["schemaVersion"] == "1.0"
    assert reported["lastDesiredVersion"] == desired_version
    assert reported["lastDesiredStatus"]["code"] == 417
    assert reported["version"]["version"]
    assert reported["runtime"]["platform"]["os"] == "linux"
    agent = reported["systemModules"]["edgeAgent"]
    assert agent["runtimeStatus"] == "running"
    assert agent["lastStartTimeUtc"].endswith("Z")
    assert agent["settings"]["image"] == "mcr.microsoft.com/azureiotedge-agent:1.6"
    assert reported["modules"] == {}, "no module runs: none is reported"

    version = _patch_desired(hub, device_id, {"note": "not a deployment"})
    wait_for(lambda: _reported(hub, device_id)["lastDesiredVersion"] == version, "lastDesiredVersion to follow")
    assert _reported(hub, device_id)["lastDesiredStatus"]["code"] == 417

    deployment = {"schemaVersion": "1.1", "modules": {"sensor": {"type": "docker", "settings": {"image": "s:1"}}}}
    version = _patch_desired(hub, device_id, deployment)
    wait_for(lambda: _reported(hub, device_id)["lastDesiredVersion"] == version, "the deployment's version")
    reported = _reported(hub, device_id)
    assert reported["lastDesiredStatus"]["code"] == 500, "a deployment it does not apply is not reported as applied"
    assert reported["modules"] == {}

    check = device.cli("check", "-c", str(config))
    assert check.code == 0, check.out
    assert "√ host can connect to and perform TLS handshake with iothub MQTT port - OK" in check.out
    assert "√ runtime is connected to its hub over MQTT - OK" in check.out
    log = device.log()
    assert f"Hub session: connected to hub localhost as {device_id} and {device_id}/$edgeAgent" in log
    assert "SharedAccessSignature" not in log
    assert base64.b64encode(master).decode() not in log


@pytest.mark.spec("edge-runtime.md §3.5 (Dynamic: the hub refuses the session)")
def test_disabled_device_is_refused_and_provisioned_again(
    server: Server, hub: ServiceCaller, device: Device, tmp_path: Path
) -> None:
    with _connected_agent(server, device, tmp_path) as device_id:
        body = {"deviceId": device_id, "status": "disabled"}
        assert hub.request("PUT", f"/devices/{device_id}", body, {"If-Match": "*"}).status_code == 200

        refusal = f"hub localhost refused {device_id!r}: CONNACK 5 (not authorized)"
        wait_for(lambda: refusal in device.log(), "the session to be refused")
        # `config apply` provisioned once; the agent provisions again.
        wait_for(lambda: device.log().count("Provisioned: device") >= 2, "provisioning again")
        assert device.services()[HUB_CONNECTION].startswith("Down - ")

        body["status"] = "enabled"
        assert hub.request("PUT", f"/devices/{device_id}", body, {"If-Match": "*"}).status_code == 200
        wait_for(lambda: device.services()[HUB_CONNECTION] == "Running", "the session once the device is enabled")

    log = device.log()
    connected = f"Hub session: connected to hub localhost as {device_id}"
    assert log.index(connected) < log.index(refusal) < log.index("provisioning again in") < log.rindex(connected)
    assert log.index("provisioning again in") < log.rindex("Provisioned: device") < log.rindex(connected)


@pytest.mark.spec("edge-runtime.md §6 (Azure/iotedge#5888): reconnect with backoff")
def test_agent_reconnects_when_the_hub_returns(
    server: Server, hub: ServiceCaller, device: Device, tmp_path: Path
) -> None:
    with _connected_agent(server, device, tmp_path) as device_id:
        server.stop()
        try:
            wait_for(lambda: len(RECONNECT.findall(device.log())) >= 4, "four failed reconnections")
            assert device.services()[HUB_CONNECTION].startswith("Down - cannot reach mqtts://localhost:8883")
        finally:
            server.start_again()
        wait_for(lambda: device.log().count("Hub session: connected") >= 2, "the session to come back")
        assert _connection_states(hub, device_id) == ("Connected", "Connected")

    failures = RECONNECT.findall(device.log())
    assert "ended: " in failures[0][0], "first the connection is lost"
    assert all("cannot reach mqtts://localhost:8883" in why for why, _ in failures[1:])
    assert all(0.025 <= float(delay) <= 0.4 for _, delay in failures)
    assert device.log().count("Provisioned: device") == 1, "only `config apply` provisioned: a network failure does not"


def test_session_renews_its_tokens_by_reconnecting(
    server: Server, hub: ServiceCaller, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    device_id = unique("edge-renew")
    created = hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id, "capabilities": {"iotEdge": True}})
    key = DeviceKey(base64.b64decode(created.json()["authentication"]["symmetricKey"]["primaryKey"]))
    identity = Identity("localhost", device_id, "manual", "2026-01-01T00:00:00.000Z")
    http = HttpSettings(server.ca, 30.0)
    log = logging.getLogger("tests.hub_session")
    status = AgentStatus(1, "running", time.time())
    connected: list[str] = []

    async def three_connections() -> None:
        modules = await ModuleIdentities(http, b"m" * 32).ensure(identity, key, EDGE_MODULES)
        agent = next(m for m in modules if m.module_id == EDGE_AGENT)
        session = MqttHubSession(http, AgentSettings(), log, SessionSettings(token_ttl=2))
        running = asyncio.create_task(session.run(identity, key, agent, SessionLink(lambda: status, connected.append)))
        try:
            while len(connected) < 3:
                if running.done():
                    running.result()  # raises what ended the session
                await asyncio.sleep(0.05)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger=log.name):
        asyncio.run(asyncio.wait_for(three_connections(), 60))

    messages = [record.getMessage() for record in caplog.records]
    assert len(connected) == 3
    assert sum(m.startswith("Renewing the SAS tokens") for m in messages) >= 2
    assert sum(m.startswith("Reported the runtime's state") for m in messages) == 1, "nothing new, nothing sent"
    assert _reported(hub, device_id)["lastDesiredStatus"]["code"] == 417
