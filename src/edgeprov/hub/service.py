"""The hub's management operations: identities, modules and twins (spec/hub-protocol.md §2-3)."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from edgeprov import sas
from edgeprov.clock import Clock
from edgeprov.errors import (
    BadRequest,
    DeviceAlreadyExists,
    DeviceNotFound,
    ModuleAlreadyExists,
    ModuleNotFound,
)
from edgeprov.etags import check_if_match
from edgeprov.hub import registry
from edgeprov.hub.model import (
    Authentication,
    AuthType,
    Device,
    DeviceStatus,
    Module,
    new_generation_id,
)
from edgeprov.hub.twin import Twin
from edgeprov.hub.views import render_twin
from edgeprov.ids import check_device_id, check_module_id
from edgeprov.store.base import Store, Tx
from edgeprov.types import JsonObject

GENERATED_KEY_BYTES = 32


class TwinListener(Protocol):
    """Told after a commit that desired properties changed, so connected devices hear of it."""

    def desired_changed(self, hub: str, device_id: str, module_id: str, patch: JsonObject, version: int) -> None: ...

    def access_revoked(self, hub: str, device_id: str, module_id: str) -> None:
        """The identity was disabled or deleted (``module_id`` empty: the device and all its modules)."""
        ...


class NoListener:
    def desired_changed(self, hub: str, device_id: str, module_id: str, patch: JsonObject, version: int) -> None:
        return None

    def access_revoked(self, hub: str, device_id: str, module_id: str) -> None:
        return None


def _authentication(body: JsonObject, existing: Authentication | None) -> Authentication:
    auth = body.get("authentication")
    if auth is None:
        auth = {"type": "sas"}
    if not isinstance(auth, dict):
        raise BadRequest("'authentication' must be a JSON object")
    try:
        kind = AuthType(auth.get("type") or "sas")
    except ValueError:
        raise BadRequest(
            f"authentication type {auth.get('type')!r} is not one of sas, selfSigned, certificateAuthority, none"
        ) from None
    if kind is AuthType.SAS:
        keys = auth.get("symmetricKey") or {}
        if not isinstance(keys, dict):
            raise BadRequest("'authentication.symmetricKey' must be a JSON object")
        kept = existing if existing and existing.type is AuthType.SAS else None
        primary = keys.get("primaryKey") or (kept.primary_key if kept else sas.generate_key(GENERATED_KEY_BYTES))
        secondary = keys.get("secondaryKey") or (kept.secondary_key if kept else sas.generate_key(GENERATED_KEY_BYTES))
        if not isinstance(primary, str) or not isinstance(secondary, str):
            raise BadRequest("symmetric keys must be base64 strings")
        sas.decode_key(primary, what="primaryKey")
        sas.decode_key(secondary, what="secondaryKey")
        return Authentication(kind, primary, secondary)
    thumbprints = auth.get("x509Thumbprint") or {}
    if not isinstance(thumbprints, dict):
        raise BadRequest("'authentication.x509Thumbprint' must be a JSON object")
    if kind is AuthType.SELF_SIGNED and not thumbprints.get("primaryThumbprint"):
        raise BadRequest("self-signed authentication needs 'x509Thumbprint.primaryThumbprint'")
    return Authentication(
        kind,
        primary_thumbprint=thumbprints.get("primaryThumbprint"),
        secondary_thumbprint=thumbprints.get("secondaryThumbprint"),
    )


def _status(body: JsonObject, existing: DeviceStatus | None) -> DeviceStatus:
    value = body.get("status") or (existing.value if existing else "enabled")
    try:
        return DeviceStatus(value)
    except ValueError:
        raise BadRequest("'status' must be 'enabled' or 'disabled'") from None


def _body_id(body: JsonObject, field: str, path_value: str) -> None:
    value = body.get(field, path_value)
    if value != path_value:
        raise BadRequest(f"'{field}' in the body ({str(value)[:128]!r}) differs from the path ({path_value!r})")


class HubService:
    def __init__(self, store: Store, clock: Clock, listener: TwinListener | None = None) -> None:
        self._store = store
        self._clock = clock
        self.listener: TwinListener = listener or NoListener()

    # -- devices -------------------------------------------------------------------------------------
    async def put_device(self, hub: str, device_id: str, body: JsonObject, if_match: str | None) -> Device:
        """Create (no If-Match) or update (If-Match) a device identity."""
        check_device_id(device_id)
        _body_id(body, "deviceId", device_id)
        now = self._clock.now()

        def write(tx: Tx) -> Device:
            existing = tx.get_device(hub, device_id)
            if existing is None and if_match:
                raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
            if existing is not None and not if_match:
                raise DeviceAlreadyExists(f"device {device_id!r} already exists on {hub}")
            iot_edge = bool((body.get("capabilities") or {}).get("iotEdge", existing.iot_edge if existing else False))
            status = _status(body, existing.status if existing else None)
            auth = _authentication(body, existing.auth if existing else None)
            if existing is None:
                device = Device(
                    device_id,
                    new_generation_id(),
                    auth,
                    status,
                    body.get("statusReason"),
                    now,
                    iot_edge,
                    etag_counter=1,
                    created=now,
                )
            else:
                check_if_match(if_match, existing.etag, f"device {device_id!r}")
                device = replace(
                    existing,
                    auth=auth,
                    status=status,
                    status_reason=body.get("statusReason", existing.status_reason),
                    status_updated=now if status is not existing.status else existing.status_updated,
                    iot_edge=iot_edge,
                    etag_counter=existing.etag_counter + 1,
                )
            tx.put_device(hub, device)
            if tx.get_twin(hub, device_id) is None:
                tx.put_twin(hub, Twin.initial(device_id, "", {}, {}, now))
            if iot_edge:
                registry.ensure_edge_modules(tx, hub, device_id, now)
            return device

        device = await self._store.write(write)
        if not device.enabled:
            self.listener.access_revoked(hub, device_id, "")
        return device

    async def get_device(self, hub: str, device_id: str) -> Device:
        device = await self._store.read(lambda tx: tx.get_device(hub, device_id))
        if device is None:
            raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
        return device

    async def list_devices(self, hub: str, top: int, after: str = "") -> list[Device]:
        return await self._store.read(lambda tx: tx.list_devices(hub, after, top))

    async def delete_device(self, hub: str, device_id: str, if_match: str | None) -> None:
        def write(tx: Tx) -> None:
            existing = tx.get_device(hub, device_id)
            if existing is None:
                raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
            check_if_match(if_match, existing.etag, f"device {device_id!r}")
            tx.delete_device(hub, device_id)

        await self._store.write(write)
        self.listener.access_revoked(hub, device_id, "")

    async def statistics(self, hub: str) -> JsonObject:
        total, enabled = await self._store.read(lambda tx: tx.count_devices(hub))
        return {"totalDeviceCount": total, "enabledDeviceCount": enabled, "disabledDeviceCount": total - enabled}

    # -- modules -------------------------------------------------------------------------------------
    async def put_module(
        self, hub: str, device_id: str, module_id: str, body: JsonObject, if_match: str | None
    ) -> Module:
        check_module_id(module_id)
        _body_id(body, "moduleId", module_id)
        _body_id(body, "deviceId", device_id)
        now = self._clock.now()

        def write(tx: Tx) -> Module:
            if tx.get_device(hub, device_id) is None:
                raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
            existing = tx.get_module(hub, device_id, module_id)
            if existing is None and if_match:
                raise ModuleNotFound(f"module {module_id!r} does not exist on device {device_id!r}")
            if existing is not None and not if_match:
                raise ModuleAlreadyExists(f"module {module_id!r} already exists on device {device_id!r}")
            auth = _authentication(body, existing.auth if existing else None)
            managed_by = body.get("managedBy", existing.managed_by if existing else None)
            if existing is None:
                module = Module(
                    device_id, module_id, new_generation_id(), auth, managed_by, etag_counter=1, created=now
                )
                tx.put_twin(hub, Twin.initial(device_id, module_id, {}, {}, now))
            else:
                check_if_match(if_match, existing.etag, f"module {module_id!r}")
                module = replace(existing, auth=auth, managed_by=managed_by, etag_counter=existing.etag_counter + 1)
            tx.put_module(hub, module)
            return module

        return await self._store.write(write)

    async def get_module(self, hub: str, device_id: str, module_id: str) -> Module:
        module = await self._store.read(lambda tx: tx.get_module(hub, device_id, module_id))
        if module is None:
            raise ModuleNotFound(f"module {module_id!r} does not exist on device {device_id!r}")
        return module

    async def list_modules(self, hub: str, device_id: str) -> list[Module]:
        def read(tx: Tx) -> list[Module]:
            if tx.get_device(hub, device_id) is None:
                raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
            return tx.list_modules(hub, device_id)

        return await self._store.read(read)

    async def delete_module(self, hub: str, device_id: str, module_id: str, if_match: str | None) -> None:
        def write(tx: Tx) -> None:
            existing = tx.get_module(hub, device_id, module_id)
            if existing is None:
                raise ModuleNotFound(f"module {module_id!r} does not exist on device {device_id!r}")
            check_if_match(if_match, existing.etag, f"module {module_id!r}")
            tx.delete_module(hub, device_id, module_id)

        await self._store.write(write)
        self.listener.access_revoked(hub, device_id, module_id)

    # -- twins ---------------------------------------------------------------------------------------
    async def get_twin(self, hub: str, device_id: str, module_id: str = "") -> JsonObject:
        return await self._store.read(lambda tx: _twin_view(tx, hub, device_id, module_id))

    async def update_twin(
        self, hub: str, device_id: str, module_id: str, body: JsonObject, if_match: str | None, *, replace_all: bool
    ) -> JsonObject:
        """PATCH (merge tags and desired) or PUT (replace them) a twin; reported stays the device's."""
        now = self._clock.now()
        tags, desired = _twin_sections(body)

        def write(tx: Tx) -> tuple[JsonObject, JsonObject | None, int]:
            twin = _stored_twin(tx, hub, device_id, module_id)
            check_if_match(if_match, twin.etag, f"twin of {device_id!r}")
            change: JsonObject | None = None
            if replace_all:
                twin = twin.replace_tags(tags or {})
                twin, change = twin.replace_desired(desired or {}, now)
            else:
                if tags is not None:
                    twin = twin.patch_tags(tags)
                if desired is not None:
                    twin, change = twin.patch_desired(desired, now), desired
            tx.put_twin(hub, twin)
            return _twin_view(tx, hub, device_id, module_id), change, twin.desired.version

        view, change, version = await self._store.write(write)
        if change:
            self.listener.desired_changed(hub, device_id, module_id, change, version)
        return view

    async def twin_properties(self, hub: str, device_id: str, module_id: str) -> JsonObject:
        """What a device's twin GET answers: only the two property collections, with their versions."""
        twin = await self._store.read(lambda tx: _stored_twin(tx, hub, device_id, module_id))
        return {"desired": twin.desired.for_device(), "reported": twin.reported.for_device()}

    async def patch_reported(self, hub: str, device_id: str, module_id: str, patch: JsonObject) -> int:
        """A device's reported-properties patch; returns the new reported version."""
        now = self._clock.now()

        def write(tx: Tx) -> int:
            twin = _stored_twin(tx, hub, device_id, module_id).patch_reported(patch, now)
            tx.put_twin(hub, twin)
            return twin.reported.version

        return await self._store.write(write)


def _twin_sections(body: JsonObject) -> tuple[JsonObject | None, JsonObject | None]:
    tags = body.get("tags")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise BadRequest("'properties' must be a JSON object")
    if properties.get("reported"):
        raise BadRequest("reported properties are the device's: the service cannot set them")
    desired = properties.get("desired")
    for name, value in (("tags", tags), ("properties.desired", desired)):
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"'{name}' must be a JSON object")
    return _without_metadata(tags), _without_metadata(desired)


def _without_metadata(section: JsonObject | None) -> JsonObject | None:
    # Clients echo a twin they read, with its $metadata and $version: those are the hub's.
    return None if section is None else {k: v for k, v in section.items() if not k.startswith("$")}


def _stored_twin(tx: Tx, hub: str, device_id: str, module_id: str) -> Twin:
    twin = tx.get_twin(hub, device_id, module_id)
    if twin is None:
        if module_id:
            raise ModuleNotFound(f"module {module_id!r} does not exist on device {device_id!r}")
        raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
    return twin


def _twin_view(tx: Tx, hub: str, device_id: str, module_id: str) -> JsonObject:
    twin = _stored_twin(tx, hub, device_id, module_id)
    device = tx.get_device(hub, device_id)
    if device is None:
        raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
    module = tx.get_module(hub, device_id, module_id) if module_id else None
    return render_twin(device, module, twin)
