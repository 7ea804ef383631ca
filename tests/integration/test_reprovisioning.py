"""Allocation across hubs, reprovision policies and registration records (spec/dps-protocol.md §7)."""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.integration.dps_helpers import Group, create_group, create_individual, provision
from tests.support import Server, running, unique

# The first hub is also the service's own name, which the admin CLI must resolve.
HUB1, HUB2 = "localhost", "hub2.edgeprov.test"


@pytest.fixture(scope="module")
def two_hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("hubs") / "data", "--hub-hostname", HUB1, "--hub-hostname", HUB2) as srv:
        response = srv.dps().request("PUT", f"/edgeprov/dps/linkedHubs/{HUB2}", {"allocationWeight": 1})
        assert response.status_code == 200, response.text
        yield srv


def _device(server: Server, hub: str, device_id: str) -> dict[str, Any] | None:
    response = server.hub(hub).request("GET", f"/devices/{device_id}")
    return response.json() if response.status_code == 200 else None


def _twin(server: Server, hub: str, device_id: str) -> dict[str, Any]:
    response = server.hub(hub).request("GET", f"/twins/{device_id}")
    assert response.status_code == 200, response.text
    twin: dict[str, Any] = response.json()
    return twin


def _set_hubs(server: Server, group: Group, hubs: list[str], **fields: Any) -> None:
    dps = server.dps()
    current = dps.request("GET", f"/enrollmentGroups/{group.id}").json()
    current.update(iotHubs=hubs, **fields)
    current.pop("attestation")
    response = dps.request("PUT", f"/enrollmentGroups/{group.id}", current, headers={"If-Match": current["etag"]})
    assert response.status_code == 200, response.text


def _patch_desired(server: Server, hub: str, device_id: str, desired: dict[str, Any]) -> None:
    response = server.hub(hub).request(
        "PATCH", f"/twins/{device_id}", {"properties": {"desired": desired}}, headers={"If-Match": '"*"'}
    )
    assert response.status_code == 200, response.text


TWIN = {"tags": {"environment": "test"}, "properties": {"desired": {"interval": 30}}}


@pytest.mark.spec("dps-protocol.md §7.3")
def test_migrate_policy_moves_the_twin_and_returns_home(two_hubs: Server) -> None:
    group = create_group(two_hubs.dps(), iotHubs=[HUB1], initialTwin=TWIN)
    device = unique("dev")
    first = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert (first["assignedHub"], first["substatus"]) == (HUB1, "initialAssignment")
    _patch_desired(two_hubs, HUB1, device, {"interval": 5})

    again = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert (again["assignedHub"], again["substatus"]) == (HUB1, "initialAssignment")
    assert _twin(two_hubs, HUB1, device)["properties"]["desired"]["interval"] == 5

    _set_hubs(two_hubs, group, [HUB2])
    moved = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert (moved["assignedHub"], moved["substatus"]) == (HUB2, "deviceDataMigrated")
    twin = _twin(two_hubs, HUB2, device)
    assert twin["properties"]["desired"]["interval"] == 5
    assert twin["tags"] == {"environment": "test"}
    assert _device(two_hubs, HUB1, device) is None

    _set_hubs(two_hubs, group, [HUB1])
    home = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert (home["assignedHub"], home["substatus"]) == (HUB1, "reprovisionedToInitialAssignment")
    assert _twin(two_hubs, HUB1, device)["properties"]["desired"]["interval"] == 5


@pytest.mark.spec("dps-protocol.md §7.3")
def test_reset_policy_resets_the_twin_on_the_same_and_on_a_new_hub(two_hubs: Server) -> None:
    reset = {"updateHubAssignment": True, "migrateDeviceData": False}
    group = create_group(two_hubs.dps(), iotHubs=[HUB1], initialTwin=TWIN, reprovisionPolicy=reset)
    device = unique("dev")
    provision(two_hubs, device, group.device_key(device))
    _patch_desired(two_hubs, HUB1, device, {"interval": 5})

    again = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert (again["assignedHub"], again["substatus"]) == (HUB1, "deviceDataReset")
    desired = _twin(two_hubs, HUB1, device)["properties"]["desired"]
    assert desired["interval"] == 30
    assert desired["$version"] == 3, "versions keep moving forward through a reset"

    _set_hubs(two_hubs, group, [HUB2])
    moved = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert (moved["assignedHub"], moved["substatus"]) == (HUB2, "deviceDataReset")
    assert _twin(two_hubs, HUB2, device)["properties"]["desired"]["interval"] == 30
    assert _device(two_hubs, HUB1, device) is None


@pytest.mark.spec("dps-protocol.md §7.3")
def test_never_policy_keeps_the_device_where_it_is(two_hubs: Server) -> None:
    never = {"updateHubAssignment": False, "migrateDeviceData": False}
    group = create_group(two_hubs.dps(), iotHubs=[HUB1], initialTwin=TWIN, reprovisionPolicy=never)
    device = unique("dev")
    provision(two_hubs, device, group.device_key(device))
    _set_hubs(two_hubs, group, [HUB2])
    again = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert (again["assignedHub"], again["substatus"]) == (HUB1, "initialAssignment")
    assert _device(two_hubs, HUB2, device) is None


def test_deleting_the_record_lets_the_device_register_afresh(two_hubs: Server) -> None:
    group = create_group(two_hubs.dps(), iotHubs=[HUB1], initialTwin=TWIN)
    device = unique("dev")
    first = provision(two_hubs, device, group.device_key(device))["registrationState"]
    _patch_desired(two_hubs, HUB1, device, {"interval": 5})
    two_hubs.cli_ok("dps", "registration", "delete", "--registration-id", device)
    assert two_hubs.cli("dps", "registration", "show", "--registration-id", device).code == 1
    fresh = provision(two_hubs, device, group.device_key(device))["registrationState"]
    assert fresh["substatus"] == "initialAssignment"
    assert fresh["createdDateTimeUtc"] >= first["lastUpdatedDateTimeUtc"]
    assert _twin(two_hubs, HUB1, device)["properties"]["desired"]["interval"] == 30


@pytest.mark.spec("dps-protocol.md §7.1")
def test_hashed_allocation_is_stable_and_follows_the_weights(two_hubs: Server) -> None:
    dps = two_hubs.dps()
    assert dps.request("PUT", f"/edgeprov/dps/linkedHubs/{HUB1}", {"allocationWeight": 3}).status_code == 200
    try:
        group = create_group(dps)
        devices = [unique("hash") for _ in range(120)]
        first = {d: provision(two_hubs, d, group.device_key(d))["registrationState"]["assignedHub"] for d in devices}
        counts = collections.Counter(first.values())
        assert counts[HUB1] > counts[HUB2] > 0
        again = {
            d: provision(two_hubs, d, group.device_key(d))["registrationState"]["assignedHub"] for d in devices[:20]
        }
        assert all(again[d] == first[d] for d in again)
    finally:
        dps.request("PUT", f"/edgeprov/dps/linkedHubs/{HUB1}", {"allocationWeight": 1})


def test_static_allocation_uses_the_named_hub_and_individual_device_id(two_hubs: Server) -> None:
    registration_id, key = create_individual(
        two_hubs.dps(), allocationPolicy="static", iotHubs=[HUB2], deviceId="custom-device-id"
    )
    state = provision(two_hubs, registration_id, key)["registrationState"]
    assert (state["assignedHub"], state["deviceId"]) == (HUB2, "custom-device-id")
    assert _device(two_hubs, HUB2, "custom-device-id") is not None


class _Webhook(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, Any]]] = {}
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Webhook.received.append({"path": self.path, "body": body})
        status, answer = _Webhook.answers[body["deviceRuntimeContext"]["registrationId"]]
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api/allocate?code=secret-function-key"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.spec("dps-protocol.md §6")
def test_custom_allocation_webhook_chooses_hub_twin_and_payload(two_hubs: Server, webhook: str) -> None:
    group = create_group(
        two_hubs.dps(), allocationPolicy="custom", iotHubs=[HUB1, HUB2], initialTwin=TWIN,
        customAllocationDefinition={"webhookUrl": webhook, "apiVersion": "2021-10-01"},
    )  # fmt: skip
    device = unique("custom")
    _Webhook.answers[device] = (200, {
        "iotHubHostName": HUB2,
        "initialTwin": {"tags": {"deviceType": "toaster"}, "properties": {"desired": {"state": "ready"}}},
        "payload": {"message": "Success"},
    })  # fmt: skip
    state = provision(two_hubs, device, group.device_key(device), payload={"modelId": "dtmi:x;1"})["registrationState"]
    assert state["assignedHub"] == HUB2
    assert state["payload"] == {"message": "Success"}
    twin = _twin(two_hubs, HUB2, device)
    assert twin["tags"] == {"deviceType": "toaster"}
    assert twin["properties"]["desired"]["state"] == "ready"
    request = _Webhook.received[-1]["body"]
    assert request["deviceRuntimeContext"] == {
        "registrationId": device, "symmetricKey": {}, "payload": {"modelId": "dtmi:x;1"},
    }  # fmt: skip
    assert sorted(request["linkedHubs"]) == sorted([HUB1, HUB2])
    assert request["enrollmentGroup"]["attestation"] == {"type": "symmetricKey"}, "keys never leave the service"
    assert group.primary not in json.dumps(request)


@pytest.mark.spec("dps-protocol.md §6")
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((500, {"error": "boom"}), "answered HTTP 500"),
        ((200, {"iotHubHostName": "elsewhere.example.test"}), "not among the enrollment's linked hubs"),
        ((200, {"payload": 1}), "without 'iotHubHostName'"),
    ],
)
def test_custom_allocation_failures_are_clear(
    two_hubs: Server, webhook: str, answer: tuple[int, Any], expected: str
) -> None:
    group = create_group(
        two_hubs.dps(), allocationPolicy="custom", iotHubs=[HUB1],
        customAllocationDefinition={"webhookUrl": webhook},
    )  # fmt: skip
    device = unique("custom")
    _Webhook.answers[device] = answer
    result = provision(two_hubs, device, group.device_key(device))
    assert result["status"] == "failed"
    message = result["registrationState"]["errorMessage"]
    assert expected in message
    assert "secret-function-key" not in message, "the function key in the URL is never echoed"
    assert _device(two_hubs, HUB1, device) is None


def test_registration_records_list_every_device_of_a_group(two_hubs: Server, tmp_path: Path) -> None:
    group = create_group(two_hubs.dps(), iotHubs=[HUB1])
    devices = sorted(unique("rec") for _ in range(5))
    for device in devices:
        provision(two_hubs, device, group.device_key(device))
    dps = two_hubs.dps()
    listed: list[str] = []
    continuation = None
    while True:
        headers = {"x-ms-max-item-count": "2", **({"x-ms-continuation": continuation} if continuation else {})}
        page = dps.request("POST", f"/registrations/{group.id}/query", {"query": "*"}, headers=headers)
        assert page.status_code == 200
        listed += [r["registrationId"] for r in page.json()]
        continuation = page.headers.get("x-ms-continuation")
        if not continuation:
            break
    assert listed == devices
    table = two_hubs.cli_ok("dps", "registration", "list", "--enrollment-id", group.id).out
    assert all(device in table for device in devices)


@pytest.mark.spec("dps-protocol.md §7.1")
def test_static_allocation_without_a_hub_fails(two_hubs: Server) -> None:
    group = create_group(two_hubs.dps(), allocationPolicy="static")
    device = unique("static")
    result = provision(two_hubs, device, group.device_key(device))
    assert result["status"] == "failed"
    assert result["registrationState"]["errorCode"] == 400208
    assert "names no hub" in result["registrationState"]["errorMessage"]


class _SlowWebhook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        threading.Event().wait(3)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_a_webhook_that_does_not_answer_in_time_fails_the_registration(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SlowWebhook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with running(tmp_path / "data", "--webhook-timeout", "0.5") as server:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/slow"
            group = create_group(
                server.dps(), allocationPolicy="custom", customAllocationDefinition={"webhookUrl": url}
            )
            device = unique("slow")
            result = provision(server, device, group.device_key(device))
            assert result["status"] == "failed"
            assert "no answer within 0.5 s" in result["registrationState"]["errorMessage"]
            assert result["registrationState"]["errorCode"] == 400210
    finally:
        httpd.shutdown()
        httpd.server_close()
