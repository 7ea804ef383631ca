"""Whether a SAS token proves a device's or a module's identity (spec/hub-protocol.md §1.1).

Used by every wire that lets devices in: the MQTT gateway's CONNECT and the service API's
device-scoped module management.
"""

from __future__ import annotations

from edgeprov import sas
from edgeprov.errors import Unauthorized
from edgeprov.hub.model import Device, Module


def identity_resource(hub: str, device_id: str, module_id: str = "") -> str:
    resource = f"{hub}/devices/{device_id}"
    return f"{resource}/modules/{module_id}" if module_id else resource


def grants(token: sas.SasToken, resource: str) -> bool:
    """``sr`` names the resource; it may carry the port the client dialled, and ids compare case-blind."""
    host, _, rest = token.audience.lower().partition("/")
    return f"{host.rsplit(':', 1)[0]}/{rest}" == resource.lower()


def check_identity_token(
    token: sas.SasToken, hub: str, device: Device | None, module: Module | None, module_id: str, now: float, skew: float
) -> None:
    """Refuse unless ``token`` is signed with the identity's primary or secondary key and still valid."""
    if device is None:
        raise Unauthorized(f"no device of that id exists on {hub}")
    expected = identity_resource(hub, device.device_id, module_id)
    if not grants(token, expected):
        raise Unauthorized(f"the token grants {token.audience[:200]!r}, not {expected!r}")
    if not device.enabled:
        raise Unauthorized(f"device {device.device_id!r} is disabled")
    if module_id and module is None:
        raise Unauthorized(f"device {device.device_id!r} has no module {module_id!r}")
    identity = module or device
    keys = [sas.decode_key(key) for key in identity.auth.symmetric_keys()]
    if not any(token.signed_with(key) for key in keys):
        raise Unauthorized(f"the signature matches no key of {expected!r}")
    late = token.seconds_past_expiry(now)
    if late > skew:
        raise Unauthorized(f"the token expired {late:.0f} s ago by this service's clock")
