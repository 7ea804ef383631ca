"""Acceptance: the official Python service SDK (``azure-iot-hub``) manages the hub against a real server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, run_driver, run_harness, unique

pytestmark = pytest.mark.sdk


def _drive(sdk: Path, server: Server, scenario: str, prefix: str) -> dict[str, Any]:
    report = run_driver(
        sdk,
        "hub_service_py.py",
        scenario,
        "--connection-string",
        server.hub_connection_string(),
        "--ca",
        str(server.ca),
        "--prefix",
        prefix,
    )
    assert report["ok"], report
    return report


def test_shared_harness_creates_reads_updates_twin_and_deletes_an_edge_device(server: Server, sdk: Path) -> None:
    device_id = unique("harness")
    key = server.hub_connection_string().split("SharedAccessKey=")[1]
    report = run_harness(
        sdk,
        "hub_py.py",
        "--host",
        "localhost",
        "--port",
        str(server.https_port),
        "--ca",
        str(server.ca),
        "--key",
        key,
        "--device-id",
        device_id,
        "--edge",
        "--delete",
    )
    assert report["ok"], report
    assert report["created"]["capabilities"] == {"iot_edge": True}
    assert report["get_device"]["generation_id"] == report["created"]["generation_id"]
    assert report["update_twin"]["tags"] == {"environment": "test"}
    assert report["get_twin"]["properties"]["desired"]["harness"] == 1
    assert report["deleted"] is True
    assert server.cli("hub", "device-identity", "show", "-d", device_id).code == 1


@pytest.mark.spec("hub-protocol.md §3.2")
def test_registry_manager_manages_devices_twins_modules_and_queries_across_pages(server: Server, sdk: Path) -> None:
    prefix = unique("reg")
    report = _drive(sdk, server, "registry", prefix)
    ids = [f"{prefix}-{n:02d}" for n in range(7)]

    created = report["created"]
    assert [c["device_id"] for c in created] == ids
    for device in created:
        for key in device["authentication"]["symmetric_key"].values():
            assert len(base64.b64decode(key)) == 32  # generated when the SDK sent none
    assert created[0]["device_scope"].startswith(f"ms-azure-iot-edge://{ids[0]}-")
    assert {m["module_id"]: bool(m["generation_id"]) for m in report["edge_modules"]} == {
        "$edgeAgent": True,
        "$edgeHub": True,
    }
    assert report["create_again_status"] == 409
    assert report["updated"]["status"] == "disabled"
    assert report["updated"]["status_reason"] == "maintenance"
    assert report["stale_update_status"] == 412
    assert report["stale_twin_status"] == 412
    assert report["replaced"]["tags"] == {"fleet": prefix, "n": 99, "replaced": True}
    assert "interval" not in report["replaced"]["properties"]["desired"]
    assert report["twin"]["properties"]["desired"]["interval"] == 3

    pages = report["pages"]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert [bool(p["continuation"]) for p in pages] == [True, True, False]
    assert {p["type"] for p in pages} == {"twin"}
    assert [i["device_id"] for p in pages for i in p["items"]] == ids
    assert [i["device_id"] for i in report["projection"][0]["items"]] == [ids[3], ids[4]]
    assert report["projection"][0]["type"] == "raw"
    assert report["count"][0]["type"] == "raw"
    assert report["bad_query"]["status"] == 400
    assert "at position 28" in report["bad_query"]["body"]["Message"]

    assert report["module"]["generation_id"]
    assert report["module_updated"]["managed_by"] == "IotEdge"
    assert report["module_twin"]["properties"]["desired"]["a"] == 1
    assert [i["module_id"] for i in report["module_pages"][0]["items"]] == ["$edgeAgent", "$edgeHub", "sensor"]
    assert report["statistics"]["disabled_device_count"] >= 1
    assert set(ids) <= set(report["listed"])

    assert report["bulk"] == {"is_successful": True, "errors": [], "warnings": []}
    conflict = report["bulk_conflict"]
    assert conflict["is_successful"] is False
    assert [(e["device_id"], e["error_code"]) for e in conflict["errors"]] == [(ids[1], "DeviceAlreadyExists")]
    assert report["bulk_conflict_stored"] == 404  # the batch is applied whole or not at all
    assert report["bulk_delete"]["is_successful"] is True
    assert report["deleted_status"] == 404


@pytest.mark.spec("hub-protocol.md §3.2")
def test_configuration_manager_creates_lists_updates_and_applies_deployments(server: Server, sdk: Path) -> None:
    prefix = unique("cfg")
    report = _drive(sdk, server, "configurations", prefix)
    config_id = f"{prefix}-deploy"

    created = report["created"]
    assert created["id"] == config_id
    assert created["priority"] == 10
    assert created["etag"]
    assert created["system_metrics"]["results"] == {
        "targetedCount": 1,
        "appliedCount": 0,
        "reportedSuccessfulCount": 0,
        "reportedFailedCount": 0,
    }
    assert created["system_metrics"]["queries"]["Targeted"] == (
        f"select deviceId from devices where capabilities.iotEdge = true and (tags.deploy = '{prefix}')"
    )
    assert created["metrics"]["results"] == {"tagged": 1}
    assert report["create_again_status"] == 409
    assert report["got"]["content"]["modules_content"]["$edgeAgent"]["properties.desired"]["schemaVersion"] == "1.1"
    assert config_id in report["listed"]
    updated = report["updated"]
    assert (updated["priority"], updated["labels"]) == (20, {"environment": "test", "wave": "2"})
    assert updated["etag"] != created["etag"]
    assert updated["created_time_utc"] == created["created_time_utc"]
    assert report["stale_update_status"] == 412
    change = report["content_change"]
    assert change["status"] == 400
    assert change["body"]["Message"].startswith("ErrorCode:CannotModifyImmutableConfigurationContent;")
    assert change["body"]["errorCode"] == 400403
    errors = report["test_queries"]
    assert "position 15" in errors["target_condition_error"]
    assert list(errors["custom_metric_query_errors"]) == ["broken"]
    agent = report["edge_agent_twin"]["properties"]["desired"]
    assert agent["runtime"] == {"type": "docker"}
    assert report["edge_hub_twin"]["properties"]["desired"]["routes"] == {"up": "FROM /messages/* INTO $upstream"}
    assert report["deleted_status"] == 404
