"""A device manages its own module identities with its own SAS, exactly as aziot-identityd does.

spec/edge-runtime.md §3.3 and spec/hub-protocol.md §5.1: api-version 2017-11-08-preview, a
token over the lower-cased ``{hub}/devices/{deviceId}`` with no ``skn`` and a 30-second expiry,
``Content-Type: application/json``, create then update with ``If-Match: *``, delete with
``If-Match: *``; every PUT must answer 200 and carry ``generationId``. The same token reaches
nothing else: not another device's modules, not any other route.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from urllib.parse import quote_plus

import httpx
import pytest
from starlette.routing import Route

from edgeprov import sas
from edgeprov.api import dps_service, hub_service
from tests.support import Server, ServiceCaller, dump_state, unique

API_VERSION = "2017-11-08-preview"
OWN_MODULE_ROUTES = ("/devices/{device}/modules", "/devices/{device}/modules/{module}")


def identityd_token(hub: str, device_id: str, key_b64: str, expiry: int | None = None) -> str:
    """The token aziot-identityd signs: raw lower-cased resource, form-encoded signature, no skn."""
    resource = f"{hub}/devices/{device_id}".lower()
    se = expiry if expiry is not None else int(time.time()) + 30
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key_b64), f"{resource}\n{se}".encode(), hashlib.sha256).digest()
    )
    return f"SharedAccessSignature sr={resource}&sig={quote_plus(signature.decode())}&se={se}"


def derive_module_key(master: bytes, module_id: str, generation_id: str, which: str) -> str:
    return base64.b64encode(
        hmac.new(master, f"{module_id}:{generation_id}:{which}".encode(), hashlib.sha256).digest()
    ).decode()


class Identityd:
    """The module calls of aziot-identityd, each with a fresh device token, as it makes them."""

    def __init__(self, client: httpx.Client, device_id: str, key: str) -> None:
        self.device_id, self.key = device_id, key
        self.client = client

    def request(self, method: str, path: str, body: object = None, if_match: bool = False) -> httpx.Response:
        headers = {"Authorization": identityd_token("localhost", self.device_id, self.key)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if if_match:
            headers["If-Match"] = "*"
        content = None if body is None else httpx.Request("PUT", "/", json=body).content
        return self.client.request(method, f"{path}?api-version={API_VERSION}", content=content, headers=headers)

    def module_path(self, module_id: str, device_id: str | None = None) -> str:
        return f"/devices/{device_id or self.device_id}/modules/{module_id}"


@pytest.fixture
def edge_device(hub: ServiceCaller) -> Iterator[tuple[str, str]]:
    device_id = unique("edge-sas")
    created = hub.request("PUT", f"/devices/{device_id}", {"deviceId": device_id, "capabilities": {"iotEdge": True}})
    assert created.status_code == 200, created.text
    yield device_id, created.json()["authentication"]["symmetricKey"]["primaryKey"]
    hub.request("DELETE", f"/devices/{device_id}", headers={"If-Match": "*"})


@pytest.mark.spec("edge-runtime.md §3.3")
def test_identityd_creates_keys_lists_updates_and_deletes_its_modules(
    http: httpx.Client, edge_device: tuple[str, str]
) -> None:
    device_id, key = edge_device
    identityd = Identityd(http, device_id, key)
    master = b"aziot_identityd_master_id-0123456789"

    created = identityd.request("PUT", identityd.module_path("weather"), {"moduleId": "weather", "deviceId": device_id})
    assert created.status_code == 200, created.text
    generation = created.json()["generationId"]
    assert generation
    keys = {w + "Key": derive_module_key(master, "weather", generation, w) for w in ("primary", "secondary")}
    body = {"moduleId": "weather", "deviceId": device_id, "authentication": {"symmetricKey": keys, "type": "sas"}}
    updated = identityd.request("PUT", identityd.module_path("weather"), body, if_match=True)
    assert updated.status_code == 200, updated.text
    assert updated.json()["authentication"]["symmetricKey"] == keys
    assert updated.json()["generationId"] == generation

    listed = identityd.request("GET", f"/devices/{device_id}/modules")
    assert listed.status_code == 200
    assert [m["moduleId"] for m in listed.json()] == ["$edgeAgent", "$edgeHub", "weather"]
    assert all(m["generationId"] for m in listed.json())

    # aziot-edged's identity for $edgeAgent: GET the module the hub made, then PUT its derived keys.
    agent = identityd.request("GET", identityd.module_path("$edgeAgent"))
    assert agent.status_code == 200
    agent_keys = {
        w + "Key": derive_module_key(master, "$edgeAgent", agent.json()["generationId"], w)
        for w in ("primary", "secondary")
    }
    agent_body = {
        "moduleId": "$edgeAgent",
        "deviceId": device_id,
        "authentication": {"symmetricKey": agent_keys, "type": "sas"},
    }
    assert identityd.request("PUT", identityd.module_path("$edgeAgent"), agent_body, if_match=True).status_code == 200

    deleted = identityd.request("DELETE", identityd.module_path("weather"), if_match=True)
    assert deleted.status_code == 204
    assert identityd.request("GET", identityd.module_path("weather")).status_code == 404


def _routes() -> Iterator[tuple[str, str]]:
    for route in (*hub_service.ROUTES, *dps_service.ROUTES):
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                yield method, route.path


@pytest.mark.spec("hub-protocol.md §5.1")
def test_a_device_token_reaches_nothing_but_its_own_modules(
    server: Server, hub: ServiceCaller, http: httpx.Client, edge_device: tuple[str, str]
) -> None:
    device_id, key = edge_device
    other = unique("other")
    made = hub.request("PUT", f"/devices/{other}", {"deviceId": other, "capabilities": {"iotEdge": True}})
    assert made.status_code == 200
    identityd = Identityd(http, device_id, key)
    mine = identityd.request("PUT", identityd.module_path("mine"), {"moduleId": "mine", "deviceId": device_id})
    assert mine.status_code == 200
    before = dump_state(server)

    refused = []
    for method, template in _routes():
        own = template in OWN_MODULE_ROUTES
        values = {"device": other if own else device_id, "module": "mine", "id": "x", "name": "x"}
        path = template.format(**values)
        body = {"moduleId": "mine", "deviceId": other} if method in ("PUT", "POST", "PATCH") else None
        response = identityd.request(method, path, body, if_match=method != "GET")
        refused.append((method, path, response.status_code))
    assert {status for _, _, status in refused} == {401}, [r for r in refused if r[2] != 401]
    assert len(refused) > 20
    assert dump_state(server) == before


@pytest.mark.spec("hub-protocol.md §5.1")
def test_device_tokens_that_are_wrong_are_refused(
    hub: ServiceCaller, http: httpx.Client, edge_device: tuple[str, str]
) -> None:
    device_id, key = edge_device
    client = http
    path = f"/devices/{device_id}/modules?api-version={API_VERSION}"
    wrong_key = base64.b64encode(b"k" * 32).decode()
    module_token = sas.token_for(f"localhost/devices/{device_id}/modules/$edgeAgent", key, 30)
    cases = {
        "wrong key": identityd_token("localhost", device_id, wrong_key),
        "expired": identityd_token("localhost", device_id, key, int(time.time()) - 3600),
        "module resource": module_token,
        "other hub": identityd_token("elsewhere", device_id, key),
        "no token": "",
    }
    for case, token in cases.items():
        response = client.get(path, headers={"Authorization": token} if token else {})
        assert response.status_code == 401, (case, response.text)
        assert response.json()["Message"].startswith("ErrorCode:IotHubUnauthorizedAccess;"), case

    hub.request(
        "PUT", f"/devices/{device_id}", {"deviceId": device_id, "status": "disabled"}, headers={"If-Match": "*"}
    )
    disabled = client.get(path, headers={"Authorization": identityd_token("localhost", device_id, key)})
    assert disabled.status_code == 401
    assert "disabled" in disabled.json()["message"]
