"""Getting the device's identity: from the provisioning service, or from the backup of the last run.

When to go back to the provisioning service is decided here, in one place (spec/edge-runtime.md
§3.5); unlike upstream, a change of the provisioning settings (scope, registration ID, endpoint,
key) is noticed and provisions again (Azure/iotedge#7013).
"""

from __future__ import annotations

from enum import StrEnum

from edgeprov.clock import Clock, SystemClock, iso
from edgeprov.device.dps_client import DpsClient
from edgeprov.device.settings import DpsProvisioning, Provisioning, ReprovisioningMode
from edgeprov.device.state import Identity, StateDir, load_identity, save_identity

LABELS = {
    "endpoint": "endpoint",
    "id_scope": "ID scope",
    "registration_id": "registration ID",
    "key": "key",
    "iothub_hostname": "hub",
    "device_id": "device ID",
}


class Trigger(StrEnum):
    """Why the hub side suggests the identity is no longer good."""

    IDENTITY_ERROR = "identity"  # the hub's registry refused the device (unknown, disabled, wrong key)
    SESSION_CREDENTIALS = "session"  # the hub session was refused: bad credentials or device disabled


def should_reprovision(mode: ReprovisioningMode, trigger: Trigger) -> bool:
    """``Dynamic`` follows both signals; ``OnErrorOnly`` (and ``AlwaysOnStartup`` after its start)
    only the identity errors. Network errors are never a reason (Azure/iotedge PR #7246)."""
    if mode is ReprovisioningMode.DYNAMIC:
        return True
    return trigger is Trigger.IDENTITY_ERROR


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs, for people: values shown, except the key, of which only the change is told."""
    described = []
    for name in sorted(before.keys() | after.keys(), key=list(LABELS).index):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        label = LABELS[name]
        described.append(f"{label} changed" if name == "key" else f"{label} {old or '(none)'} -> {new or '(none)'}")
    return described


class Provisioner:
    def __init__(self, state: StateDir, dps: DpsClient, clock: Clock | None = None) -> None:
        self._state = state
        self._dps = dps
        self._clock = clock or SystemClock()

    def backup_for(self, provisioning: Provisioning) -> Identity | None:
        """The backup, if it came from these very provisioning settings."""
        identity = load_identity(self._state)
        if identity is None or identity.settings != provisioning.fingerprint():
            return None
        return identity

    async def provision(self, provisioning: Provisioning) -> Identity:
        """One attempt; the result becomes the backup."""
        now = iso(self._clock.now())
        if isinstance(provisioning, DpsProvisioning):
            assignment = await self._dps.register(provisioning)
            identity = Identity(
                assignment.hub, assignment.device_id, "dps", now, provisioning.fingerprint(), assignment.substatus
            )
        else:
            identity = Identity(
                provisioning.iothub_hostname, provisioning.device_id, "manual", now, provisioning.fingerprint()
            )
        save_identity(self._state, identity)
        return identity
