"""The hub's identity registry over HTTPS: devices, modules and bulk operations, with the cloud's exact codes."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support import Server, ServiceCaller, dump_state, hub_error, unique

pytestmark = pytest.mark.spec("hub-protocol.md §3.2")


def _create(hub: ServiceCaller, device_id: str, **fields: Any) -> dict[str, Any]:
    response = hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id, **fields})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def test_device_create_update_delete_with_exact_codes_and_if_match(hub: ServiceCaller) -> None:
    device_id = unique("dev")
    created = _create(hub, device_id, status="enabled")
    keys = created["authentication"]["symmetricKey"]
    assert all(len(base64.b64decode(k)) == 32 for k in keys.values())  # generated when omitted
    assert (created["etag"], created["generationId"], created["capabilities"]) == (
        "MQ==",
        created["generationId"],
        {"iotEdge": False},
    )

    again = hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id})
    assert (again.status_code, hub_error(again)) == (409, "DeviceAlreadyExists")
    missing = hub.request("PUT", f"/devices/{unique('nobody')}", {}, headers={"If-Match": "*"})
    assert (missing.status_code, hub_error(missing)) == (404, "DeviceNotFound")

    etag = created["etag"]
    for quoting in ('"{}"', "{}", 'W/"{}"'):  # the SDKs send etags quoted, bare and weak
        if_match = quoting.format(etag)
        updated = hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id}, headers={"If-Match": if_match})
        assert updated.status_code == 200, (if_match, updated.text)
        assert updated.json()["authentication"]["symmetricKey"] == keys  # kept when omitted on update
        refused = hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id}, headers={"If-Match": if_match})
        assert (refused.status_code, hub_error(refused)) == (412, "PreconditionFailed")
        etag = updated.json()["etag"]

    unchanged = hub.request("PUT", f"/devices/{device_id}", {"status": "enabled"}, headers={"If-Match": '"*"'})
    assert unchanged.json()["statusUpdatedTime"] == created["statusUpdatedTime"]
    disabled = hub.request(
        "PUT", f"/devices/{device_id}", {"status": "disabled", "statusReason": "stolen"}, headers={"If-Match": "*"}
    )
    assert (disabled.json()["status"], disabled.json()["statusReason"]) == ("disabled", "stolen")
    assert disabled.json()["statusUpdatedTime"] >= created["statusUpdatedTime"]

    stale_delete = hub.request("DELETE", f"/devices/{device_id}", headers={"If-Match": '"MQ=="'})
    assert stale_delete.status_code == 412
    deleted = hub.request("DELETE", f"/devices/{device_id}", headers={"If-Match": '"*"'})
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = hub.request("GET", f"/devices/{device_id}")
    assert (gone.status_code, hub_error(gone)) == (404, "DeviceNotFound")
    assert hub.request("DELETE", f"/devices/{device_id}", headers={"If-Match": "*"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[]", "body must be a JSON object"),
        ({"deviceId": "someone-else"}, "differs from the path"),
        ({"status": "paused"}, "'status' must be 'enabled' or 'disabled'"),
        ({"capabilities": {"iotEdge": "yes"}}, "'capabilities.iotEdge' must be true or false"),
        ({"capabilities": True}, "'capabilities' must be a JSON object"),
        ({"authentication": {"type": "magic"}}, "authentication type 'magic' is not one of"),
        (
            {"authentication": {"type": "sas", "symmetricKey": {"primaryKey": "not base64!"}}},
            "primaryKey is not valid base64",
        ),
        (
            {"authentication": {"type": "sas", "symmetricKey": {"secondaryKey": "c2hvcnQ="}}},
            "secondaryKey must decode to 16 to 64 bytes",
        ),
        ({"authentication": {"type": "selfSigned"}}, "self-signed authentication needs"),
        (
            {"authentication": {"type": "selfSigned", "x509Thumbprint": {"primaryThumbprint": "xyz"}}},
            "SHA-1 or SHA-256 thumbprint",
        ),
        ({"statusReason": "x" * 200}, "'statusReason' must be a string of at most 128 characters"),
        ({"deviceScope": "somewhere"}, "'deviceScope' must be a parent edge device's scope"),
        ({"parentScopes": "ms-azure-iot-edge://p-1"}, "'parentScopes' must be a list"),
    ],
)
def test_bad_device_bodies_get_a_clear_400_and_change_nothing(
    server: Server, hub: ServiceCaller, body: Any, message: str
) -> None:
    device_id = unique("bad")
    before = dump_state(server)
    if isinstance(body, bytes):
        token = hub.token()
        with server.http() as http:
            response = http.put(
                f"/devices/{device_id}?api-version=2021-04-12", content=body, headers={"Authorization": token}
            )
    else:
        response = hub.request("PUT", f"/devices/{device_id}", body)
    assert response.status_code == 400, response.text
    assert message in response.json()["Message"]
    assert response.json()["Message"].startswith("ErrorCode:ArgumentInvalid;")
    assert dump_state(server) == before


def test_invalid_device_ids_are_refused(hub: ServiceCaller) -> None:
    response = hub.request("PUT", "/devices/has%20space", {})
    assert response.status_code == 400
    assert "device id 'has space' is invalid" in response.json()["message"]


def test_listing_top_and_statistics(hub: ServiceCaller) -> None:
    for n in range(3):
        _create(hub, unique(f"list{n}"), status="disabled" if n == 0 else "enabled")
    assert len(hub.request("GET", "/devices?top=2").json()) == 2
    negative = hub.request("GET", "/devices?top=-5")
    assert (negative.status_code, negative.json()["message"]) == (
        400,
        "page size '-5' is not a whole number of 0 or more",
    )
    stats = hub.request("GET", "/statistics/devices").json()
    assert stats["totalDeviceCount"] == stats["enabledDeviceCount"] + stats["disabledDeviceCount"]
    assert stats["disabledDeviceCount"] >= 1


@pytest.mark.spec("hub-protocol.md §0")
def test_an_edge_device_gets_its_system_modules_and_their_twins_on_create_and_on_update(hub: ServiceCaller) -> None:
    device_id = unique("leaf")
    _create(hub, device_id)
    assert hub.request("GET", f"/devices/{device_id}/modules").json() == []
    edge = hub.request("PUT", f"/devices/{device_id}", {"capabilities": {"iotEdge": True}}, headers={"If-Match": "*"})
    assert edge.json()["deviceScope"] == f"ms-azure-iot-edge://{device_id}-{edge.json()['generationId']}"
    modules = hub.request("GET", f"/devices/{device_id}/modules").json()
    assert [(m["moduleId"], bool(m["generationId"]), m["authentication"]["type"]) for m in modules] == [
        ("$edgeAgent", True, "sas"),
        ("$edgeHub", True, "sas"),
    ]
    for module in ("$edgeAgent", "$edgeHub"):
        twin = hub.request("GET", f"/twins/{device_id}/modules/{module}")
        assert twin.status_code == 200
        assert twin.json()["moduleId"] == module
        assert twin.json()["properties"]["desired"]["$version"] == 1


def test_module_create_update_delete_with_exact_codes(hub: ServiceCaller) -> None:
    device_id = unique("host")
    _create(hub, device_id)
    path = f"/devices/{device_id}/modules/filter"
    created = hub.request("PUT", path, {"moduleId": "filter", "deviceId": device_id, "managedBy": "IotEdge"})
    assert created.status_code == 200  # aziot-identityd accepts nothing else
    module = created.json()
    assert (module["moduleId"], module["deviceId"], module["managedBy"]) == ("filter", device_id, "IotEdge")
    assert module["generationId"]
    again = hub.request("PUT", path, {"moduleId": "filter"})
    assert (again.status_code, hub_error(again)) == (409, "ModuleAlreadyExistsOnDevice")
    keys = {"primaryKey": base64.b64encode(b"p" * 32).decode(), "secondaryKey": base64.b64encode(b"s" * 32).decode()}
    updated = hub.request(
        "PUT",
        path,
        {"authentication": {"type": "sas", "symmetricKey": keys}},
        headers={"If-Match": f'"{module["etag"]}"'},
    )
    assert updated.status_code == 200
    assert updated.json()["authentication"]["symmetricKey"] == keys
    assert updated.json()["managedBy"] == "IotEdge"  # kept when the body leaves it out
    assert updated.json()["generationId"] == module["generationId"]
    assert hub.request("PUT", path, {}, headers={"If-Match": module["etag"]}).status_code == 412
    missing = hub.request("PUT", f"/devices/{device_id}/modules/ghost", {}, headers={"If-Match": "*"})
    assert (missing.status_code, hub_error(missing)) == (404, "ModuleNotFound")
    orphan = hub.request("PUT", f"/devices/{unique('nobody')}/modules/m", {})
    assert (orphan.status_code, hub_error(orphan)) == (404, "DeviceNotFound")
    assert hub.request("GET", f"/twins/{device_id}/modules/filter").status_code == 200
    assert hub.request("DELETE", path, headers={"If-Match": "*"}).status_code == 204
    assert hub.request("GET", path).status_code == 404
    assert hub.request("GET", f"/twins/{device_id}/modules/filter").status_code == 404


def _bulk(hub: ServiceCaller, items: Any) -> Any:
    return hub.request("POST", "/devices", items)


def test_bulk_import_modes(hub: ServiceCaller) -> None:
    a, b = unique("bulk-a"), unique("bulk-b")
    created = _bulk(
        hub, [{"id": a, "importMode": "create", "tags": {"wave": 1}}, {"id": b, "importMode": "createOrUpdate"}]
    )
    assert (created.status_code, created.json()) == (200, {"isSuccessful": True, "errors": [], "warnings": []})
    assert hub.request("GET", f"/twins/{a}").json()["tags"] == {"wave": 1}
    etag = hub.request("GET", f"/devices/{b}").json()["etag"]
    updated = _bulk(hub, [{"id": b, "importMode": "updateIfMatchETag", "eTag": etag, "status": "disabled"}])
    assert updated.status_code == 200
    assert hub.request("GET", f"/devices/{b}").json()["status"] == "disabled"
    twin = _bulk(hub, [{"id": a, "importMode": "updateTwin", "tags": {"wave": 2}, "properties": {"desired": {"x": 1}}}])
    assert twin.status_code == 200
    shown = hub.request("GET", f"/twins/{a}").json()
    assert (shown["tags"], shown["properties"]["desired"]["x"]) == ({"wave": 2}, 1)
    removed = _bulk(hub, [{"id": a, "importMode": "delete"}, {"id": b, "importMode": "deleteIfMatchETag", "eTag": "*"}])
    assert removed.status_code == 200
    assert hub.request("GET", f"/devices/{a}").status_code == 404


def test_a_bulk_batch_with_a_failing_item_stores_nothing_and_says_why(server: Server, hub: ServiceCaller) -> None:
    existing, fresh, ghost = unique("bulk-x"), unique("bulk-new"), unique("ghost")
    _create(hub, existing)
    before = dump_state(server)
    items: list[dict[str, Any]] = [
        {"id": fresh, "importMode": "create"},
        {"id": existing, "importMode": "create"},
        {"id": ghost, "importMode": "update"},
        {"id": existing + "-", "importMode": "delete"},
        {"id": fresh + "-2", "importMode": "create", "properties": {"reported": {"x": 1}}},
    ]
    response = _bulk(hub, items)
    assert response.status_code == 400
    result = response.json()
    assert result["isSuccessful"] is False
    assert [(e["deviceId"], e["errorCode"], e["operation"]) for e in result["errors"]] == [
        (existing, "DeviceAlreadyExists", "create"),
        (ghost, "DeviceNotFound", "update"),
        (existing + "-", "DeviceNotFound", "delete"),
        (fresh + "-2", "ArgumentInvalid", "create"),
    ]
    stale = _bulk(hub, [{"id": existing, "importMode": "updateIfMatchETag", "eTag": "bm9wZQ=="}]).json()
    assert stale["errors"][0]["errorCode"] == "PreconditionFailed"
    assert dump_state(server) == before


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"id": "x"}, "a bulk operation is a JSON array of devices"),
        ([], "a bulk operation takes 1 to 100 devices, not 0"),
        ([{"id": f"d{n}", "importMode": "create"} for n in range(101)], "takes 1 to 100 devices, not 101"),
        ([{"importMode": "create"}], "item 0 has no 'id'"),
        ([{"id": "d", "importMode": "upsert"}], "'importMode' must be one of create, createOrUpdate"),
        ([{"id": "d", "importMode": "create"}, {"id": "d", "importMode": "delete"}], "appears more than once"),
    ],
)
def test_malformed_bulk_batches_are_a_400(server: Server, hub: ServiceCaller, items: Any, message: str) -> None:
    before = dump_state(server)
    response = _bulk(hub, items)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert dump_state(server) == before
