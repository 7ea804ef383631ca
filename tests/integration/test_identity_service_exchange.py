"""The exact HTTP exchange aziot-identityd makes when it provisions (spec/edge-runtime.md §3.1)."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import Any

import pytest

from edgeprov import sas
from tests.integration.dps_helpers import create_group
from tests.support import Server, unique


def _exchange(
    server: Server, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, dict[str, str], Any]:
    context = ssl.create_default_context(cafile=str(server.ca))
    connection = http.client.HTTPSConnection("localhost", server.https_port, context=context, timeout=30)
    try:
        # skip_host/skip_accept_encoding: identityd sends only the headers it names, plus Host.
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data) if data else None
    finally:
        connection.close()


@pytest.mark.spec("edge-runtime.md §3.1")
def test_identity_service_register_and_poll_exchange(server: Server) -> None:
    group = create_group(server.dps(), capabilities={"iotEdge": True}, initialTwin={"tags": {"environment": "test"}})
    registration_id = unique("Edge-Device")  # identityd lower-cases the audience, not the path
    key = sas.decode_key(group.device_key(registration_id))
    audience = f"{server.id_scope}/registrations/{registration_id}".lower()
    # identityd percent-encodes the lower-cased audience as a path segment, so "/" stays.
    authorization = sas.build_token(audience, key, int(time.time()) + 30, "registration", encode=False)
    base = f"/{server.id_scope}/registrations/{registration_id}"

    status, headers, body = _exchange(
        server,
        "PUT",
        f"{base}/register?api-version=2021-06-01",
        {"Content-Type": "application/json", "Authorization": authorization},
        json.dumps({"registrationId": registration_id}).encode(),
    )  # identityd's exact request: these two headers and Host, nothing else
    assert status == 202, body
    assert "application/json" in headers["content-type"]
    assert isinstance(body["operationId"], str)
    assert body["status"] == "assigning"
    assert int(headers["retry-after"]) >= 1

    status, headers, body = _exchange(
        server, "GET", f"{base}/operations/{body['operationId']}?api-version=2021-06-01",
        {"Authorization": authorization}, None,
    )  # fmt: skip
    assert status in (200, 202)
    assert "application/json" in headers["content-type"]
    assert body["status"] == "assigned"
    state = body["registrationState"]
    assert state["assignedHub"] == "localhost"
    assert state["deviceId"] == registration_id
    assert state["registrationId"] == registration_id
    twin = server.cli_ok("hub", "device-twin", "show", "--device-id", registration_id).json()
    assert twin["tags"] == {"environment": "test"}
    assert twin["capabilities"] == {"iotEdge": True}


def _json_call(server: Server, method: str, path: str, authorization: str, registration_id: str) -> tuple[int, Any]:
    """A call with identityd's two headers and the DeviceRegistration body."""
    headers = {"Content-Type": "application/json", "Authorization": authorization}
    status, _, body = _exchange(server, method, path, headers, json.dumps({"registrationId": registration_id}).encode())
    return status, body


@pytest.mark.spec("dps-protocol.md §1.3")
def test_registration_status_lookup(server: Server) -> None:
    group = create_group(server.dps())
    registration_id = unique("dev")
    authorization = sas.token_for(
        f"{server.id_scope}/registrations/{registration_id}", group.device_key(registration_id)
    )
    base = f"/{server.id_scope}/registrations/{registration_id}"
    status, body = _json_call(server, "POST", f"{base}?api-version=2021-06-01", authorization, registration_id)
    assert status == 404
    assert body["errorCode"] == 404202
    _json_call(server, "PUT", f"{base}/register?api-version=2021-06-01", authorization, registration_id)
    status, body = _json_call(server, "POST", f"{base}?api-version=2021-06-01", authorization, registration_id)
    assert status == 200
    assert body["status"] == "assigned"
    assert body["registrationId"] == registration_id
    assert body["symmetricKey"] == {"enrollmentGroupId": group.id}
