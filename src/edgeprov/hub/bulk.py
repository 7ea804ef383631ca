"""Bulk registry operations: ``POST /devices`` with a list of ExportImportDevice items.

Each item names a device and an ``importMode``. The batch is applied whole or not at all: when
any item fails, the answer lists every failing item and nothing is stored, so the caller can
fix the items and send the same batch again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeprov.errors import BadRequest, DeviceAlreadyExists, DeviceNotFound, EdgeprovError
from edgeprov.etags import check_if_match
from edgeprov.hub import registry
from edgeprov.hub.identities import device_from_json
from edgeprov.hub.twin import DesiredChange, writable
from edgeprov.store.base import Tx
from edgeprov.types import JsonObject

MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class ImportMode:
    creates: bool = False
    updates: bool = False
    deletes: bool = False
    twin_only: bool = False
    match_etag: bool = False


IMPORT_MODES = {
    "create": ImportMode(creates=True),
    "createOrUpdate": ImportMode(creates=True, updates=True),
    "createOrUpdateIfMatchETag": ImportMode(creates=True, updates=True, match_etag=True),
    "update": ImportMode(updates=True),
    "updateIfMatchETag": ImportMode(updates=True, match_etag=True),
    "delete": ImportMode(deletes=True),
    "deleteIfMatchETag": ImportMode(deletes=True, match_etag=True),
    "updateTwin": ImportMode(updates=True, twin_only=True),
    "updateTwinIfMatchETag": ImportMode(updates=True, twin_only=True, match_etag=True),
}


@dataclass(frozen=True, slots=True)
class BulkResult:
    errors: list[JsonObject] = field(default_factory=list)
    changes: list[DesiredChange] = field(default_factory=list)

    def to_json(self) -> JsonObject:
        return {"isSuccessful": not self.errors, "errors": self.errors, "warnings": []}


class Rejected(Exception):
    """Raised inside the write so that none of the batch is stored; carries the answer."""

    def __init__(self, result: BulkResult) -> None:
        super().__init__(f"{len(result.errors)} bulk items failed")
        self.result = result


def check_items(body: Any) -> list[JsonObject]:
    """The batch's items, or a 400 for a batch that is malformed as a whole."""
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise BadRequest('a bulk operation is a JSON array of devices: [{"id": "d1", "importMode": "create"}, ...]')
    if not 1 <= len(body) <= MAX_ITEMS:
        raise BadRequest(f"a bulk operation takes 1 to {MAX_ITEMS} devices, not {len(body)}")
    seen: set[str] = set()
    for index, item in enumerate(body):
        device_id, mode = item.get("id"), item.get("importMode")
        if not isinstance(device_id, str) or not device_id:
            raise BadRequest(f"item {index} has no 'id'")
        if mode not in IMPORT_MODES:
            raise BadRequest(f"item {index} ({device_id!r}): 'importMode' must be one of {', '.join(IMPORT_MODES)}")
        if device_id in seen:
            raise BadRequest(f"device {device_id!r} appears more than once; a bulk operation names each device once")
        seen.add(device_id)
    return body


def apply(tx: Tx, hub: str, items: list[JsonObject], now: float) -> BulkResult:
    result = BulkResult()
    for item in items:
        try:
            _apply_item(tx, hub, item, IMPORT_MODES[item["importMode"]], now, result.changes)
        except EdgeprovError as exc:
            error: JsonObject = {"deviceId": item["id"], "errorCode": exc.name, "errorStatus": exc.message}
            result.errors.append(error | {"operation": item["importMode"]})
    if result.errors:
        raise Rejected(result)
    return result


def _apply_item(tx: Tx, hub: str, item: JsonObject, mode: ImportMode, now: float, changes: list[DesiredChange]) -> None:
    device_id = item["id"]
    if item.get("moduleId") is not None:
        raise BadRequest("module identities cannot be imported in bulk; use PUT /devices/{id}/modules/{moduleId}")
    existing = tx.get_device(hub, device_id)
    if existing is None and not mode.creates:
        raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
    if existing is not None and not mode.updates and not mode.deletes:
        raise DeviceAlreadyExists(f"device {device_id!r} already exists on {hub}")
    if existing is not None and mode.match_etag:
        if not item.get("eTag") and not item.get("twinETag"):
            raise BadRequest(f"importMode {item['importMode']} needs 'eTag' (or 'twinETag')")
        if item.get("eTag"):
            check_if_match(item["eTag"], existing.etag, f"device {device_id!r}")
    if mode.deletes:
        tx.delete_device(hub, device_id)
        return
    if not mode.twin_only:
        body = {key: value for key, value in item.items() if key not in ("id", "importMode", "eTag")}
        registry.save_device(tx, hub, device_from_json(device_id, body, existing, now), now)
    changes.extend(_import_twin(tx, hub, item, mode, now))


def _import_twin(tx: Tx, hub: str, item: JsonObject, mode: ImportMode, now: float) -> list[DesiredChange]:
    """The item's tags and desired properties replace the twin's (those it names)."""
    properties = item.get("properties") or {}
    if not isinstance(properties, dict):
        raise BadRequest("'properties' must be a JSON object")
    if properties.get("reported"):
        raise BadRequest("reported properties are the device's: a bulk operation cannot set them")
    tags, desired = item.get("tags"), properties.get("desired")
    twin = tx.get_twin(hub, item["id"])
    assert twin is not None, "save_device gives every device a twin"
    if mode.match_etag and item.get("twinETag"):
        check_if_match(item["twinETag"], twin.etag, f"twin of {item['id']!r}")
    change: JsonObject = {}
    if tags is not None:
        twin = twin.replace_tags(_object(tags, "tags"))
    if desired is not None:
        twin, change = twin.replace_desired(_object(desired, "properties.desired"), now)
    tx.put_twin(hub, twin)
    return [DesiredChange(item["id"], "", change, twin.desired.version)] if change else []


def _object(value: Any, what: str) -> JsonObject:
    if not isinstance(value, dict):
        raise BadRequest(f"'{what}' must be a JSON object")
    return writable(value)
