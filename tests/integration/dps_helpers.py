"""Registering devices over the HTTPS device API the way the official clients do, for the tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from edgeprov import sas
from tests.support import Server, ServiceCaller, unique

API = "2019-03-31"


@dataclass
class Group:
    id: str
    primary: str
    secondary: str

    def device_key(self, registration_id: str, *, secondary: bool = False) -> str:
        return sas.derive_device_key_b64(self.secondary if secondary else self.primary, registration_id)


def create_group(dps: ServiceCaller, **fields: Any) -> Group:
    group_id = fields.pop("enrollmentGroupId", None) or unique("grp")
    primary, secondary = sas.generate_key(), sas.generate_key()
    body = {
        "enrollmentGroupId": group_id,
        "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": primary, "secondaryKey": secondary}},
        **fields,
    }
    response = dps.request("PUT", f"/enrollmentGroups/{group_id}", body)
    assert response.status_code == 200, response.text
    return Group(group_id, primary, secondary)


def create_individual(dps: ServiceCaller, registration_id: str | None = None, **fields: Any) -> tuple[str, str]:
    registration_id = registration_id or unique("ind")
    key = sas.generate_key()
    body = {
        "registrationId": registration_id,
        "attestation": {
            "type": "symmetricKey",
            "symmetricKey": {"primaryKey": key, "secondaryKey": sas.generate_key()},
        },
        **fields,
    }
    response = dps.request("PUT", f"/enrollments/{registration_id}", body)
    assert response.status_code == 200, response.text
    return registration_id, key


def token(server: Server, registration_id: str, key: str, *, ttl: int = 3600, encode: str = "python") -> str:
    """A registration token in one of the official clients' encodings (spec/dps-protocol.md §2.3)."""
    resource = f"{server.id_scope}/registrations/{registration_id}"
    raw_key = sas.decode_key(key)
    expiry = int(time.time()) + ttl
    if encode == "aziot":
        return sas.build_token(resource.lower(), raw_key, expiry, "registration", encode=False)
    if encode == "node":
        return sas.build_token(resource, raw_key, expiry, "registration", encode=False)
    return sas.build_token(resource, raw_key, expiry)


def register(
    server: Server, registration_id: str, authorization: str, *, payload: Any = None, api_version: str = API
) -> httpx.Response:
    body: dict[str, Any] = {"registrationId": registration_id}
    if payload is not None:
        body["payload"] = payload
    with server.http() as client:
        return client.put(
            f"/{server.id_scope}/registrations/{quote(registration_id)}/register?api-version={api_version}",
            json=body,
            headers={"Authorization": authorization},
        )


def poll(server: Server, registration_id: str, operation_id: str, authorization: str) -> httpx.Response:
    with server.http() as client:
        return client.get(
            f"/{server.id_scope}/registrations/{quote(registration_id)}/operations/{operation_id}?api-version={API}",
            headers={"Authorization": authorization},
        )


def provision(server: Server, registration_id: str, key: str, **kwargs: Any) -> dict[str, Any]:
    """Register and poll once, as a device does; returns the final RegistrationOperationStatus."""
    authorization = token(server, registration_id, key)
    accepted = register(server, registration_id, authorization, **kwargs)
    assert accepted.status_code == 202, accepted.text
    answer = poll(server, registration_id, accepted.json()["operationId"], authorization)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result
