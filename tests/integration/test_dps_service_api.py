"""The provisioning service's management API and its CLI (spec/dps-protocol.md §5)."""

from __future__ import annotations

import base64

import pytest

from edgeprov import sas
from tests.integration.dps_helpers import create_group, provision, register, token
from tests.support import Server, dump_state, unique


def _symmetric(primary: str | None = None, secondary: str | None = None) -> dict[str, object]:
    keys = {k: v for k, v in (("primaryKey", primary), ("secondaryKey", secondary)) if v}
    return {"type": "symmetricKey", "symmetricKey": keys}


@pytest.mark.spec("dps-protocol.md §5.2")
def test_keys_are_generated_returned_on_put_and_hidden_on_get(server: Server) -> None:
    dps = server.dps()
    group_id = unique("keys")
    created = dps.request(
        "PUT", f"/enrollmentGroups/{group_id}", {"enrollmentGroupId": group_id, "attestation": {"type": "symmetricKey"}}
    )
    assert created.status_code == 200
    keys = created.json()["attestation"]["symmetricKey"]
    assert len(base64.b64decode(keys["primaryKey"])) == 64
    assert keys["primaryKey"] != keys["secondaryKey"]
    shown = dps.request("GET", f"/enrollmentGroups/{group_id}").json()
    assert shown["attestation"] == {"type": "symmetricKey"}
    # The Node service client writes the path in lower case.
    attestation = dps.request("POST", f"/enrollmentgroups/{group_id}/attestationmechanism").json()
    assert attestation["symmetricKey"] == keys


@pytest.mark.spec("dps-protocol.md §5.2")
def test_etags_guard_updates_and_deletes(server: Server) -> None:
    dps = server.dps()
    registration_id = unique("etag")
    body = {"registrationId": registration_id, "attestation": _symmetric(sas.generate_key(), sas.generate_key())}
    first = dps.request("PUT", f"/enrollments/{registration_id}", body).json()
    before = dump_state(server)
    stale = dps.request(
        "PUT",
        f"/enrollments/{registration_id}",
        {**body, "provisioningStatus": "disabled"},
        headers={"If-Match": '"not-the-etag"'},
    )
    assert stale.status_code == 412
    assert stale.json()["errorCode"] == 412002
    assert dps.request("DELETE", f"/enrollments/{registration_id}", headers={"If-Match": '"nope"'}).status_code == 412
    assert dump_state(server) == before
    updated = dps.request(
        "PUT",
        f"/enrollments/{registration_id}",
        {**body, "provisioningStatus": "disabled"},
        headers={"If-Match": first["etag"]},
    )
    assert updated.status_code == 200
    assert updated.json()["etag"] != first["etag"]
    assert updated.json()["provisioningStatus"] == "disabled"
    assert dps.request("DELETE", f"/enrollments/{registration_id}", headers={"If-Match": "*"}).status_code == 204
    missing = dps.request("GET", f"/enrollments/{registration_id}")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, 404201)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"attestation": {"type": "tpm"}}, "not supported"),
        ({"attestation": _symmetric("not base64!")}, "primaryKey is not valid base64"),
        ({"attestation": _symmetric(base64.b64encode(b"short").decode())}, "16 to 64 bytes"),
        ({"attestation": _symmetric(), "allocationPolicy": "nearest"}, "'allocationPolicy'"),
        ({"attestation": _symmetric(), "allocationPolicy": "custom"}, "needs 'customAllocationDefinition"),
        ({"attestation": _symmetric(), "allocationPolicy": "static", "iotHubs": ["a", "b"]}, "exactly one hub"),
        ({"attestation": _symmetric(), "provisioningStatus": "paused"}, "'provisioningStatus'"),
        ({"attestation": _symmetric(), "capabilities": {"iotEdge": "yes"}}, "'iotEdge' must be true or false"),
        ({"attestation": _symmetric(), "initialTwin": {"tags": {"bad.key": 1}}}, "contains '.'"),
        ({"attestation": _symmetric(), "enrollmentGroupId": "other"}, "differs from the path"),
        ({"attestation": _symmetric(), "customAllocationDefinition": {"webhookUrl": "ftp://x"}}, "http(s) URL"),
    ],
)
def test_bad_enrollment_bodies_are_refused_and_change_nothing(
    server: Server, body: dict[str, object], expected: str
) -> None:
    group_id = unique("bad")
    before = dump_state(server)
    response = server.dps().request("PUT", f"/enrollmentGroups/{group_id}", body)
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == 400004
    assert expected in response.json()["message"]
    assert dump_state(server) == before


@pytest.mark.spec("dps-protocol.md §5.2")
def test_bulk_operations_report_each_item(server: Server) -> None:
    dps = server.dps()
    ids = [unique("bulk") for _ in range(3)]
    items = [{"registrationId": i, "attestation": _symmetric()} for i in ids]
    created = dps.request("POST", "/enrollments", {"mode": "create", "enrollments": items}).json()
    assert created == {"isSuccessful": True, "errors": []}
    again = dps.request("POST", "/enrollments", {"mode": "create", "enrollments": items[:1]}).json()
    assert again["isSuccessful"] is False
    assert again["errors"][0]["registrationId"] == ids[0]
    assert again["errors"][0]["errorCode"] == 412002
    deleted = dps.request("POST", "/enrollments", {"mode": "delete", "enrollments": items}).json()
    assert deleted["isSuccessful"] is True
    too_many = dps.request("POST", "/enrollments", {"mode": "create", "enrollments": items * 4})
    assert too_many.status_code == 400
    assert "at most 10" in too_many.json()["message"]


@pytest.mark.spec("dps-protocol.md §5.2")
def test_query_pages_with_continuation(server: Server) -> None:
    dps = server.dps()
    prefix = unique("page")
    for n in range(5):
        dps.request("PUT", f"/enrollmentGroups/{prefix}-{n}", {"attestation": _symmetric()})
    seen: list[str] = []
    continuation = None
    while True:
        headers = {"x-ms-max-item-count": "3", **({"x-ms-continuation": continuation} if continuation else {})}
        page = dps.request("POST", "/enrollmentGroups/query", {"query": "SELECT *"}, headers=headers)
        assert page.status_code == 200
        assert page.headers["x-ms-item-type"] == "EnrollmentGroup"
        seen += [g["enrollmentGroupId"] for g in page.json()]
        continuation = page.headers.get("x-ms-continuation")
        if not continuation:
            break
    assert [f"{prefix}-{n}" for n in range(5)] == [s for s in seen if s.startswith(prefix)]
    refused = dps.request("POST", "/enrollmentGroups/query", {"query": "SELECT * WHERE x = 1"})
    assert refused.status_code == 400


def test_service_tokens_are_checked(server: Server) -> None:
    dps = server.dps()
    dps.key = sas.generate_key(32)
    response = dps.request("GET", "/enrollmentGroups/anything")
    assert (response.status_code, response.json()["errorCode"]) == (401, 401002)
    assert "matches no key of policy 'provisioningserviceowner'" in response.json()["message"]
    hub_token_on_dps = server.hub()
    hub_token_on_dps.key_name = "registryRead"
    assert hub_token_on_dps.request("GET", "/enrollmentGroups/anything").status_code == 401


@pytest.mark.spec("dps-protocol.md §2.4")
def test_cli_computes_device_keys_offline_and_from_the_service(server: Server) -> None:
    published = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
    offline = server.cli_ok(
        "dps", "compute-device-key", "--key", published, "--registration-id", "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
    )
    assert offline.out.strip() == "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
    group = create_group(server.dps())
    online = server.cli_ok(
        "dps", "enrollment-group", "compute-device-key", "--enrollment-id", group.id, "--registration-id", "edge-01"
    )
    assert online.out.strip() == group.device_key("edge-01")
    bad = server.cli("dps", "compute-device-key", "--key", "not base64", "--registration-id", "x")
    assert bad.code == 1
    assert "--key: group key is not valid base64" in bad.err


def test_cli_enrollment_lifecycle_with_az_flag_names(server: Server) -> None:
    group_id = unique("cli")
    created = server.cli_ok(
        "dps", "enrollment-group", "create", "--enrollment-id", group_id, "--edge-enabled", "true",
        "--initial-twin-tags", '{"environment":"test"}', "--initial-twin-properties", '{"interval":30}',
        "--reprovision-policy", "reprovisionandresetdata", "--allocation-policy", "static", "--iot-hubs", "localhost",
    ).json()  # fmt: skip
    assert created["capabilities"] == {"iotEdge": True}
    assert created["reprovisionPolicy"] == {"updateHubAssignment": True, "migrateDeviceData": False}
    assert (created["allocationPolicy"], created["iotHubs"]) == ("static", ["localhost"])
    assert "symmetricKey" not in created["attestation"]
    updated = server.cli_ok(
        "dps",
        "enrollment-group",
        "update",
        "--enrollment-id",
        group_id,
        "--provisioning-status",
        "disabled",
        "--edge-enabled",
        "false",
    ).json()
    assert (updated["provisioningStatus"], updated["capabilities"]["iotEdge"]) == ("disabled", False)
    assert updated["initialTwin"]["tags"] == {"environment": "test"}, "update keeps what it was not told to change"
    shown = server.cli_ok("dps", "enrollment-group", "show", "--enrollment-id", group_id, "--show-keys").json()
    assert set(shown["attestation"]["symmetricKey"]) == {"primaryKey", "secondaryKey"}
    table = server.cli_ok("dps", "enrollment-group", "list").out
    row = next(line for line in table.splitlines() if group_id in line)
    assert "reprovisionandresetdata" in row
    server.cli_ok("dps", "enrollment-group", "delete", "--enrollment-id", group_id)
    gone = server.cli("dps", "enrollment-group", "show", "--enrollment-id", group_id)
    assert gone.code == 1
    assert "does not exist" in gone.err
    bad_json = server.cli("dps", "enrollment", "create", "--enrollment-id", unique("x"), "--initial-twin-tags", "{nope")
    assert bad_json.code == 1
    assert "--initial-twin-tags is not valid JSON" in bad_json.err


def test_simulate_shows_what_would_happen_and_changes_nothing(server: Server) -> None:
    group = create_group(server.dps(), initialTwin={"tags": {"environment": "test"}}, capabilities={"iotEdge": True})
    device = unique("sim")
    before = dump_state(server)
    result = server.cli("dps", "registration", "simulate", "--registration-id", device, "--enrollment-id", group.id)
    assert result.code == 0, result.err
    plan = result.json()
    assert plan["outcome"] == "assigned"
    assert (plan["assignedHub"], plan["deviceId"], plan["substatus"]) == ("localhost", device, "initialAssignment")
    assert plan["initialTwin"]["tags"] == {"environment": "test"}
    assert plan["edgeEnabled"] is True
    assert dump_state(server) == before

    provision(server, device, group.device_key(device))
    again = server.cli_ok("dps", "registration", "simulate", "--registration-id", device, "--enrollment-id", group.id)
    assert again.json()["currentRegistration"]["status"] == "assigned"
    assert again.json()["effect"] == "stays on localhost; device data kept"

    disabled = create_group(server.dps(), provisioningStatus="disabled")
    refused = server.cli(
        "dps", "registration", "simulate", "--registration-id", unique("sim"), "--enrollment-id", disabled.id
    )
    assert refused.code == 1
    assert refused.json()["outcome"] == "disabled"
    unknown = server.cli(
        "dps", "registration", "simulate", "--registration-id", unique("sim"), "--enrollment-id", "no-such-group"
    )
    assert "no enrollment group 'no-such-group'" in unknown.json()["reason"]


def test_attempt_log_lists_successes_and_failures(server: Server) -> None:
    group = create_group(server.dps())
    device = unique("log")
    provision(server, device, group.device_key(device))
    register(server, device, token(server, device, group.primary))
    listed = server.cli_ok("dps", "attempts", "list", "--registration-id", device, "-o", "json").json()
    assert [a["outcome"] for a in listed] == ["refused", "assigned"]
    assert listed[1]["assignedHub"] == "localhost"
    assert listed[1]["source"].startswith("127.0.0.1:")
    failed = server.cli_ok("dps", "attempts", "list", "--enrollment-id", group.id, "--failed", "-o", "json").json()
    assert [a["reason"] for a in failed] == ["group-key-used"]
