"""Acceptance: the official SDK clients provision and manage enrollments against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeprov import sas
from tests.support import Server, run_harness, unique

pytestmark = pytest.mark.sdk


def _node_provision(sdk: Path, server: Server, registration_id: str, key: str) -> dict[str, object]:
    return run_harness(
        sdk,
        "provision_node.js",
        "--transport",
        "http",
        "--host",
        "localhost",
        "--port",
        str(server.https_port),
        "--ca",
        str(server.ca),
        "--scope",
        server.id_scope,
        "--registration-id",
        registration_id,
        "--key",
        key,
    )


def test_node_http_client_provisions_individual_and_group_devices(server: Server, sdk: Path) -> None:
    group = unique("grp")
    tags = json.dumps({"environment": "test", "fleet": group})
    server.cli_ok(
        "dps",
        "enrollment-group",
        "create",
        "--enrollment-id",
        group,
        "--edge-enabled",
        "--initial-twin-tags",
        tags,
        "--initial-twin-properties",
        '{"interval": 30}',
    )
    individual = unique("ind")
    created = server.cli_ok(
        "dps", "enrollment", "create", "--enrollment-id", individual, "--initial-twin-tags", tags, "--show-keys"
    ).json()
    individual_key = created["attestation"]["symmetricKey"]["primaryKey"]
    group_key = server.cli_ok("dps", "enrollment-group", "show", "--enrollment-id", group, "--show-keys").json()[
        "attestation"
    ]["symmetricKey"]["primaryKey"]

    devices = {individual: individual_key}
    for n in range(3):
        registration_id = f"{group}-dev-{n}"
        devices[registration_id] = sas.derive_device_key_b64(group_key, registration_id)
    for registration_id, key in devices.items():
        report = _node_provision(sdk, server, registration_id, key)
        assert report["ok"], report
        assert report["assigned_hub"] == "localhost"
        assert report["device_id"] == registration_id

    for registration_id in devices:
        twin = server.cli_ok("hub", "device-twin", "show", "--device-id", registration_id).json()
        assert twin["tags"] == {"environment": "test", "fleet": group}
        record = server.cli_ok("dps", "registration", "show", "--registration-id", registration_id).json()
        assert record["status"] == "assigned"
        assert record["substatus"] == "initialAssignment"
    records = server.cli_ok("dps", "registration", "list", "--enrollment-id", group, "-o", "json").json()
    assert sorted(r["registrationId"] for r in records) == sorted(d for d in devices if d != individual)
    assert all(r["status"] == "assigned" for r in records)
    device = server.cli_ok("hub", "device-identity", "show", "--device-id", f"{group}-dev-0").json()
    assert device["capabilities"]["iotEdge"] is True
    assert "symmetricKey" not in device["authentication"]


def test_python_service_client_creates_and_reads_enrollments(server: Server, sdk: Path) -> None:
    key = server.dps_connection_string.split("SharedAccessKey=")[1]
    group, individual = unique("svc-grp"), unique("svc-ind")
    report = run_harness(
        sdk,
        "dps_service_py.py",
        "--host",
        "localhost",
        "--port",
        str(server.https_port),
        "--ca",
        str(server.ca),
        "--key",
        key,
        "--group-id",
        group,
        "--registration-id",
        individual,
    )
    assert report["ok"], report
    assert report["get_group"]["enrollment_group_id"] == group
    assert report["get_group"]["initial_twin"]["tags"] == {"environment": "test"}
    assert report["individual"]["capabilities"]["iot_edge"] is True
    shown = server.cli_ok("dps", "enrollment", "show", "--enrollment-id", individual).json()
    assert shown["initialTwin"]["tags"] == {"environment": "test"}
    assert shown["capabilities"] == {"iotEdge": True}
