"""Module keys as aziot-identityd makes them (spec/edge-runtime.md §3.3).

Each module's keys are derived on the device, ``HMAC-SHA256(master, "{moduleId}:{generationId}:primary")``
and ``…:secondary``, from a random master key that never leaves the device; the hub only receives
the derived keys. A module deleted and created again gets a new ``generationId``, hence new keys.
The master key is not the device key: re-provisioning or a new device key leaves it alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from edgeprov.device.files import write_atomic
from edgeprov.device.settings import DeviceKey

MASTER_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class ModuleKeys:
    primary: DeviceKey
    secondary: DeviceKey

    def to_json(self) -> dict[str, str]:
        """The ``authentication.symmetricKey`` object of a module identity."""
        return {
            "primaryKey": base64.b64encode(self.primary.raw).decode(),
            "secondaryKey": base64.b64encode(self.secondary.raw).decode(),
        }


def derive_module_keys(master: bytes, module_id: str, generation_id: str) -> ModuleKeys:
    primary, secondary = (
        hmac.new(master, f"{module_id}:{generation_id}:{which}".encode(), hashlib.sha256).digest()
        for which in ("primary", "secondary")
    )
    return ModuleKeys(DeviceKey(primary), DeviceKey(secondary))


def load_master_key(path: Path) -> bytes:
    """The device's master key, made (random, mode 0600) the first time it is needed."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        master = secrets.token_bytes(MASTER_KEY_BYTES)
        write_atomic(path, master)
        return master
