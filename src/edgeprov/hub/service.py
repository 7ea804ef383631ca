"""The hub's management operations: identities, modules and twins (spec/hub-protocol.md §2-3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from edgeprov.clock import Clock
from edgeprov.errors import (
    BadRequest,
    DeviceAlreadyExists,
    DeviceNotFound,
    ModuleAlreadyExists,
    ModuleNotFound,
)
from edgeprov.etags import check_create_or_update, check_if_match
from edgeprov.hub import bulk, deployment, registry
from edgeprov.hub.identities import device_from_json, module_from_json
from edgeprov.hub.model import Device, Module
from edgeprov.hub.twin import DesiredChange, Twin, writable
from edgeprov.hub.views import render_twin
from edgeprov.store.base import Store, Tx
from edgeprov.types import JsonObject


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


class HubService:
    def __init__(self, store: Store, clock: Clock, listener: TwinListener | None = None) -> None:
        self._store = store
        self._clock = clock
        self.listener: TwinListener = listener or NoListener()

    # -- devices -------------------------------------------------------------------------------------
    async def put_device(self, hub: str, device_id: str, body: JsonObject, if_match: str | None) -> Device:
        """Create (no If-Match) or update (If-Match) a device identity."""
        now = self._clock.now()

        def write(tx: Tx) -> Device:
            existing = tx.get_device(hub, device_id)
            etag = existing.etag if existing else None
            what = f"device {device_id!r}"
            check_create_or_update(
                etag, if_match, what, f"on {hub}", missing=DeviceNotFound, exists=DeviceAlreadyExists
            )
            device = device_from_json(device_id, body, existing, now)
            registry.save_device(tx, hub, device, now)
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

    async def bulk(self, hub: str, body: Any) -> bulk.BulkResult:
        """Apply a batch of ExportImportDevice items whole, or report why not and store nothing."""
        items = bulk.check_items(body)
        now = self._clock.now()
        try:
            result = await self._store.write(lambda tx: bulk.apply(tx, hub, items, now))
        except bulk.Rejected as rejected:
            return rejected.result
        self._notify(hub, result.changes)
        return result

    async def statistics(self, hub: str) -> JsonObject:
        total, enabled = await self._store.read(lambda tx: tx.count_devices(hub))
        return {"totalDeviceCount": total, "enabledDeviceCount": enabled, "disabledDeviceCount": total - enabled}

    # -- modules -------------------------------------------------------------------------------------
    async def put_module(
        self, hub: str, device_id: str, module_id: str, body: JsonObject, if_match: str | None
    ) -> Module:
        now = self._clock.now()

        def write(tx: Tx) -> Module:
            if tx.get_device(hub, device_id) is None:
                raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
            existing = tx.get_module(hub, device_id, module_id)
            etag = existing.etag if existing else None
            where = f"on device {device_id!r}"
            what = f"module {module_id!r}"
            check_create_or_update(etag, if_match, what, where, missing=ModuleNotFound, exists=ModuleAlreadyExists)
            module = module_from_json(device_id, module_id, body, existing, now)
            registry.save_module(tx, hub, module, now)
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

    async def apply_configuration_content(self, hub: str, device_id: str, body: Any) -> None:
        """Deploy modules content to one edge device: each module twin's desired properties become it."""
        modules = deployment.modules_desired(body)
        now = self._clock.now()
        changes = await self._store.write(lambda tx: deployment.apply(tx, hub, device_id, modules, now))
        self._notify(hub, changes)

    # -- twins ---------------------------------------------------------------------------------------
    async def get_twin(self, hub: str, device_id: str, module_id: str = "") -> JsonObject:
        return await self._store.read(lambda tx: _twin_view(tx, hub, device_id, module_id))

    async def update_twin(
        self, hub: str, device_id: str, module_id: str, body: JsonObject, if_match: str | None, *, replace_all: bool
    ) -> JsonObject:
        """PATCH (merge tags and desired) or PUT (replace them) a twin; reported stays the device's."""
        now = self._clock.now()
        tags, desired = _twin_sections(body, replace_all=replace_all)

        def write(tx: Tx) -> tuple[JsonObject, list[DesiredChange]]:
            twin = _stored_twin(tx, hub, device_id, module_id)
            check_if_match(if_match, twin.etag, f"twin of {device_id!r}")
            change: JsonObject = {}
            if replace_all:
                twin = twin.replace_tags(tags or {})
                twin, change = twin.replace_desired(desired or {}, now)
            else:
                if tags:
                    twin = twin.patch_tags(tags)
                if desired:
                    twin, change = twin.patch_desired(desired, now), desired
            tx.put_twin(hub, twin)
            changes = [DesiredChange(device_id, module_id, change, twin.desired.version)] if change else []
            return _twin_view(tx, hub, device_id, module_id), changes

        view, changes = await self._store.write(write)
        self._notify(hub, changes)
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

    def _notify(self, hub: str, changes: Iterable[DesiredChange]) -> None:
        for change in changes:
            self.listener.desired_changed(hub, change.device_id, change.module_id, change.patch, change.version)


def _twin_sections(body: JsonObject, *, replace_all: bool) -> tuple[JsonObject | None, JsonObject | None]:
    tags = body.get("tags")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise BadRequest("'properties' must be a JSON object")
    # A replace sends back a whole twin as read, reported properties and all: those are ignored.
    if properties.get("reported") and not replace_all:
        raise BadRequest("reported properties are the device's: the service cannot set them")
    desired = properties.get("desired")
    for name, value in (("tags", tags), ("properties.desired", desired)):
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"'{name}' must be a JSON object")
    return (None if tags is None else writable(tags)), (None if desired is None else writable(desired))


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
