"""Device and module identities from the bodies the service API receives (spec/hub-protocol.md §3.2).

One set of rules for ``PUT /devices/{id}``, ``PUT /devices/{id}/modules/{mid}`` and bulk import:
keys the body leaves out are generated on create and kept on update; an edge device's scope is
its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgeprov import sas
from edgeprov.errors import BadRequest
from edgeprov.hub.model import Authentication, AuthType, Device, DeviceStatus, Module, new_generation_id
from edgeprov.ids import check_device_id, check_module_id
from edgeprov.types import JsonObject

GENERATED_KEY_BYTES = 32
MAX_STATUS_REASON = 128
EDGE_SCOPE_PREFIX = "ms-azure-iot-edge://"


def device_from_json(device_id: str, body: JsonObject, existing: Device | None, now: float) -> Device:
    check_device_id(device_id)
    check_body_id(body, "deviceId", device_id)
    iot_edge = _iot_edge(body, existing)
    status = _status(body, existing.status if existing else None)
    reason = _status_reason(body, existing.status_reason if existing else None)
    auth = authentication(body, existing.auth if existing else None)
    generation = existing.generation_id if existing else new_generation_id()
    scope = _device_scope(body, device_id, generation, iot_edge, existing)
    parents = _parent_scopes(body, existing.parent_scopes if existing else ())
    if existing is None:
        return Device(device_id, generation, auth, status, reason, now, iot_edge, device_scope=scope,
                      parent_scopes=parents, etag_counter=1, created=now)  # fmt: skip
    return replace(
        existing,
        auth=auth,
        status=status,
        status_reason=reason,
        status_updated=now if status is not existing.status else existing.status_updated,
        iot_edge=iot_edge,
        device_scope=scope,
        parent_scopes=parents,
        etag_counter=existing.etag_counter + 1,
    )


def module_from_json(device_id: str, module_id: str, body: JsonObject, existing: Module | None, now: float) -> Module:
    check_module_id(module_id)
    check_body_id(body, "moduleId", module_id)
    check_body_id(body, "deviceId", device_id)
    auth = authentication(body, existing.auth if existing else None)
    managed_by = body.get("managedBy", existing.managed_by if existing else None)
    if managed_by is not None and not isinstance(managed_by, str):
        raise BadRequest("'managedBy' must be a string")
    if existing is None:
        return Module(device_id, module_id, new_generation_id(), auth, managed_by, etag_counter=1, created=now)
    return replace(existing, auth=auth, managed_by=managed_by, etag_counter=existing.etag_counter + 1)


def check_body_id(body: JsonObject, field: str, path_value: str) -> None:
    value = body.get(field, path_value)
    if value != path_value:
        raise BadRequest(f"'{field}' in the body ({str(value)[:128]!r}) differs from the path ({path_value!r})")


def authentication(body: JsonObject, existing: Authentication | None) -> Authentication:
    auth = body.get("authentication")
    if auth is None:
        auth = {"type": "sas"}
    if not isinstance(auth, dict):
        raise BadRequest("'authentication' must be a JSON object")
    try:
        kind = AuthType(auth.get("type") or "sas")
    except ValueError:
        kinds = ", ".join(kind.value for kind in AuthType)
        raise BadRequest(f"authentication type {str(auth.get('type'))[:40]!r} is not one of {kinds}") from None
    if kind is AuthType.SAS:
        return _symmetric_keys(auth, existing if existing and existing.type is AuthType.SAS else None)
    thumbprints = auth.get("x509Thumbprint") or {}
    if not isinstance(thumbprints, dict):
        raise BadRequest("'authentication.x509Thumbprint' must be a JSON object")
    primary, secondary = thumbprints.get("primaryThumbprint"), thumbprints.get("secondaryThumbprint")
    if kind is AuthType.SELF_SIGNED and not primary:
        raise BadRequest("self-signed authentication needs 'x509Thumbprint.primaryThumbprint'")
    for name, value in (("primaryThumbprint", primary), ("secondaryThumbprint", secondary)):
        if value is not None and not _is_thumbprint(value):
            raise BadRequest(f"'{name}' must be a SHA-1 or SHA-256 thumbprint in hexadecimal (40 or 64 digits)")
    return Authentication(kind, primary_thumbprint=primary, secondary_thumbprint=secondary)


def _symmetric_keys(auth: JsonObject, kept: Authentication | None) -> Authentication:
    keys = auth.get("symmetricKey") or {}
    if not isinstance(keys, dict):
        raise BadRequest("'authentication.symmetricKey' must be a JSON object")
    primary = keys.get("primaryKey") or (kept.primary_key if kept else sas.generate_key(GENERATED_KEY_BYTES))
    secondary = keys.get("secondaryKey") or (kept.secondary_key if kept else sas.generate_key(GENERATED_KEY_BYTES))
    if not isinstance(primary, str) or not isinstance(secondary, str):
        raise BadRequest("symmetric keys must be base64 strings")
    sas.decode_key(primary, what="primaryKey")
    sas.decode_key(secondary, what="secondaryKey")
    return Authentication(AuthType.SAS, primary, secondary)


def _is_thumbprint(value: Any) -> bool:
    return isinstance(value, str) and len(value) in (40, 64) and all(c in "0123456789abcdefABCDEF" for c in value)


def _iot_edge(body: JsonObject, existing: Device | None) -> bool:
    capabilities = body.get("capabilities") or {}
    if not isinstance(capabilities, dict):
        raise BadRequest("'capabilities' must be a JSON object like {\"iotEdge\": true}")
    iot_edge = capabilities.get("iotEdge", existing.iot_edge if existing else False)
    if not isinstance(iot_edge, bool):
        raise BadRequest("'capabilities.iotEdge' must be true or false")
    return iot_edge


def _status(body: JsonObject, existing: DeviceStatus | None) -> DeviceStatus:
    value = body.get("status") or (existing.value if existing else "enabled")
    try:
        return DeviceStatus(value)
    except ValueError:
        raise BadRequest("'status' must be 'enabled' or 'disabled'") from None


def _status_reason(body: JsonObject, existing: str | None) -> str | None:
    reason = body.get("statusReason", existing)
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_STATUS_REASON):
        raise BadRequest(f"'statusReason' must be a string of at most {MAX_STATUS_REASON} characters")
    return reason


def _device_scope(
    body: JsonObject, device_id: str, generation: str, iot_edge: bool, existing: Device | None
) -> str | None:
    # An edge device's scope names it, and children point at it; a leaf device takes its parent's.
    if iot_edge:
        return f"{EDGE_SCOPE_PREFIX}{device_id}-{generation}"
    kept = existing.device_scope if existing and not existing.iot_edge else None
    scope = body.get("deviceScope", kept)
    if scope in (None, ""):
        return None
    if not isinstance(scope, str) or not scope.startswith(EDGE_SCOPE_PREFIX):
        raise BadRequest(f"'deviceScope' must be a parent edge device's scope ({EDGE_SCOPE_PREFIX}…)")
    return scope


def _parent_scopes(body: JsonObject, existing: tuple[str, ...]) -> tuple[str, ...]:
    scopes = body.get("parentScopes")
    if scopes is None:
        return existing
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s.startswith(EDGE_SCOPE_PREFIX) for s in scopes):
        raise BadRequest(f"'parentScopes' must be a list of edge device scopes ({EDGE_SCOPE_PREFIX}…)")
    return tuple(scopes)
