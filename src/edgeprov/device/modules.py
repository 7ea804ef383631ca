"""Module identities in the hub, managed with the device's own SAS as aziot-identityd does (§3.3).

Each module is read (created when missing), then given keys derived on the device with ``If-Match: *``
unless the hub already holds exactly those: a restart writes nothing, a module made again (new
``generationId``) or whose keys were changed in the hub gets the device's keys back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from edgeprov import sas
from edgeprov.device.module_keys import derive_module_keys
from edgeprov.device.settings import DeviceKey
from edgeprov.device.state import Identity
from edgeprov.device.transport import HttpSettings, unreachable
from edgeprov.errors import IdentityRejected, ServiceUnreachable
from edgeprov.types import JsonObject

API_VERSION = "2017-11-08-preview"
TOKEN_TTL = 30
EDGE_AGENT = "$edgeAgent"
EDGE_MODULES = (EDGE_AGENT, "$edgeHub")


@dataclass(frozen=True, slots=True)
class ModuleIdentity:
    module_id: str
    generation_id: str
    key: DeviceKey  # the derived primary key: what the module signs its SAS tokens with


def device_token(identity: Identity, key: DeviceKey, now: float) -> str:
    """A device token: ``sr`` the lower-cased ``{hub}/devices/{deviceId}``, no ``skn``, 30 s."""
    resource = quote(f"{identity.hub}/devices/{identity.device_id}".lower(), safe="")
    return sas.build_token(resource, key.raw, int(now) + TOKEN_TTL, encode=False)


class ModuleIdentities:
    def __init__(self, http: HttpSettings, master_key: bytes) -> None:
        self._http = http
        self._master = master_key

    async def ensure(self, identity: Identity, key: DeviceKey, module_ids: tuple[str, ...]) -> list[ModuleIdentity]:
        """Each module identity, created where it does not exist yet, holding the device's derived keys."""
        headers = {"Authorization": device_token(identity, key, time.time())}
        try:
            async with self._http.client(identity.hub) as client:
                return [await self._ensure(client, identity, module_id, headers) for module_id in module_ids]
        except httpx.HTTPError as exc:
            raise unreachable(f"https://{identity.hub}", exc) from None

    async def _ensure(
        self, client: httpx.AsyncClient, identity: Identity, module_id: str, headers: dict[str, str]
    ) -> ModuleIdentity:
        path = f"/devices/{quote(identity.device_id, safe='')}/modules/{quote(module_id, safe='')}"
        params = {"api-version": API_VERSION}
        body: JsonObject = {"moduleId": module_id, "deviceId": identity.device_id}
        response = await client.get(path, params=params, headers=headers)
        if response.status_code == 404:
            response = await client.put(path, params=params, json=body, headers=headers)
        _check(response, identity)
        module = response.json()
        generation_id = str(module.get("generationId", ""))
        keys = derive_module_keys(self._master, module_id, generation_id)
        if _symmetric_keys(module) != keys.to_json():
            body["authentication"] = {"type": "sas", "symmetricKey": keys.to_json()}
            updated = await client.put(path, params=params, json=body, headers={**headers, "If-Match": "*"})
            _check(updated, identity)
        return ModuleIdentity(module_id, generation_id, keys.primary)


def _symmetric_keys(module: JsonObject) -> object:
    authentication = module.get("authentication")
    return authentication.get("symmetricKey") if isinstance(authentication, dict) else None


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
