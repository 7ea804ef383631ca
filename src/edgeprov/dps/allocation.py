"""Choosing a device's hub (spec/dps-protocol.md §7.1)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edgeprov.dps.model import AllocationPolicy, Enrollment, LinkedHub
from edgeprov.errors import EdgeprovError
from edgeprov.types import JsonObject

NO_HUB_CODE = 400208
WEBHOOK_FAILED_CODE = 400210


class AllocationFailed(EdgeprovError):
    """The device is authentic but no hub could be chosen: the registration ends ``failed``."""

    status, name = 400, "AllocationFailed"

    def __init__(self, message: str, code: int = NO_HUB_CODE) -> None:
        super().__init__(message)
        self.failure_code = code


@dataclass(frozen=True, slots=True)
class Allocation:
    hub: str
    initial_twin: JsonObject | None = None
    payload: Any = None


class WebhookCaller(Protocol):
    async def call(self, url: str, body: JsonObject) -> JsonObject: ...


def effective_policy(enrollment: Enrollment, default: AllocationPolicy) -> AllocationPolicy:
    return enrollment.allocation_policy or default


def candidates(enrollment: Enrollment, linked: Sequence[LinkedHub]) -> list[LinkedHub]:
    """The enrollment's hubs if it names any, else every linked hub that takes part in allocation."""
    by_name = {hub.hostname: hub for hub in linked}
    if enrollment.allocation_policy is AllocationPolicy.STATIC and not enrollment.iot_hubs:
        raise AllocationFailed(f"enrollment {enrollment.id!r} allocates statically but names no hub ('iotHubs')")
    if enrollment.iot_hubs:
        missing = [name for name in enrollment.iot_hubs if name not in by_name]
        if missing:
            raise AllocationFailed(
                f"enrollment {enrollment.id!r} names hub(s) {', '.join(missing)} that are not linked to this "
                "service (edgeprov dps linked-hub list)"
            )
        return [by_name[name] for name in enrollment.iot_hubs]
    return [hub for hub in linked if hub.apply_allocation_policy]


def allocate(policy: AllocationPolicy, registration_id: str, hubs: Sequence[LinkedHub]) -> str:
    if not hubs:
        raise AllocationFailed("no linked hub is available for allocation (edgeprov dps linked-hub create)")
    if policy is AllocationPolicy.STATIC or len(hubs) == 1:
        return hubs[0].hostname
    return weighted_rendezvous(registration_id, hubs)


def weighted_rendezvous(registration_id: str, hubs: Sequence[LinkedHub]) -> str:
    """Hashed allocation: stable per device while the hub set is, proportional to each hub's weight."""
    device = registration_id.lower().encode()

    def score(hub: LinkedHub) -> float:
        digest = hashlib.sha256(device + b"\0" + hub.hostname.encode()).digest()
        uniform = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)
        return -max(hub.allocation_weight, 1) / math.log(uniform)

    return max(hubs, key=score).hostname
