"""Drive the official Python service SDK (``azure-iot-hub`` 2.7) through what ../shared/clients/hub_py.py
does not cover, and print one JSON report. Run with the SDK harness's interpreter:

    .cache/sdk/venv/bin/python tests/drivers/hub_service_py.py registry|configurations \
        --connection-string "HostName=...;SharedAccessKeyName=iothubowner;SharedAccessKey=..." --ca ca.pem --prefix p

Every call is a plain SDK call; an HTTP error is recorded with its status, not raised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any


def _status(call: Callable[[], Any]) -> int:
    """The HTTP status an SDK call failed with (0 if it did not fail)."""
    from msrest.exceptions import HttpOperationError

    try:
        call()
    except HttpOperationError as exc:
        return int(exc.response.status_code)
    return 0


def _error(call: Callable[[], Any]) -> dict[str, Any]:
    from msrest.exceptions import HttpOperationError

    try:
        call()
    except HttpOperationError as exc:
        return {"status": exc.response.status_code, "body": exc.response.json()}
    return {"status": 0}


def registry(cs: str, prefix: str, count: int, page_size: int) -> dict[str, Any]:
    from azure.iot.hub import IoTHubRegistryManager
    from azure.iot.hub.models import (
        AuthenticationMechanism,
        ExportImportDevice,
        QuerySpecification,
        SymmetricKey,
        Twin,
        TwinProperties,
    )

    rm = IoTHubRegistryManager.from_connection_string(cs)
    rm.protocol.config.connection.verify = os.environ["REQUESTS_CA_BUNDLE"]
    out: dict[str, Any] = {}
    ids = [f"{prefix}-{n:02d}" for n in range(count)]
    created = [rm.create_device_with_sas(d, None, None, "enabled", iot_edge=(n == 0)) for n, d in enumerate(ids)]
    out["created"] = [c.as_dict() for c in created]
    out["edge_modules"] = [m.as_dict() for m in rm.get_modules(ids[0])]
    out["create_again_status"] = _status(lambda: rm.create_device_with_sas(ids[1], None, None, "enabled"))
    device = rm.get_device(ids[1])
    updated = rm.update_device_with_sas(ids[1], device.etag, None, None, "disabled", status_reason="maintenance")
    out["updated"] = updated.as_dict()
    out["stale_update_status"] = _status(lambda: rm.update_device_with_sas(ids[1], device.etag, None, None, "enabled"))
    for n, device_id in enumerate(ids):
        patch = Twin(tags={"fleet": prefix, "n": n}, properties=TwinProperties(desired={"interval": n}))
        rm.update_twin(device_id, patch)
    replaced = Twin(
        tags={"fleet": prefix, "n": 99, "replaced": True}, properties=TwinProperties(desired={"mode": "eco"})
    )
    out["replaced"] = rm.replace_twin(ids[2], replaced).as_dict()
    twin = rm.get_twin(ids[3])
    out["twin"] = twin.as_dict()
    out["stale_twin_status"] = _status(lambda: rm.update_twin(ids[3], Twin(tags={"x": 1}), "AAAAAAAAAAA="))
    out["pages"] = _query_pages(
        rm, QuerySpecification(query=f"SELECT * FROM devices WHERE tags.fleet = '{prefix}'"), page_size
    )
    projection = (
        f"SELECT deviceId, tags.n AS n FROM devices WHERE tags.fleet = '{prefix}' AND tags.n >= 2 AND tags.n < 5"
    )
    out["projection"] = _query_pages(rm, QuerySpecification(query=projection), 100)
    count_query = f"SELECT COUNT() AS total FROM devices WHERE tags.fleet = '{prefix}'"
    out["count"] = _query_pages(rm, QuerySpecification(query=count_query), 100)
    out["bad_query"] = _error(
        lambda: rm.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE"), None, 10)
    )
    rm.create_module_with_sas(ids[0], "sensor", None, None, None)
    module = rm.get_module(ids[0], "sensor")
    out["module"] = module.as_dict()
    out["module_updated"] = rm.update_module_with_sas(ids[0], "sensor", "IotEdge", module.etag, None, None).as_dict()
    out["module_twin"] = rm.update_module_twin(
        ids[0], "sensor", Twin(properties=TwinProperties(desired={"a": 1}))
    ).as_dict()
    modules_query = QuerySpecification(query=f"SELECT * FROM devices.modules WHERE deviceId = '{ids[0]}'")
    out["module_pages"] = _query_pages(rm, modules_query, 100)
    out["statistics"] = rm.get_device_registry_statistics().as_dict()
    out["listed"] = [d.device_id for d in rm.get_devices(1000)]
    keys = AuthenticationMechanism(type="sas", symmetric_key=SymmetricKey(primary_key=None, secondary_key=None))
    batch = [
        ExportImportDevice(id=f"{prefix}-bulk-{n}", import_mode="create", status="enabled", authentication=keys)
        for n in range(3)
    ]
    out["bulk"] = rm.bulk_create_or_update_devices(batch).as_dict()
    conflict = [
        ExportImportDevice(id=f"{prefix}-bulk-9", import_mode="create"),
        ExportImportDevice(id=ids[1], import_mode="create"),
    ]
    out["bulk_conflict"] = rm.bulk_create_or_update_devices(conflict).as_dict()
    out["bulk_conflict_stored"] = _status(lambda: rm.get_device(f"{prefix}-bulk-9"))
    removal = [ExportImportDevice(id=f"{prefix}-bulk-{n}", import_mode="delete") for n in range(3)]
    out["bulk_delete"] = rm.bulk_create_or_update_devices(removal).as_dict()
    for device_id in ids:
        rm.delete_device(device_id)
    out["deleted_status"] = _status(lambda: rm.get_device(ids[0]))
    return out


def _query_pages(rm: Any, spec: Any, page_size: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        result = rm.query_iot_hub(spec, token, page_size)
        items = [i.as_dict() if hasattr(i, "as_dict") else i for i in result.items]
        pages.append({"type": result.type, "items": items, "continuation": result.continuation_token})
        token = result.continuation_token
        if not token:
            return pages


def configurations(cs: str, prefix: str) -> dict[str, Any]:
    from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
    from azure.iot.hub.models import (
        Configuration,
        ConfigurationContent,
        ConfigurationMetrics,
        ConfigurationQueriesTestInput,
        Twin,
    )

    rm = IoTHubRegistryManager.from_connection_string(cs)
    cm = IoTHubConfigurationManager.from_connection_string(cs)
    for client in (rm, cm):
        client.protocol.config.connection.verify = os.environ["REQUESTS_CA_BUNDLE"]
    out: dict[str, Any] = {}
    edge, config_id = f"{prefix}-edge", f"{prefix}-deploy"
    rm.create_device_with_sas(edge, None, None, "enabled", iot_edge=True)
    rm.update_twin(edge, Twin(tags={"deploy": prefix}))
    manifest = {
        "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "runtime": {"type": "docker"}}},
        "$edgeHub": {
            "properties.desired": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"}}
        },
    }
    config = Configuration(
        id=config_id,
        schema_version="1.0",
        labels={"environment": "test"},
        content=ConfigurationContent(modules_content=manifest),
        target_condition=f"tags.deploy = '{prefix}'",
        priority=10,
        metrics=ConfigurationMetrics(
            queries={"tagged": f"SELECT deviceId FROM devices WHERE tags.deploy = '{prefix}'"}
        ),
    )
    out["created"] = cm.create_configuration(config).as_dict()
    out["create_again_status"] = _status(lambda: cm.create_configuration(config))
    got = cm.get_configuration(config_id)
    out["got"] = got.as_dict()
    out["listed"] = [c.id for c in cm.get_configurations(100)]
    stale = got.etag
    got.priority = 20
    got.labels = {"environment": "test", "wave": "2"}
    out["updated"] = cm.update_configuration(got, got.etag).as_dict()
    out["stale_update_status"] = _status(lambda: cm.update_configuration(got, stale))
    changed = cm.get_configuration(config_id)
    changed.content = ConfigurationContent(
        modules_content={"$edgeAgent": {"properties.desired": {"schemaVersion": "1.0"}}}
    )
    out["content_change"] = _error(lambda: cm.update_configuration(changed, changed.etag))
    tests = ConfigurationQueriesTestInput(
        target_condition="tags.deploy = ",
        custom_metric_queries={"fine": "SELECT deviceId FROM devices", "broken": "SELECT deviceId FROM"},
    )
    out["test_queries"] = cm.test_configuration_queries(tests).as_dict()
    cm.apply_configuration_on_edge_device(edge, ConfigurationContent(modules_content=manifest))
    out["edge_agent_twin"] = rm.get_module_twin(edge, "$edgeAgent").as_dict()
    out["edge_hub_twin"] = rm.get_module_twin(edge, "$edgeHub").as_dict()
    cm.delete_configuration(config_id)
    out["deleted_status"] = _status(lambda: cm.get_configuration(config_id))
    rm.delete_device(edge)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("registry", "configurations"))
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--devices", type=int, default=7)
    parser.add_argument("--page-size", type=int, default=3)
    args = parser.parse_args()
    # msrest uses requests, which trusts REQUESTS_CA_BUNDLE.
    os.environ["REQUESTS_CA_BUNDLE"] = os.path.abspath(args.ca)
    report: dict[str, Any]
    try:
        if args.scenario == "registry":
            report = registry(args.connection_string, args.prefix, args.devices, args.page_size)
        else:
            report = configurations(args.connection_string, args.prefix)
        report["ok"] = True
    except Exception as exc:
        report = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    sys.stdout.write(json.dumps(report, default=str) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
