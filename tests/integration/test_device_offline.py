"""Acceptance: the runtime starts offline from its backup, and backs off at a first boot without service.

The agent runs as a real process; retry delays are injected short (``--backoff-initial``), and the
test checks the order and count of attempts in the runtime's log, never how long anything took.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.device_support import Device, dps_config, short_backoff_agent, wait_for
from tests.support import Server, free_port, running, start_server, unique

ATTEMPT = re.compile(r"Provisioning attempt (\d+) failed: .*; retrying in ([0-9.]+) s")


def _enroll(server: Server, registration_id: str) -> str:
    created = server.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id, "--show-keys").json()
    return str(created["attestation"]["symmetricKey"]["primaryKey"])


def _config(tmp_path: Path, server: Server, registration_id: str, key: str) -> Path:
    config = tmp_path / "config.toml"
    endpoint = f"https://localhost:{server.https_port}"
    key_line = f'symmetric_key = {{ value = "{key}" }}'
    config.write_text(dps_config(endpoint, server.id_scope, registration_id, key_line, server.ca))
    return config


@pytest.mark.spec("edge-runtime.md §3.2 (offline start)")
def test_restart_without_service_starts_from_backup(device: Device, tmp_path: Path) -> None:
    registration_id = unique("edge-offline")
    with running(tmp_path / "data") as server:
        config = _config(tmp_path, server, registration_id, _enroll(server, registration_id))
        device.cli_ok("config", "apply", "-c", str(config))
        wait_for(lambda: device.services().get("identity") == "Running", "the identity")

    restarted = device.cli_ok("system", "restart")

    assert restarted.out == "Stopping edgeprov-device...Stopped!\nStarting edgeprov-device...Started!\n"
    wait_for(lambda: device.log().count("Provisioned with backup for device") == 2, "a second start from backup")
    services = device.services()
    assert services["edgeprov-device"] == "Running"
    assert services["identity"] == "Running"
    status = device.status()
    assert status is not None
    assert status.identity_detail == f"restored from backup: {registration_id}"


@pytest.mark.spec("edge-runtime.md §6 (Azure/iotedge#6449, #5888)")
def test_first_boot_without_service_backs_off_then_provisions(device: Device, tmp_path: Path) -> None:
    registration_id = unique("edge-boot")
    data, port, mqtt_port = tmp_path / "data", free_port(), free_port()
    server = start_server(data, port, mqtt_port)
    config = _config(tmp_path, server, registration_id, _enroll(server, registration_id))
    server.stop()

    applied = device.cli_ok("config", "apply", "-c", str(config), "--no-restart")

    assert f"Note: cannot reach https://localhost:{port}" in applied.out
    assert "The runtime will keep trying, with backoff, until the service answers." in applied.out
    with short_backoff_agent(device) as agent:
        wait_for(lambda: len(ATTEMPT.findall(device.log())) >= 4, "four failed attempts")
        assert device.services()["identity"].startswith("Down - attempt ")
        server = start_server(data, port, mqtt_port)
        try:
            wait_for(lambda: device.services().get("identity") == "Running", "provisioning once the service is up")
        finally:
            server.stop()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0

    failures = [(int(n), float(delay)) for n, delay in ATTEMPT.findall(device.log())]
    assert [n for n, _ in failures] == list(range(1, len(failures) + 1))
    assert all(0.025 <= delay <= 0.4 for _, delay in failures)
    assert f"Provisioned: device {registration_id} assigned to hub localhost" in device.log()
    status = device.status()
    assert status is not None
    assert status.state == "stopped"
    assert not device.state.pid_file.exists()
