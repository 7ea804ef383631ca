"""The provisioning service's management operations (spec/dps-protocol.md §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeprov.clock import Clock
from edgeprov.dps.model import Attempt, Enrollment, EnrollmentKind, LinkedHub, RegistrationRecord
from edgeprov.errors import (
    BadRequest,
    EdgeprovError,
    EnrollmentNotFound,
    LinkedHubNotFound,
    PreconditionFailed,
    RegistrationNotFound,
)
from edgeprov.etags import check_if_match, is_conditional
from edgeprov.store.base import AttemptFilter, Store, Tx
from edgeprov.types import JsonObject

MAX_BULK = 10
MAX_PAGE = 1000
BULK_MODES = ("create", "update", "updateIfMatchETag", "delete")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    continuation: str | None


@dataclass(frozen=True, slots=True)
class BulkError:
    id: str
    error: EdgeprovError


class EnrollmentService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def put(self, kind: EnrollmentKind, enrollment_id: str, body: JsonObject, if_match: str | None) -> Enrollment:
        now = self._clock.now()

        def write(tx: Tx) -> Enrollment:
            existing = tx.get_enrollment(kind, enrollment_id.lower())
            if existing is not None:
                check_if_match(if_match, existing.etag, f"{_noun(kind)} {enrollment_id!r}")
            elif is_conditional(if_match):
                raise PreconditionFailed(f"{_noun(kind)} {enrollment_id!r} does not exist, so If-Match cannot match")
            enrollment = Enrollment.from_json(kind, enrollment_id, body, existing, now)
            tx.put_enrollment(enrollment)
            tx.bump_config_version()
            return enrollment

        return await self._store.write(write)

    async def get(self, kind: EnrollmentKind, enrollment_id: str) -> Enrollment:
        enrollment = await self._store.read(lambda tx: tx.get_enrollment(kind, enrollment_id.lower()))
        if enrollment is None:
            raise EnrollmentNotFound(f"{_noun(kind)} {enrollment_id!r} does not exist")
        return enrollment

    async def delete(self, kind: EnrollmentKind, enrollment_id: str, if_match: str | None) -> None:
        def write(tx: Tx) -> None:
            existing = tx.get_enrollment(kind, enrollment_id.lower())
            if existing is None:
                raise EnrollmentNotFound(f"{_noun(kind)} {enrollment_id!r} does not exist")
            check_if_match(if_match, existing.etag, f"{_noun(kind)} {enrollment_id!r}")
            tx.delete_enrollment(kind, existing.key)
            tx.bump_config_version()

        await self._store.write(write)

    async def query(self, kind: EnrollmentKind, query: JsonObject, continuation: str | None, page_size: int) -> Page:
        _check_query(query)
        size = _page_size(page_size)
        items = await self._store.read(lambda tx: tx.list_enrollments(kind, continuation or "", size + 1))
        return _page(items, size, lambda e: e.key)

    async def bulk(self, kind: EnrollmentKind, body: JsonObject) -> list[BulkError]:
        """Bulk create/update/delete; each item succeeds or fails on its own, like the cloud's."""
        mode = body.get("mode")
        items_field = "enrollments" if kind is EnrollmentKind.INDIVIDUAL else "enrollmentGroups"
        items = body.get(items_field)
        if mode not in BULK_MODES:
            raise BadRequest(f"bulk 'mode' must be one of {', '.join(BULK_MODES)}")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise BadRequest(f"bulk operation needs a non-empty '{items_field}' list of objects")
        if len(items) > MAX_BULK:
            raise BadRequest(f"a bulk operation takes at most {MAX_BULK} items, not {len(items)}")
        id_field = "registrationId" if kind is EnrollmentKind.INDIVIDUAL else "enrollmentGroupId"
        errors: list[BulkError] = []
        for item in items:
            item_id = item.get(id_field)
            try:
                if not isinstance(item_id, str):
                    raise BadRequest(f"every item needs '{id_field}'")
                await self._bulk_item(kind, str(mode), item_id, item)
            except EdgeprovError as exc:
                errors.append(BulkError(str(item_id), exc))
        return errors

    async def _bulk_item(self, kind: EnrollmentKind, mode: str, item_id: str, item: JsonObject) -> None:
        if mode == "delete":
            await self.delete(kind, item_id, None)
            return
        exists = await self._store.read(lambda tx: tx.get_enrollment(kind, item_id.lower())) is not None
        if mode == "create" and exists:
            raise PreconditionFailed(f"{_noun(kind)} {item_id!r} already exists")
        if mode == "updateIfMatchETag":
            await self.put(kind, item_id, item, item.get("etag") or "")
            return
        await self.put(kind, item_id, item, None)

    async def attestation(self, kind: EnrollmentKind, enrollment_id: str) -> JsonObject:
        enrollment = await self.get(kind, enrollment_id)
        return {
            "type": "symmetricKey",
            "symmetricKey": {"primaryKey": enrollment.primary_key, "secondaryKey": enrollment.secondary_key},
        }


class RegistrationService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, registration_id: str) -> RegistrationRecord:
        record = await self._store.read(lambda tx: tx.get_registration(registration_id.lower()))
        if record is None:
            raise RegistrationNotFound(f"no registration record for {registration_id!r}")
        return record

    async def delete(self, registration_id: str, if_match: str | None) -> None:
        def write(tx: Tx) -> None:
            record = tx.get_registration(registration_id.lower())
            if record is None:
                raise RegistrationNotFound(f"no registration record for {registration_id!r}")
            check_if_match(if_match, record.etag, f"registration {registration_id!r}")
            tx.delete_registration(record.key)

        await self._store.write(write)

    async def of_group(self, group_id: str, continuation: str | None, page_size: int) -> Page:
        """Every registration made through a group (``POST /registrations/{groupId}/query``)."""
        group = await self._store.read(lambda tx: tx.get_enrollment(EnrollmentKind.GROUP, group_id.lower()))
        if group is None:
            raise EnrollmentNotFound(f"enrollment group {group_id!r} does not exist")
        size = _page_size(page_size)
        items = await self._store.read(lambda tx: tx.list_registrations(group.label, continuation or "", size + 1))
        return _page(items, size, lambda r: r.key)

    async def of_enrollment(self, enrollment: str | None, continuation: str | None, page_size: int) -> Page:
        size = _page_size(page_size)
        items = await self._store.read(lambda tx: tx.list_registrations(enrollment, continuation or "", size + 1))
        return _page(items, size, lambda r: r.key)

    async def attempts(self, query: AttemptFilter) -> list[Attempt]:
        return await self._store.read(lambda tx: tx.list_attempts(query))


class LinkedHubService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self) -> list[LinkedHub]:
        return await self._store.read(lambda tx: tx.list_linked_hubs())

    async def put(self, hostname: str, weight: int, apply_policy: bool) -> LinkedHub:
        hostname = hostname.lower()
        if not 1 <= weight <= 1000:
            raise BadRequest("allocation weight must be between 1 and 1000")

        def write(tx: Tx) -> LinkedHub:
            if hostname not in tx.list_hubs():
                hosted = ", ".join(tx.list_hubs())
                raise BadRequest(
                    f"hub {hostname!r} is not hosted by this service (hosted: {hosted}); start "
                    f"`edgeprov serve --hub-hostname {hostname}` to host it"
                )
            hub = LinkedHub(hostname, weight, apply_policy)
            tx.put_linked_hub(hub)
            tx.bump_config_version()
            return hub

        return await self._store.write(write)

    async def delete(self, hostname: str) -> None:
        def write(tx: Tx) -> None:
            if not tx.delete_linked_hub(hostname.lower()):
                raise LinkedHubNotFound(f"hub {hostname!r} is not linked")
            tx.bump_config_version()

        await self._store.write(write)


def _noun(kind: EnrollmentKind) -> str:
    return "enrollment group" if kind is EnrollmentKind.GROUP else "enrollment"


def _check_query(query: JsonObject) -> None:
    text = query.get("query", "*")
    if not isinstance(text, str) or text.strip().upper() not in (
        "*",
        "SELECT *",
        "SELECT * FROM ENROLLMENTS",
        "SELECT * FROM ENROLLMENTGROUPS",
    ):
        raise BadRequest(f"query {str(text)[:100]!r} is not supported: use 'SELECT *'")


def _page_size(requested: int) -> int:
    return MAX_PAGE if requested <= 0 else min(requested, MAX_PAGE)


def _page(items: Sequence[Any], size: int, key: Any) -> Page:
    if len(items) > size:
        return Page(list(items[:size]), key(items[size - 1]))
    return Page(list(items), None)
