"""Configurations and per-device deployments over HTTPS (spec/hub-protocol.md §3.2, §5.1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Server, ServiceCaller, dump_state, hub_error, unique

MANIFEST = {
    "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": {"sensor": {"type": "docker"}}}},
    "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"}}},
}


def _config(config_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": config_id, "content": {"modulesContent": MANIFEST}, "targetCondition": "tags.ring = 'a'", **fields}


@pytest.mark.spec("hub-protocol.md §3.2")
def test_configuration_lifecycle_with_etags_and_immutable_content(hub: ServiceCaller) -> None:
    config_id = unique("deploy")
    created = hub.request("PUT", f"/configurations/{config_id}", _config(config_id, priority=3, labels={"a": "b"}))
    assert created.status_code == 200, created.text
    shown = created.json()
    assert (shown["priority"], shown["labels"], shown["etag"], shown["schemaVersion"]) == (3, {"a": "b"}, "MQ==", "1.0")
    assert shown["content"] == {"modulesContent": MANIFEST, "moduleContent": {}, "deviceContent": {}}
    assert set(shown["systemMetrics"]["queries"]) == {"Targeted", "Applied", "Reporting Success", "Reporting Failure"}
    assert shown["createdTimeUtc"] == shown["lastUpdatedTimeUtc"]

    again = hub.request("PUT", f"/configurations/{config_id}", _config(config_id))
    assert (again.status_code, hub_error(again)) == (409, "ConfigurationAlreadyExists")
    missing = hub.request("PUT", f"/configurations/{unique('none')}", _config("x"), headers={"If-Match": "*"})
    assert (missing.status_code, hub_error(missing)) == (404, "ConfigurationNotFound")

    shown["priority"] = 7
    shown["targetCondition"] = "tags.ring = 'b'"
    updated = hub.request(
        "PUT", f"/configurations/{config_id}", shown, headers={"If-Match": shown["etag"]}
    )  # unquoted, as the SDK sends
    assert updated.status_code == 200, updated.text
    assert (updated.json()["priority"], updated.json()["targetCondition"]) == (7, "tags.ring = 'b'")
    assert updated.json()["createdTimeUtc"] == shown["createdTimeUtc"]
    stale = hub.request("PUT", f"/configurations/{config_id}", shown, headers={"If-Match": shown["etag"]})
    assert (stale.status_code, hub_error(stale)) == (412, "PreconditionFailed")

    content = {"modulesContent": {"$edgeAgent": {"properties.desired": {"schemaVersion": "1.0"}}}}
    immutable = hub.request("PUT", f"/configurations/{config_id}", {"content": content}, headers={"If-Match": "*"})
    assert (immutable.status_code, hub_error(immutable)) == (400, "CannotModifyImmutableConfigurationContent")
    assert immutable.json()["errorCode"] == 400403

    listed = hub.request("GET", "/configurations?top=1000")
    assert isinstance(listed.json(), list)
    assert config_id in [c["id"] for c in listed.json()]
    assert hub.request("DELETE", f"/configurations/{config_id}", headers={"If-Match": '"MQ=="'}).status_code == 412
    assert hub.request("DELETE", f"/configurations/{config_id}", headers={"If-Match": "*"}).status_code == 204
    gone = hub.request("GET", f"/configurations/{config_id}")
    assert (gone.status_code, gone.json()["errorCode"]) == (404, 404301)


@pytest.mark.spec("hub-protocol.md §3.2")
def test_metrics_are_counted_from_the_twins(hub: ServiceCaller) -> None:
    ring = unique("ring")
    for n in range(3):
        device_id = f"{ring}-{n}"
        hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id, "capabilities": {"iotEdge": n < 2}})
        hub.request("PATCH", f"/twins/{device_id}", {"tags": {"ring": ring}}, headers={"If-Match": "*"})
    metrics = {"queries": {"tagged": f"SELECT deviceId FROM devices WHERE tags.ring = '{ring}'"}}
    edge = hub.request(
        "PUT",
        f"/configurations/{ring}-edge",
        _config(f"{ring}-edge", targetCondition=f"tags.ring = '{ring}'", metrics=metrics),
    )
    assert edge.json()["systemMetrics"]["results"]["targetedCount"] == 2  # edge deployments target edge devices only
    assert edge.json()["metrics"] == {"results": {"tagged": 3}, "queries": metrics["queries"]}
    adm = {
        "id": f"{ring}-adm",
        "content": {"deviceContent": {"properties.desired.interval": 5}},
        "targetCondition": f"tags.ring = '{ring}'",
    }
    shown = hub.request("PUT", f"/configurations/{ring}-adm", adm).json()
    assert shown["systemMetrics"]["results"] == {"targetedCount": 3, "appliedCount": 0}
    assert (
        shown["systemMetrics"]["queries"]["targetedCount"]
        == f"select deviceId from devices where (tags.ring = '{ring}')"
    )
    nothing = hub.request("PUT", f"/configurations/{ring}-none", _config(f"{ring}-none", targetCondition="")).json()
    assert nothing["systemMetrics"]["results"]["targetedCount"] == 0
    everything = hub.request(
        "PUT", f"/configurations/{ring}-all", {**adm, "id": f"{ring}-all", "targetCondition": "*"}
    ).json()
    assert everything["systemMetrics"]["queries"]["targetedCount"] == "select deviceId from devices"


@pytest.mark.spec("hub-protocol.md §3.2")
@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (
            {"targetCondition": "tags.ring = "},
            "InvalidConfigurationTargetCondition",
            "targetCondition: invalid query: expected a value",
        ),
        (
            {"targetCondition": "FROM devices.modules WHERE tags.x = 1"},
            "InvalidConfigurationTargetCondition",
            "targets devices, not devices.modules",
        ),
        (
            {"metrics": {"queries": {"m": "SELECT FROM devices"}}},
            "InvalidConfigurationCustomMetricsQuery",
            "metric 'm': invalid query",
        ),
        ({"content": None}, "InvalidConfigurationContent", "exactly one of modulesContent"),
        (
            {"content": {"modulesContent": MANIFEST, "deviceContent": {"properties.desired.x": 1}}},
            "InvalidConfigurationContent",
            "not 2",
        ),
        (
            {"content": {"modulesContent": {"$edgeAgent": {"desired": {}}}}},
            "InvalidConfigurationContent",
            "is neither 'properties.desired'",
        ),
        (
            {"content": {"modulesContent": {"$edgeAgent": {"properties.desired": {"a.b": 1}}}}},
            "InvalidConfigurationContent",
            "contains '.'",
        ),
        ({"content": {"deviceContents": {}}}, "InvalidConfigurationContent", "unknown keys ['deviceContents']"),
        ({"priority": -1}, "ArgumentInvalid", "'priority' must be a whole number from 0 to 2147483647"),
        ({"priority": "high"}, "ArgumentInvalid", "'priority' must be a whole number"),
        ({"labels": {"a": 1}}, "ArgumentInvalid", "'labels' must be a JSON object of strings"),
        ({"id": "other"}, "ArgumentInvalid", "differs from the path"),
    ],
)
def test_bad_configurations_are_a_400_with_the_cloud_error_and_change_nothing(
    server: Server, hub: ServiceCaller, body: dict[str, Any], error: str, message: str
) -> None:
    config_id = unique("bad")
    before = dump_state(server)
    response = hub.request("PUT", f"/configurations/{config_id}", {**_config(config_id), **body})
    assert response.status_code == 400, response.text
    assert (hub_error(response), message in response.json()["message"]) == (error, True), response.json()["message"]
    assert dump_state(server) == before


def test_configuration_ids_are_lower_case(hub: ServiceCaller) -> None:
    response = hub.request("PUT", "/configurations/Deploy", _config("Deploy"))
    assert response.status_code == 400
    assert "configuration id 'Deploy' is invalid: 1 to 128 lower-case letters" in response.json()["message"]


def test_test_queries_reports_each_error(hub: ServiceCaller) -> None:
    body = {
        "targetCondition": "tags.x = 1",
        "customMetricQueries": {"ok": "SELECT deviceId FROM devices", "bad": "SELECT"},
    }
    assert hub.request("POST", "/configurations/testQueries", body).json() == {
        "targetConditionError": "",
        "customMetricQueryErrors": {
            "bad": "metric 'bad': invalid query: expected a value, a property path or '(' but found the end of the query at position 7"
        },
    }


@pytest.mark.spec("hub-protocol.md §5.1")
def test_apply_configuration_content_writes_module_twins_and_creates_missing_modules(hub: ServiceCaller) -> None:
    device_id = unique("edge")
    hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id, "capabilities": {"iotEdge": True}})
    content = {"modulesContent": {**MANIFEST, "sensor": {"properties.desired": {"interval": 5}}}}
    applied = hub.request("POST", f"/devices/{device_id}/applyConfigurationContent", content)
    assert (applied.status_code, applied.content) == (204, b"")
    agent = hub.request("GET", f"/twins/{device_id}/modules/$edgeAgent").json()["properties"]["desired"]
    assert agent["modules"] == {"sensor": {"type": "docker"}}
    assert agent["$version"] == 2
    sensor = hub.request("GET", f"/devices/{device_id}/modules/sensor").json()
    assert (sensor["managedBy"], bool(sensor["generationId"])) == ("IotEdge", True)
    assert hub.request("GET", f"/twins/{device_id}/modules/sensor").json()["properties"]["desired"]["interval"] == 5
    hub.request("POST", f"/devices/{device_id}/applyConfigurationContent", content)
    again = hub.request("GET", f"/twins/{device_id}/modules/$edgeAgent").json()["properties"]["desired"]
    assert again["$version"] == 2  # the same content again changes nothing


@pytest.mark.spec("hub-protocol.md §5.1")
def test_apply_configuration_content_refusals(server: Server, hub: ServiceCaller) -> None:
    leaf = unique("leaf")
    hub.request("PUT", f"/devices/{leaf}", {"deviceId": leaf})
    edge = unique("edge")
    hub.request("PUT", f"/devices/{edge}", {"deviceId": edge, "capabilities": {"iotEdge": True}})
    before = dump_state(server)
    cases = [
        (leaf, {"modulesContent": MANIFEST}, 400, "is not an IoT Edge device"),
        (unique("nobody"), {"modulesContent": MANIFEST}, 404, "does not exist"),
        (edge, {"deviceContent": {"properties.desired.x": 1}}, 400, "a device deployment needs 'modulesContent'"),
        (
            edge,
            {"modulesContent": {"$edgeAgent": {"properties.desired.modules.x": {}}}},
            400,
            "layered paths belong to layered",
        ),
        (edge, {"modulesContent": {"bad/id": {"properties.desired": {}}}}, 400, "module id 'bad/id' is invalid"),
    ]
    for device_id, body, status, message in cases:
        response = hub.request("POST", f"/devices/{device_id}/applyConfigurationContent", body)
        assert (response.status_code, message in response.json()["message"]) == (status, True), response.text
    assert dump_state(server) == before
