"""The custom allocation webhook's request and response (spec/dps-protocol.md §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgeprov.dps.allocation import WEBHOOK_FAILED_CODE, Allocation, AllocationFailed
from edgeprov.dps.model import Enrollment, EnrollmentKind, RegistrationRecord
from edgeprov.types import JsonObject


def allocation_request(
    enrollment: Enrollment,
    registration_id: str,
    current: RegistrationRecord | None,
    payload: Any,
    linked_hubs: Sequence[str],
) -> JsonObject:
    # Keys never leave the service: the enrollment is sent with its attestation type only.
    description = enrollment.to_json(include_keys=False)
    context: JsonObject = {"registrationId": registration_id, "symmetricKey": {}}
    if current is not None and current.assigned_hub:
        context["currentIotHubHostName"] = current.assigned_hub
        context["currentDeviceId"] = current.device_id
    if payload is not None:
        context["payload"] = payload
    role = "individualEnrollment" if enrollment.kind is EnrollmentKind.INDIVIDUAL else "enrollmentGroup"
    return {role: description, "deviceRuntimeContext": context, "linkedHubs": list(linked_hubs)}


def parse_allocation(response: Any, linked_hubs: Sequence[str], url: str) -> Allocation:
    where = f"custom allocation webhook {redacted_url(url)}"
    if not isinstance(response, dict):
        raise AllocationFailed(f"{where} answered with something other than a JSON object", WEBHOOK_FAILED_CODE)
    hub = response.get("iotHubHostName")
    if not isinstance(hub, str) or not hub:
        raise AllocationFailed(f"{where} answered without 'iotHubHostName'", WEBHOOK_FAILED_CODE)
    if hub.lower() not in linked_hubs:
        raise AllocationFailed(
            f"{where} chose hub {hub!r}, which is not among the enrollment's linked hubs "
            f"({', '.join(linked_hubs) or 'none'})",
            WEBHOOK_FAILED_CODE,
        )
    twin = response.get("initialTwin")
    if twin is not None and not isinstance(twin, dict):
        raise AllocationFailed(f"{where} answered with an 'initialTwin' that is not an object", WEBHOOK_FAILED_CODE)
    return Allocation(hub.lower(), twin, response.get("payload"))


def redacted_url(url: str) -> str:
    """The URL without its query: function URLs carry their key there (?code=...)."""
    return url.split("?", 1)[0]
