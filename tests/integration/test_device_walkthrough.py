"""Acceptance: the symmetric-key "provision at scale" walkthrough, with our device runtime, end to end.

The runtime provisions through the real server on 127.0.0.1 with real TLS (trusting the server's
ca.pem through ``trust_bundle_cert``), then creates its module identities in the hub.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from tests.device_support import Device, dps_config, wait_for
from tests.support import Server, attempts, running, unique

ENDPOINT = "https://localhost:{port}"


def _group_device(server: Server, prefix: str) -> tuple[str, str, str]:
    """An edge-enabled group with tags, a registration id in it, and its derived key (computed offline)."""
    group, registration_id = unique(prefix), unique(f"{prefix}-edge")
    server.cli_ok(
        "dps", "enrollment-group", "create", "--enrollment-id", group, "--edge-enabled",
        "--initial-twin-tags", '{"environment":"test"}',
    )  # fmt: skip
    shown = server.cli_ok("dps", "enrollment-group", "show", "--enrollment-id", group, "--show-keys").json()
    group_key = shown["attestation"]["symmetricKey"]["primaryKey"]
    args = ("dps", "compute-device-key", "--key", group_key, "--registration-id", registration_id)
    return group, registration_id, server.cli_ok(*args).out.strip()


def _assert_in_hub(server: Server, registration_id: str) -> None:
    twin = server.cli_ok("hub", "device-twin", "show", "--device-id", registration_id).json()
    assert twin["tags"] == {"environment": "test"}
    assert twin["capabilities"] == {"iotEdge": True}
    modules = server.hub().request("GET", f"/devices/{registration_id}/modules").json()
    assert sorted(m["moduleId"] for m in modules) == ["$edgeAgent", "$edgeHub"]


def _assert_group_lists(server: Server, group: str, registration_id: str) -> None:
    records = server.cli_ok("dps", "registration", "list", "--enrollment-id", group, "-o", "json").json()
    assert [(r["registrationId"], r["status"]) for r in records] == [(registration_id, "assigned")]


def _assert_runtime_answers(device: Device, config: Path) -> None:
    device.wait_healthy()
    status = device.cli_ok("system", "status").out
    assert status.startswith("System services:\n    edgeprov-device         Running\n")
    assert "Use 'edgeprov device check' to diagnose connectivity and configuration issues." in status
    listing = device.cli_ok("list").out.splitlines()
    assert listing[0].split() == ["NAME", "STATUS", "DESCRIPTION", "Config"]
    assert listing[1].split()[:2] == ["edgeAgent", "running"]
    assert listing[1].endswith("mcr.microsoft.com/azureiotedge-agent:1.6")
    check = device.cli("check", "-c", str(config))
    assert check.code == 0, check.out
    assert "√ host can connect to and perform TLS handshake with DPS endpoint - OK" in check.out
    assert "√ device key file is present with safe permissions - OK" in check.out
    assert "9 check(s) succeeded." in check.out


@pytest.mark.spec("edge-runtime.md §1.2, §2.1, §4")
def test_group_enrollment_walkthrough(server: Server, device: Device, tmp_path: Path) -> None:
    group, registration_id, key = _group_device(server, "fleet")
    config = tmp_path / "config.toml"
    endpoint = ENDPOINT.format(port=server.https_port)
    config.write_text(
        dps_config(endpoint, server.id_scope, registration_id, f'symmetric_key = {{ value = "{key}" }}', server.ca)
    )

    applied = device.cli_ok("config", "apply", "-c", str(config))

    assert f"Note: Symmetric key will be written to {device.state.key_file}" in applied.out
    assert f"Provisioned: device {registration_id} is assigned to hub localhost." in applied.out
    assert "Starting edgeprov-device...Started!\nDone.\n" in applied.out
    assert device.state.key_file.read_bytes() == base64.b64decode(key)
    assert stat.S_IMODE(device.state.key_file.stat().st_mode) == 0o600
    assert key not in device.state.applied_config.read_text()
    assert key not in device.log() + applied.out + applied.err
    _assert_runtime_answers(device, config)
    _assert_in_hub(server, registration_id)
    _assert_group_lists(server, group, registration_id)


@pytest.mark.spec("edge-runtime.md §1.2 (symmetric_key uri)")
def test_individual_enrollment_with_key_file(server: Server, device: Device, tmp_path: Path) -> None:
    registration_id = unique("edge-ind")
    created = server.cli_ok(
        "dps", "enrollment", "create", "--enrollment-id", registration_id, "--edge-enabled",
        "--initial-twin-tags", '{"environment":"test"}', "--show-keys",
    ).json()  # fmt: skip
    key_file = tmp_path / "secrets" / "device-id"
    key_file.parent.mkdir()
    key_file.write_bytes(base64.b64decode(created["attestation"]["symmetricKey"]["primaryKey"]))
    config = tmp_path / "config.toml"
    key_line = f'symmetric_key = {{ uri = "{key_file.as_uri()}" }}'
    config.write_text(
        dps_config(ENDPOINT.format(port=server.https_port), server.id_scope, registration_id, key_line, server.ca)
    )

    applied = device.cli_ok("config", "apply", "-c", str(config))

    assert f"Provisioned: device {registration_id} is assigned to hub localhost." in applied.out
    assert device.state.key_file.read_bytes() == key_file.read_bytes()
    _assert_runtime_answers(device, config)
    _assert_in_hub(server, registration_id)
    record = server.cli_ok("dps", "registration", "show", "--registration-id", registration_id).json()
    assert record["status"] == "assigned"


@pytest.mark.spec("edge-runtime.md §1.5, §1.6, §2.2")
def test_legacy_config_yaml_imported_then_applied(server: Server, device: Device, tmp_path: Path) -> None:
    group, registration_id, key = _group_device(server, "legacy")
    legacy = tmp_path / "config.yaml"
    legacy.write_text(
        f"""provisioning:
  source: "dps"
  global_endpoint: "https://localhost:{server.https_port}"
  scope_id: "{server.id_scope}"
  attestation:
    method: "symmetric_key"
    registration_id: "{registration_id}"
    symmetric_key: "{key.rstrip("=")}"
  always_reprovision_on_startup: true
  dynamic_reprovisioning: false
agent:
  name: "edgeAgent"
  type: "docker"
  env: {{}}
  config:
    image: "mcr.microsoft.com/azureiotedge-agent:1.1"
    auth: {{}}
hostname: "{registration_id}"
listen:
  management_uri: "fd://iotedge.mgmt.socket"
  workload_uri: "fd://iotedge.socket"
certificates:
  trusted_ca_certs: "{server.ca}"
"""
    )
    config = tmp_path / "config.toml"

    imported = device.cli_ok("config", "import", "-c", str(legacy), "-o", str(config))

    assert f"The configuration has been written to {config}" in imported.out
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert 'auto_reprovisioning_mode = "AlwaysOnStartup"' in text
    assert f'id_scope = "{server.id_scope}"' in text
    assert 'management_uri = "fd://aziot-edged.mgmt.socket"' in text
    again = device.cli("config", "import", "-c", str(legacy), "-o", str(config))
    assert again.code == 1
    assert f"File {config} already exists. Azure IoT Edge has already been configured." in again.err
    device.cli_ok("config", "import", "-c", str(legacy), "-o", str(config), "--force")

    applied = device.cli_ok("config", "apply", "-c", str(config))

    assert f"Provisioned: device {registration_id} is assigned to hub localhost." in applied.out
    device.wait_healthy()
    listing = device.cli_ok("list").out
    assert "mcr.microsoft.com/azureiotedge-agent:1.1" in listing
    _assert_in_hub(server, registration_id)
    _assert_group_lists(server, group, registration_id)
    assert "auto_reprovisioning_mode is AlwaysOnStartup: provisioning again" in device.log()


@pytest.mark.spec("edge-runtime.md §3.2 (Azure/iotedge#7013)")
def test_changed_id_scope_provisions_again_unchanged_does_not(server: Server, device: Device, tmp_path: Path) -> None:
    registration_id = unique("edge-move")
    key = server.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id, "--show-keys").json()[
        "attestation"
    ]["symmetricKey"]["primaryKey"]
    key_line = f'symmetric_key = {{ value = "{key}" }}'
    config = tmp_path / "config.toml"
    config.write_text(
        dps_config(ENDPOINT.format(port=server.https_port), server.id_scope, registration_id, key_line, server.ca)
    )
    device.cli_ok("config", "apply", "-c", str(config), "--no-restart")
    before = attempts(server)

    unchanged = device.cli_ok("config", "apply", "-c", str(config), "--no-restart")

    assert "Provisioning settings unchanged since the last successful run" in unchanged.out
    assert attempts(server) == before
    with running(tmp_path / "other") as other:
        other.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id, "--primary-key", key)
        endpoint = ENDPOINT.format(port=other.https_port)
        config.write_text(dps_config(endpoint, other.id_scope, registration_id, key_line, other.ca))

        moved = device.cli_ok("config", "apply", "-c", str(config), "--no-restart")

        assert (
            "Provisioning settings changed since the last successful run: "
            f"endpoint https://localhost -> {endpoint}; ID scope {server.id_scope} -> {other.id_scope}. "
            "Provisioning again."
        ) in moved.out
        assert f"Provisioned: device {registration_id} is assigned to hub localhost." in moved.out
        assert other.cli_ok("dps", "registration", "show", "--registration-id", registration_id).json()["status"] == (
            "assigned"
        )
    assert key not in moved.out


def test_reprovision_command_goes_to_the_service(server: Server, device: Device, tmp_path: Path) -> None:
    registration_id = unique("edge-re")
    key = server.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id, "--show-keys").json()[
        "attestation"
    ]["symmetricKey"]["primaryKey"]
    config = tmp_path / "config.toml"
    key_line = f'symmetric_key = {{ value = "{key}" }}'
    config.write_text(
        dps_config(ENDPOINT.format(port=server.https_port), server.id_scope, registration_id, key_line, server.ca)
    )
    device.cli_ok("config", "apply", "-c", str(config), "--no-restart")
    before = attempts(server)

    result = device.cli_ok("system", "reprovision")

    assert "Successfully reprovisioned with IoT Hub." in result.out
    assert attempts(server) == before + 1


def test_check_reports_json_and_fails_before_apply(server: Server, device: Device, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    key_line = f'symmetric_key = {{ value = "{base64.b64encode(bytes(32)).decode()}" }}'
    config.write_text(
        dps_config(ENDPOINT.format(port=server.https_port), server.id_scope, "never-applied", key_line, server.ca)
    )

    result = device.cli("check", "-c", str(config), "-o", "json")

    assert result.code == 1
    report = json.loads(result.out)
    assert report["checks"]["config-well-formed"]["result"] == {"result": "ok", "details": []}
    assert report["checks"]["config-up-to-date"]["result"]["result"] == "warning"
    assert report["checks"]["key-file"]["result"]["result"] == "error"
    assert report["checks"]["host-connect-dps-endpoint"]["result"]["result"] == "ok"
    assert report["checks"]["host-local-time"]["result"]["result"] == "ok"
    for skipped in ("host-connect-iothub-https", "host-connect-iothub-mqtt", "hub-session-connected"):
        assert report["checks"][skipped]["result"]["result"] == "skipped"
    assert "now" in report["additional_info"]
    text = device.cli("check", "-c", str(config))
    assert "× device key file is present with safe permissions - Error" in text.out  # noqa: RUF001 - the symbol iotedge prints
    assert "check(s) raised errors. Re-run with --verbose for more details." in text.out


def test_refusal_is_printed_with_the_service_reason(server: Server, device: Device, tmp_path: Path) -> None:
    group, registration_id, _ = _group_device(server, "wrongkey")
    shown = server.cli_ok("dps", "enrollment-group", "show", "--enrollment-id", group, "--show-keys").json()
    group_key = shown["attestation"]["symmetricKey"]["primaryKey"]
    config = tmp_path / "config.toml"
    key_line = f'symmetric_key = {{ value = "{group_key}" }}'
    config.write_text(
        dps_config(ENDPOINT.format(port=server.https_port), server.id_scope, registration_id, key_line, server.ca)
    )

    result = device.cli("config", "apply", "-c", str(config), "--no-restart")

    assert result.code == 1
    assert result.err.startswith(
        "error: the provisioning service refused the registration (HTTP 401, errorCode 401002)"
    )
    assert "derived key" in result.err
    assert group_key not in result.out + result.err + device.log()


@pytest.mark.spec("edge-runtime.md §3.5 (OnErrorOnly: the identity is refused)")
def test_device_deleted_from_hub_is_provisioned_again(server: Server, device: Device, tmp_path: Path) -> None:
    registration_id = unique("edge-gone")
    key = server.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id, "--show-keys").json()[
        "attestation"
    ]["symmetricKey"]["primaryKey"]
    config = tmp_path / "config.toml"
    key_line = f'symmetric_key = {{ value = "{key}" }}'
    text = dps_config(ENDPOINT.format(port=server.https_port), server.id_scope, registration_id, key_line, server.ca)
    config.write_text('auto_reprovisioning_mode = "OnErrorOnly"\n' + text)
    device.cli_ok("config", "apply", "-c", str(config))
    device.wait_healthy()
    server.cli_ok("hub", "device-identity", "delete", "--device-id", registration_id)

    device.cli_ok("system", "restart")

    wait_for(lambda: "provisioning again in" in device.log(), "the hub's refusal to lead to provisioning")
    device.wait_healthy()
    assert server.cli_ok("hub", "device-identity", "show", "--device-id", registration_id).json()["deviceId"] == (
        registration_id
    )
    log = device.log()
    assert log.index("Provisioned with backup for device") < log.index("provisioning again in")
