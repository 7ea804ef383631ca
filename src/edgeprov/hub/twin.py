"""Twin documents: JSON merge patches with null deletion, versions, ``$metadata`` and the published limits.

spec/hub-protocol.md §2: tags, desired and reported are free-form collections. Desired and
reported carry their own ``$version`` and ``$metadata``; the twin as a whole has a ``version``
and an ``etag`` that change on every write.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field, replace
from typing import Any

from edgeprov.clock import iso
from edgeprov.errors import InvalidTwin
from edgeprov.types import JsonObject

MAX_DEPTH = 10
MAX_KEY_BYTES = 1024
MAX_STRING_CHARS = 4096
MIN_INT, MAX_INT = -4503599627370496, 4503599627370495
LIMITS = {"tags": 8 * 1024, "desired": 32 * 1024, "reported": 32 * 1024}
READ_ONLY = frozenset({"$metadata", "$version"})


def merge_patch(target: JsonObject, patch: JsonObject) -> JsonObject:
    """RFC 7386 merge: objects merge, ``null`` deletes, anything else replaces. Returns a new object."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            current = merged.get(key)
            merged[key] = merge_patch(current if isinstance(current, dict) else {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def diff(old: JsonObject, new: JsonObject) -> JsonObject:
    """The merge patch that turns ``old`` into ``new`` (what a replace notifies devices with)."""
    patch: JsonObject = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = diff(before, value)
            if nested:
                patch[key] = nested
        elif before != value or key not in old:
            patch[key] = copy.deepcopy(value)
    return patch


def _metadata_for(value: Any, stamp: JsonObject) -> JsonObject:
    node = dict(stamp)
    if isinstance(value, dict):
        for key, child in value.items():
            node[key] = _metadata_for(child, stamp)
    return node


def merge_metadata(meta: JsonObject, patch: JsonObject, stamp: JsonObject) -> JsonObject:
    """Metadata after ``patch``: every key the patch touched, and its ancestors, get ``stamp``."""
    merged = {key: value for key, value in meta.items() if not key.startswith("$")} | stamp
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_metadata(merged[key], value, stamp)
        else:
            merged[key] = _metadata_for(value, stamp)
    return merged


def writable(section: JsonObject) -> JsonObject:
    """A collection as a client sends back what it read: the hub's ``$metadata`` and ``$version`` left out."""
    return {key: value for key, value in section.items() if key not in READ_ONLY}


def check_collection(section: str, value: Any, *, allow_null: bool) -> None:
    """Refuse what the hub refuses: bad keys, too deep, too large, out-of-range numbers."""
    if not isinstance(value, dict):
        raise InvalidTwin(f"'{section}' must be a JSON object")
    size = _check_node(section, value, depth=1, allow_null=allow_null)
    limit = LIMITS[section]
    if size > limit:
        raise InvalidTwin(f"'{section}' is {size} bytes; the limit is {limit} bytes")


def _check_node(path: str, value: JsonObject, depth: int, allow_null: bool) -> int:
    if depth > MAX_DEPTH:
        raise InvalidTwin(f"'{path}' nests objects deeper than {MAX_DEPTH} levels")
    size = 0
    for key, child in value.items():
        _check_key(path, key)
        size += len(key.encode()) + _value_size(f"{path}.{key}", child, depth, allow_null)
    return size


def _check_key(path: str, key: str) -> None:
    if not key:
        raise InvalidTwin(f"'{path}' has an empty property name")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidTwin(f"a property name in '{path}' is longer than {MAX_KEY_BYTES} bytes")
    bad = next((ch for ch in key if ch in ".$ " or ord(ch) < 32 or ord(ch) == 127), None)
    if bad is not None:
        raise InvalidTwin(
            f"property name {key[:64]!r} in '{path}' contains {bad!r}; "
            "'.', '$', space and control characters are not allowed"
        )


def _value_size(path: str, value: Any, depth: int, allow_null: bool) -> int:
    if value is None:
        if not allow_null:
            raise InvalidTwin(f"'{path}' is null; null only deletes properties in a patch")
        return 0
    if isinstance(value, bool):
        return 4
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise InvalidTwin(f"'{path}' is outside the hub's integer range")
        return 8
    if isinstance(value, float):
        return 8
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise InvalidTwin(f"'{path}' is a string longer than {MAX_STRING_CHARS} characters")
        return len(value)
    if isinstance(value, dict):
        return _check_node(path, value, depth + 1, allow_null)
    if isinstance(value, list):
        return sum(_value_size(f"{path}[]", item, depth, allow_null=False) for item in value)
    raise InvalidTwin(f"'{path}' has an unsupported value type")


@dataclass(frozen=True, slots=True)
class DesiredChange:
    """Desired properties that changed, for the device or module to hear of after the commit."""

    device_id: str
    module_id: str
    patch: JsonObject
    version: int


def etag_for(version: int) -> str:
    return base64.b64encode(version.to_bytes(8, "big")).decode()


@dataclass(frozen=True, slots=True)
class Properties:
    """One of the twin's property collections with its own version and metadata."""

    values: JsonObject = field(default_factory=dict)
    version: int = 1
    metadata: JsonObject = field(default_factory=dict)

    def patched(self, patch: JsonObject, now: float, *, with_version_stamp: bool) -> Properties:
        version = self.version + 1
        stamp: JsonObject = {"$lastUpdated": iso(now)}
        if with_version_stamp:
            stamp["$lastUpdatedVersion"] = version
        return Properties(merge_patch(self.values, patch), version, merge_metadata(self.metadata, patch, stamp))

    def to_json(self) -> JsonObject:
        meta = self.metadata or {"$lastUpdated": iso(0)}
        return {**self.values, "$metadata": meta, "$version": self.version}

    def for_device(self) -> JsonObject:
        return {**self.values, "$version": self.version}


@dataclass(frozen=True, slots=True)
class Twin:
    """The stored part of a device or module twin; identity fields come from the registry."""

    device_id: str
    module_id: str = ""
    tags: JsonObject = field(default_factory=dict)
    desired: Properties = field(default_factory=Properties)
    reported: Properties = field(default_factory=Properties)
    version: int = 1

    @classmethod
    def initial(cls, device_id: str, module_id: str, tags: JsonObject, desired: JsonObject, now: float) -> Twin:
        # Twins share their dicts with whoever built them: no code here changes a dict in place
        # (merge_patch builds new ones), so no copy is needed.
        for section, value in (("tags", tags), ("desired", desired)):
            check_collection(section, value, allow_null=False)
        updated = iso(now)
        stamp = {"$lastUpdated": updated, "$lastUpdatedVersion": 1}
        desired_props = Properties(desired, 1, merge_metadata({}, desired, stamp))
        reported_props = Properties({}, 1, {"$lastUpdated": updated})
        return cls(device_id, module_id, tags, desired_props, reported_props, 1)

    @property
    def etag(self) -> str:
        return etag_for(self.version)

    def patch_desired(self, patch: JsonObject, now: float) -> Twin:
        check_collection("desired", patch, allow_null=True)
        desired = self.desired.patched(patch, now, with_version_stamp=True)
        check_collection("desired", desired.values, allow_null=False)
        return replace(self, desired=desired, version=self.version + 1)

    def patch_reported(self, patch: JsonObject, now: float) -> Twin:
        check_collection("reported", patch, allow_null=True)
        reported = self.reported.patched(patch, now, with_version_stamp=False)
        check_collection("reported", reported.values, allow_null=False)
        return replace(self, reported=reported, version=self.version + 1)

    def patch_tags(self, patch: JsonObject) -> Twin:
        check_collection("tags", patch, allow_null=True)
        tags = merge_patch(self.tags, patch)
        check_collection("tags", tags, allow_null=False)
        return replace(self, tags=tags, version=self.version + 1)

    def replace_tags(self, tags: JsonObject) -> Twin:
        check_collection("tags", tags, allow_null=False)
        return replace(self, tags=tags, version=self.version + 1)

    def replace_desired(self, desired: JsonObject, now: float) -> tuple[Twin, JsonObject]:
        """Replace all desired properties; also returns the diff connected devices are sent.

        Replacing them with what they already are changes nothing, not even the version.
        """
        check_collection("desired", desired, allow_null=False)
        change = diff(self.desired.values, desired)
        return (self.patch_desired(change, now) if change else self), change

    def reset(self, tags: JsonObject, desired: JsonObject, now: float) -> Twin:
        """Back to an initial state (re-provisioning with reset), versions still moving forward."""
        fresh = Twin.initial(self.device_id, self.module_id, tags, desired, now)
        return replace(
            fresh,
            desired=replace(fresh.desired, version=self.desired.version + 1),
            reported=replace(fresh.reported, version=self.reported.version + 1),
            version=self.version + 1,
        )

    def moved(self) -> Twin:
        """The same twin data carried to another hub (re-provisioning with migration)."""
        return replace(self, version=self.version + 1)
