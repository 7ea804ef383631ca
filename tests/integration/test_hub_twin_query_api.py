"""Twins and queries over HTTPS: merge patches, versions, limits, If-Match; paging with continuation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Server, ServiceCaller, dump_state, hub_error, unique


@pytest.fixture
def device(hub: ServiceCaller) -> str:
    device_id = unique("twin")
    assert hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id}).status_code == 200
    return device_id


def _patch(hub: ServiceCaller, device_id: str, body: Any, if_match: str = '"*"', method: str = "PATCH") -> Any:
    return hub.request(method, f"/twins/{device_id}", body, headers={"If-Match": if_match})


@pytest.mark.spec("hub-protocol.md §2.2")
def test_patch_merges_deletes_with_null_and_moves_versions(hub: ServiceCaller, device: str) -> None:
    first = hub.request("GET", f"/twins/{device}").json()
    assert first["properties"]["desired"]["$version"] == 1
    assert first["properties"]["reported"]["$version"] == 1
    body = {"tags": {"site": {"a": 1, "b": 2}}, "properties": {"desired": {"fw": {"v": "1.0", "url": "x"}, "rate": 5}}}
    patched = _patch(hub, device, body)
    assert patched.status_code == 200
    twin = patched.json()
    assert twin["tags"] == {"site": {"a": 1, "b": 2}}
    desired = twin["properties"]["desired"]
    assert (desired["fw"], desired["rate"], desired["$version"]) == ({"v": "1.0", "url": "x"}, 5, 2)
    assert desired["$metadata"]["fw"]["v"]["$lastUpdatedVersion"] == 2
    assert twin["version"] > first["version"]
    assert twin["etag"] != first["etag"]

    merged = _patch(
        hub, device, {"tags": {"site": {"b": None, "c": 3}}, "properties": {"desired": {"fw": {"url": None}}}}
    )
    twin = merged.json()
    assert twin["tags"] == {"site": {"a": 1, "c": 3}}
    assert twin["properties"]["desired"]["fw"] == {"v": "1.0"}
    assert twin["properties"]["desired"]["rate"] == 5
    assert twin["properties"]["desired"]["$version"] == 3
    tags_only = _patch(hub, device, {"tags": {"more": True}}).json()
    assert tags_only["properties"]["desired"]["$version"] == 3  # tags are not desired properties


@pytest.mark.spec("hub-protocol.md §2.2")
def test_if_match_on_twins(hub: ServiceCaller, device: str) -> None:
    etag = hub.request("GET", f"/twins/{device}").json()["etag"]
    for quoting in ('"{}"', "{}"):
        if_match = quoting.format(etag)
        updated = _patch(hub, device, {"tags": {"n": if_match}}, if_match)
        assert updated.status_code == 200
        refused = _patch(hub, device, {"tags": {"n": 0}}, if_match)
        assert (refused.status_code, hub_error(refused)) == (412, "PreconditionFailed")
        etag = updated.json()["etag"]


@pytest.mark.spec("hub-protocol.md §2.2")
def test_replace_sets_tags_and_desired_and_ignores_reported(hub: ServiceCaller, device: str) -> None:
    _patch(hub, device, {"tags": {"old": 1}, "properties": {"desired": {"old": 1, "kept": 1}}})
    read = hub.request("GET", f"/twins/{device}").json()
    version = read["properties"]["desired"]["$version"]
    read["tags"] = {"new": 1}
    read["properties"]["desired"] = {"kept": 1, "new": 2, "$version": 99}
    replaced = _patch(hub, device, read, method="PUT")  # a twin as read, reported properties and all
    assert replaced.status_code == 200, replaced.text
    twin = replaced.json()
    assert twin["tags"] == {"new": 1}
    assert {k: v for k, v in twin["properties"]["desired"].items() if not k.startswith("$")} == {"kept": 1, "new": 2}
    assert twin["properties"]["desired"]["$version"] == version + 1  # the hub's version, not the body's
    again = _patch(hub, device, {"tags": {"new": 1}, "properties": {"desired": {"kept": 1, "new": 2}}}, method="PUT")
    assert again.json()["properties"]["desired"]["$version"] == twin["properties"]["desired"]["$version"]
    refused = _patch(hub, device, {"properties": {"reported": {"x": 1}}})
    assert refused.status_code == 400
    assert "reported properties are the device's" in refused.json()["message"]


@pytest.mark.spec("hub-protocol.md §2.3")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"tags": {"a.b": 1}}, "property name 'a.b' in 'tags' contains '.'"),
        ({"properties": {"desired": {"$x": 1}}}, "contains '$'"),
        ({"properties": {"desired": {"a b": 1}}}, "contains ' '"),
        (
            {"tags": {"k": {"k": {"k": {"k": {"k": {"k": {"k": {"k": {"k": {"k": {"k": 1}}}}}}}}}}}},
            "deeper than 10 levels",
        ),
        ({"properties": {"desired": {"s": "x" * 4097}}}, "longer than 4096 characters"),
        ({"properties": {"desired": {f"k{n}": "x" * 4000 for n in range(9)}}}, "the limit is 32768 bytes"),
        ({"tags": {f"k{n}": "x" * 3000 for n in range(3)}}, "the limit is 8192 bytes"),
        ({"properties": {"desired": {"n": 2**60}}}, "outside the hub's integer range"),
        ({"tags": ["a"]}, "'tags' must be a JSON object"),
        ({"properties": {"desired": 5}}, "'properties.desired' must be a JSON object"),
    ],
)
def test_twin_limits_and_shapes_are_a_400_that_changes_nothing(
    server: Server, hub: ServiceCaller, device: str, body: Any, message: str
) -> None:
    before = dump_state(server)
    response = _patch(hub, device, body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert dump_state(server) == before


def test_module_twins_patch_like_device_twins(hub: ServiceCaller, device: str) -> None:
    hub.request("PUT", f"/devices/{device}/modules/m1", {"moduleId": "m1"})
    path = f"/twins/{device}/modules/m1"
    patched = hub.request("PATCH", path, {"properties": {"desired": {"a": 1}}}, headers={"If-Match": "*"})
    assert patched.status_code == 200
    assert (patched.json()["moduleId"], patched.json()["properties"]["desired"]["a"]) == ("m1", 1)
    assert "a" not in hub.request("GET", f"/twins/{device}").json()["properties"]["desired"]
    missing = hub.request("GET", f"/twins/{device}/modules/none")
    assert (missing.status_code, hub_error(missing)) == (404, "ModuleNotFound")


# -- queries ------------------------------------------------------------------------------------------
def _query(hub: ServiceCaller, text: str, page: int | None = None, continuation: str | None = None) -> Any:
    headers = {}
    if page:
        headers["x-ms-max-item-count"] = str(page)
    if continuation:
        headers["x-ms-continuation"] = continuation
    return hub.request("POST", "/devices/query", {"query": text}, headers=headers)


@pytest.fixture
def fleet(hub: ServiceCaller) -> tuple[str, list[str]]:
    name = unique("fleet")
    ids = [f"{name}-{n}" for n in range(5)]
    for n, device_id in enumerate(ids):
        hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id, "capabilities": {"iotEdge": n == 0}})
        _patch(hub, device_id, {"tags": {"fleet": name, "n": n, "ring": "a" if n % 2 else "b"}})
    return name, ids


@pytest.mark.spec("hub-protocol.md §4")
def test_queries_page_with_continuation_and_drop_the_header_when_done(
    hub: ServiceCaller, fleet: tuple[str, list[str]]
) -> None:
    name, ids = fleet
    text = f"SELECT * FROM devices WHERE tags.fleet = '{name}'"
    seen, sizes, continuation = [], [], None
    while True:
        response = _query(hub, text, 2, continuation)
        assert response.status_code == 200
        assert response.headers["x-ms-item-type"] == "twin"
        sizes.append(len(response.json()))
        seen += [twin["deviceId"] for twin in response.json()]
        continuation = response.headers.get("x-ms-continuation")
        if continuation is None:
            break
    assert (sizes, seen) == ([2, 2, 1], ids)

    top = _query(hub, f"SELECT TOP 3 deviceId FROM devices WHERE tags.fleet = '{name}'", 2)
    assert top.headers["x-ms-item-type"] == "raw"
    rest = _query(
        hub, f"SELECT TOP 3 deviceId FROM devices WHERE tags.fleet = '{name}'", 2, top.headers["x-ms-continuation"]
    )
    assert [r["deviceId"] for r in top.json() + rest.json()] == ids[:3]
    assert "x-ms-continuation" not in rest.headers


@pytest.mark.spec("hub-protocol.md §4")
def test_projections_aggregates_and_module_queries(hub: ServiceCaller, fleet: tuple[str, list[str]]) -> None:
    name, ids = fleet
    where = f"WHERE tags.fleet = '{name}'"
    projected = _query(
        hub, f"SELECT DeviceId, tags.n AS n, capabilities.iotEdge FROM devices {where} AND tags.n < 2"
    ).json()
    assert projected == [{"deviceId": ids[0], "n": 0, "iotEdge": True}, {"deviceId": ids[1], "n": 1, "iotEdge": False}]
    counted = _query(hub, f"SELECT COUNT() AS total FROM devices {where}")
    assert (counted.json(), counted.headers["x-ms-item-type"]) == ([{"total": 5}], "raw")
    grouped = _query(
        hub, f"SELECT tags.ring AS ring, COUNT() AS devices FROM devices {where} GROUP BY tags.ring"
    ).json()
    assert sorted(grouped, key=lambda g: g["ring"]) == [{"ring": "a", "devices": 2}, {"ring": "b", "devices": 3}]
    modules = _query(hub, f"SELECT deviceId, moduleId FROM devices.modules WHERE deviceId = '{ids[0]}'").json()
    assert modules == [{"deviceId": ids[0], "moduleId": "$edgeAgent"}, {"deviceId": ids[0], "moduleId": "$edgeHub"}]


@pytest.mark.spec("hub-protocol.md §4")
def test_bad_queries_and_continuations_are_a_400_with_the_reason(
    hub: ServiceCaller, fleet: tuple[str, list[str]]
) -> None:
    name, _ = fleet
    syntax = _query(hub, "SELECT * FROM devices WHERE tags.fleet = ")
    assert syntax.status_code == 400
    assert syntax.json()["message"] == (
        "invalid query: expected a value, a property path or '(' but found the end of the query at position 42"
    )
    assert _query(hub, "SELECT * FROM devices", 1, "not-a-token").json()["message"] == (
        "x-ms-continuation is not a continuation token this hub issued"
    )
    token = _query(hub, f"SELECT * FROM devices WHERE tags.fleet = '{name}'", 1).headers["x-ms-continuation"]
    other = _query(hub, "SELECT * FROM devices", 1, token)
    assert (other.status_code, other.json()["message"]) == (
        400,
        "x-ms-continuation belongs to another query: send the query that returned it",
    )
    no_query = hub.request("POST", "/devices/query", {"sql": "SELECT *"})
    assert (no_query.status_code, no_query.json()["message"]) == (
        400,
        'a query body is {"query": "SELECT * FROM devices"}',
    )
    assert "at most 8192 are allowed" in _query(hub, "SELECT * FROM devices WHERE " + "x" * 9000).json()["message"]
