"""Module identities in the hub, managed with the device's own SAS as aziot-identityd does (§3.3)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from edgeprov import sas
from edgeprov.device.settings import DeviceKey
from edgeprov.device.state import Identity
from edgeprov.device.transport import HttpSettings, unreachable
from edgeprov.errors import IdentityRejected, ServiceUnreachable

API_VERSION = "2017-11-08-preview"
TOKEN_TTL = 30
EDGE_MODULES = ("$edgeAgent", "$edgeHub")


@dataclass(frozen=True, slots=True)
class ModuleIdentity:
    module_id: str
    generation_id: str


def device_token(identity: Identity, key: DeviceKey, now: float) -> str:
    """A device token: ``sr`` the lower-cased ``{hub}/devices/{deviceId}``, no ``skn``, 30 s."""
    resource = quote(f"{identity.hub}/devices/{identity.device_id}".lower(), safe="")
    return sas.build_token(resource, key.raw, int(now) + TOKEN_TTL, encode=False)


class ModuleIdentities:
    def __init__(self, http: HttpSettings) -> None:
        self._http = http

    async def ensure(self, identity: Identity, key: DeviceKey, module_ids: tuple[str, ...]) -> list[ModuleIdentity]:
        """Each module identity, created where it does not exist yet."""
        headers = {"Authorization": device_token(identity, key, time.time())}
        device = quote(identity.device_id, safe="")
        found: list[ModuleIdentity] = []
        try:
            async with self._http.client(identity.hub) as client:
                for module_id in module_ids:
                    path = f"/devices/{device}/modules/{quote(module_id, safe='')}"
                    response = await client.get(path, params={"api-version": API_VERSION}, headers=headers)
                    if response.status_code == 404:
                        body = {"moduleId": module_id, "deviceId": identity.device_id}
                        response = await client.put(
                            path, params={"api-version": API_VERSION}, json=body, headers=headers
                        )
                    _check(response, identity)
                    found.append(ModuleIdentity(module_id, str(response.json().get("generationId", ""))))
        except httpx.HTTPError as exc:
            raise unreachable(identity.hub, exc) from None
        return found


def _check(response: httpx.Response, identity: Identity) -> None:
    if response.status_code < 300:
        return
    try:
        message = str(response.json().get("Message") or response.text)
    except ValueError:
        message = response.text
    if response.status_code in (401, 403, 404):
        raise IdentityRejected(
            f"hub {identity.hub} refused device {identity.device_id!r} (HTTP {response.status_code}): {message[:300]}"
        )
    raise ServiceUnreachable(f"hub {identity.hub} answered HTTP {response.status_code}: {message[:300]}")
