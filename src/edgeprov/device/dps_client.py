"""The provisioning client, speaking HTTPS exactly as aziot-identityd does (spec/edge-runtime.md §3.1).

One difference on purpose: it waits as long as the service's ``Retry-After`` says between polls,
instead of a fixed 5 seconds.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from edgeprov import sas
from edgeprov.device.settings import DpsProvisioning
from edgeprov.device.transport import HttpSettings, unreachable
from edgeprov.errors import ProvisioningRefused, ServiceUnreachable

API_VERSION = "2021-06-01"
TOKEN_TTL = 30
DEFAULT_RETRY_AFTER = 5.0
MAX_RETRY_AFTER = 300.0
MIN_RETRY_AFTER = 1.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Assignment:
    hub: str
    device_id: str
    substatus: str | None


def registration_token(settings: DpsProvisioning, now: float) -> str:
    """``sr`` is the lower-cased audience, percent-encoded; ``se`` 30 s ahead; ``skn=registration``."""
    audience = f"{settings.id_scope}/registrations/{settings.registration_id}".lower()
    resource = quote(audience, safe="")
    expiry = int(now) + TOKEN_TTL
    signature = base64.b64encode(sas.sign(settings.key.raw, resource, expiry)).decode()
    return f"{sas.PREFIX}sr={resource}&sig={quote(signature, safe='')}&se={expiry}&skn=registration"


def retry_after(response: httpx.Response) -> float:
    """The service's Retry-After in seconds, kept within 1 to 300 so a bad value neither spins nor stalls."""
    try:
        value = float(response.headers.get("retry-after", DEFAULT_RETRY_AFTER))
    except ValueError:
        value = DEFAULT_RETRY_AFTER
    return min(max(value, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


class DpsClient:
    def __init__(self, http: HttpSettings, sleep: Sleep = asyncio.sleep) -> None:
        self._http = http
        self._sleep = sleep

    async def register(self, settings: DpsProvisioning) -> Assignment:
        authority = settings.endpoint.authority
        path = f"/{quote(settings.id_scope, safe='')}/registrations/{quote(settings.registration_id, safe='')}"
        headers = {"Authorization": registration_token(settings, time.time())}
        body: dict[str, Any] = {"registrationId": settings.registration_id}
        if settings.payload is not None:
            body["payload"] = settings.payload
        deadline = time.monotonic() + self._http.timeout
        try:
            async with self._http.client(authority) as client:
                response = await client.put(
                    f"{path}/register", params={"api-version": API_VERSION}, json=body, headers=headers
                )
                if response.status_code != 202:
                    raise _failure(response)
                operation = _json(response).get("operationId")
                if not isinstance(operation, str) or not operation:
                    raise ServiceUnreachable("the provisioning service answered without an operationId")
                while True:
                    await self._sleep(retry_after(response))
                    response = await client.get(
                        f"{path}/operations/{quote(operation, safe='')}",
                        params={"api-version": API_VERSION},
                        headers=headers,
                    )
                    if response.status_code not in (200, 202):
                        raise _failure(response)
                    assignment = _outcome(_json(response))
                    if assignment is not None:
                        return assignment
                    if time.monotonic() > deadline:
                        raise ServiceUnreachable(f"still assigning after {self._http.timeout:.0f} s")
        except httpx.HTTPError as exc:
            raise unreachable(f"https://{authority}", exc) from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        raise ServiceUnreachable(f"the provisioning service sent HTTP {response.status_code} without JSON") from None
    if not isinstance(value, dict):
        raise ServiceUnreachable("the provisioning service's answer is not a JSON object")
    return value


def _failure(response: httpx.Response) -> ProvisioningRefused | ServiceUnreachable:
    """4xx is a refusal (with the service's reason); 429 and 5xx are worth trying again."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = str(body.get("message") or body.get("errorMessage") or response.reason_phrase or "no reason given")
    code = body.get("errorCode", body.get("code"))
    if response.status_code == 429 or response.status_code >= 500:
        return ServiceUnreachable(f"the provisioning service is unavailable (HTTP {response.status_code}): {message}")
    return ProvisioningRefused(
        message, http_status=response.status_code, error_code=code if isinstance(code, int) else None
    )


def _outcome(body: dict[str, Any]) -> Assignment | None:
    """The assignment, None while assigning; a failed or disabled registration is a refusal."""
    status = body.get("status")
    state = body.get("registrationState") or {}
    if status == "assigning":
        return None
    if status == "assigned":
        hub, device_id = state.get("assignedHub"), state.get("deviceId")
        if not isinstance(hub, str) or not isinstance(device_id, str):
            raise ServiceUnreachable("an assigned registration lacks assignedHub or deviceId")
        return Assignment(hub, device_id, state.get("substatus"))
    message = str(state.get("errorMessage") or state.get("message") or f"registration {status}")
    code = state.get("errorCode", state.get("code"))
    raise ProvisioningRefused(message, http_status=200, error_code=code if isinstance(code, int) else None)
