"""The provisioning service's nouns and their wire shapes (spec/dps-protocol.md §1.3, §5.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgeprov import sas
from edgeprov.clock import iso
from edgeprov.errors import BadRequest
from edgeprov.hub.twin import check_collection, writable
from edgeprov.ids import check_device_id, check_registration_id, new_guid
from edgeprov.types import JsonObject


class EnrollmentKind(StrEnum):
    INDIVIDUAL = "individual"
    GROUP = "group"


class AllocationPolicy(StrEnum):
    HASHED = "hashed"
    GEO_LATENCY = "geoLatency"
    STATIC = "static"
    CUSTOM = "custom"


class RegistrationStatus(StrEnum):
    UNASSIGNED = "unassigned"
    ASSIGNING = "assigning"
    ASSIGNED = "assigned"
    FAILED = "failed"
    DISABLED = "disabled"


class Substatus(StrEnum):
    INITIAL_ASSIGNMENT = "initialAssignment"
    DEVICE_DATA_MIGRATED = "deviceDataMigrated"
    DEVICE_DATA_RESET = "deviceDataReset"
    REPROVISIONED_TO_INITIAL_ASSIGNMENT = "reprovisionedToInitialAssignment"


def new_etag() -> str:
    return f'"{new_guid()}"'


def _object(body: JsonObject, name: str) -> JsonObject:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be a JSON object")
    return value


def _bool(body: JsonObject, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false")
    return value


@dataclass(frozen=True, slots=True)
class InitialTwin:
    tags: JsonObject = field(default_factory=dict)
    desired: JsonObject = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Any) -> InitialTwin:
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise BadRequest("'initialTwin' must be a JSON object")
        # .NET TwinState examples send $metadata/$version inside tags and desired (§5.3).
        tags = writable(_object(body, "tags"))
        desired = writable(_object(_object(body, "properties"), "desired"))
        return cls(tags, desired)

    def to_json(self) -> JsonObject:
        return {"tags": self.tags, "properties": {"desired": self.desired}}


@dataclass(frozen=True, slots=True)
class ReprovisionPolicy:
    update_hub_assignment: bool = True
    migrate_device_data: bool = True

    @classmethod
    def from_json(cls, body: Any) -> ReprovisionPolicy:
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise BadRequest("'reprovisionPolicy' must be a JSON object")
        return cls(_bool(body, "updateHubAssignment", True), _bool(body, "migrateDeviceData", True))

    def to_json(self) -> JsonObject:
        return {
            "updateHubAssignment": self.update_hub_assignment,
            "migrateDeviceData": self.migrate_device_data,
        }

    @property
    def name(self) -> str:
        """The portal's and ``az iot dps``'s name for the policy."""
        if not self.update_hub_assignment:
            return "never"
        return "reprovisionandmigratedata" if self.migrate_device_data else "reprovisionandresetdata"


@dataclass(frozen=True, slots=True)
class CustomAllocation:
    webhook_url: str
    api_version: str = "2021-10-01"

    @classmethod
    def from_json(cls, body: Any) -> CustomAllocation | None:
        if body is None:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("webhookUrl"), str):
            raise BadRequest("'customAllocationDefinition' needs a 'webhookUrl' string")
        url = body["webhookUrl"]
        if not url.startswith(("https://", "http://")):
            raise BadRequest("'customAllocationDefinition.webhookUrl' must be an http(s) URL")
        version = body.get("apiVersion") or "2021-10-01"
        if not isinstance(version, str) or version < "2018-09-01-preview":
            raise BadRequest("'customAllocationDefinition.apiVersion' must be 2018-09-01-preview or later")
        return cls(url, version)

    def to_json(self) -> JsonObject:
        return {"webhookUrl": self.webhook_url, "apiVersion": self.api_version}


@dataclass(frozen=True, slots=True)
class Enrollment:
    """An individual enrollment or an enrollment group with symmetric-key attestation."""

    kind: EnrollmentKind
    id: str
    primary_key: str
    secondary_key: str
    iot_edge: bool = False
    initial_twin: InitialTwin = field(default_factory=InitialTwin)
    enabled: bool = True
    reprovision: ReprovisionPolicy = field(default_factory=ReprovisionPolicy)
    allocation_policy: AllocationPolicy | None = None
    iot_hubs: tuple[str, ...] = ()
    custom_allocation: CustomAllocation | None = None
    device_id: str | None = None
    optional_device_information: JsonObject | None = None
    etag: str = ""
    created: float = 0.0
    updated: float = 0.0

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def label(self) -> str:
        """How the attempt log and messages name this enrollment."""
        return f"{self.kind}:{self.id}"

    def device_id_for(self, registration_id: str) -> str:
        return self.device_id or registration_id

    @classmethod
    def from_json(
        cls, kind: EnrollmentKind, path_id: str, body: JsonObject, existing: Enrollment | None, now: float
    ) -> Enrollment:
        """Build an enrollment from a service-API PUT body, keeping what the service owns."""
        id_field = "registrationId" if kind is EnrollmentKind.INDIVIDUAL else "enrollmentGroupId"
        body_id = body.get(id_field, path_id)
        if not isinstance(body_id, str) or body_id.lower() != path_id.lower():
            raise BadRequest(f"'{id_field}' in the body ({body_id!r}) differs from the path ({path_id!r})")
        check_registration_id(path_id, what=id_field)
        primary, secondary = _attestation_keys(body.get("attestation"), existing)
        device_id = body.get("deviceId") if kind is EnrollmentKind.INDIVIDUAL else None
        if device_id is not None:
            if not isinstance(device_id, str):
                raise BadRequest("'deviceId' must be a string")
            check_device_id(device_id)
        status = body.get("provisioningStatus") or "enabled"
        if status not in ("enabled", "disabled"):
            raise BadRequest("'provisioningStatus' must be 'enabled' or 'disabled'")
        info = body.get("optionalDeviceInformation")
        if info is not None and not isinstance(info, dict):
            raise BadRequest("'optionalDeviceInformation' must be a JSON object")
        enrollment = cls(
            kind=kind,
            id=path_id,
            primary_key=primary,
            secondary_key=secondary,
            iot_edge=_bool(_object(body, "capabilities"), "iotEdge", False),
            initial_twin=InitialTwin.from_json(body.get("initialTwin")),
            enabled=status == "enabled",
            reprovision=ReprovisionPolicy.from_json(body.get("reprovisionPolicy")),
            allocation_policy=_allocation_policy(body.get("allocationPolicy")),
            iot_hubs=_hub_list(body),
            custom_allocation=CustomAllocation.from_json(body.get("customAllocationDefinition")),
            device_id=device_id,
            optional_device_information=info if kind is EnrollmentKind.INDIVIDUAL else None,
            etag=new_etag(),
            created=existing.created if existing else now,
            updated=now,
        )
        enrollment.check()
        return enrollment

    def check(self) -> None:
        if self.allocation_policy is AllocationPolicy.CUSTOM and self.custom_allocation is None:
            raise BadRequest("allocation policy 'custom' needs 'customAllocationDefinition.webhookUrl'")
        if self.allocation_policy is AllocationPolicy.STATIC and len(self.iot_hubs) > 1:
            raise BadRequest("allocation policy 'static' takes exactly one hub in 'iotHubs'")
        # The twin must be one the hub accepts: refuse it now rather than at every registration.
        check_collection("tags", self.initial_twin.tags, allow_null=False)
        check_collection("desired", self.initial_twin.desired, allow_null=False)

    def to_json(self, *, include_keys: bool) -> JsonObject:
        attestation: JsonObject = {"type": "symmetricKey"}
        if include_keys:
            attestation["symmetricKey"] = {"primaryKey": self.primary_key, "secondaryKey": self.secondary_key}
        body: JsonObject = {}
        if self.kind is EnrollmentKind.INDIVIDUAL:
            body["registrationId"] = self.id
            if self.device_id:
                body["deviceId"] = self.device_id
            if self.optional_device_information is not None:
                body["optionalDeviceInformation"] = self.optional_device_information
        else:
            body["enrollmentGroupId"] = self.id
        body |= {
            "attestation": attestation,
            "capabilities": {"iotEdge": self.iot_edge},
            "initialTwin": self.initial_twin.to_json(),
            "etag": self.etag,
            "provisioningStatus": "enabled" if self.enabled else "disabled",
            "reprovisionPolicy": self.reprovision.to_json(),
            "createdDateTimeUtc": iso(self.created),
            "lastUpdatedDateTimeUtc": iso(self.updated),
            "iotHubs": list(self.iot_hubs),
        }
        if self.iot_hubs:
            body["iotHubHostName"] = self.iot_hubs[0]
        if self.allocation_policy:
            body["allocationPolicy"] = str(self.allocation_policy)
        if self.custom_allocation:
            body["customAllocationDefinition"] = self.custom_allocation.to_json()
        return body


def _attestation_keys(attestation: Any, existing: Enrollment | None) -> tuple[str, str]:
    if attestation is None:
        if existing is None:
            raise BadRequest('\'attestation\' is required; use {"type": "symmetricKey"}')
        return existing.primary_key, existing.secondary_key
    if not isinstance(attestation, dict):
        raise BadRequest("'attestation' must be a JSON object")
    kind = attestation.get("type")
    if kind != "symmetricKey":
        raise BadRequest(f"attestation type {kind!r} is not supported: edgeprov attests with 'symmetricKey'")
    keys = attestation.get("symmetricKey") or {}
    if not isinstance(keys, dict):
        raise BadRequest("'attestation.symmetricKey' must be a JSON object")
    primary, secondary = keys.get("primaryKey"), keys.get("secondaryKey")
    # Like the cloud: a key left out is kept on update and generated on create.
    primary = primary or (existing.primary_key if existing else sas.generate_key())
    secondary = secondary or (existing.secondary_key if existing else sas.generate_key())
    if not isinstance(primary, str) or not isinstance(secondary, str):
        raise BadRequest("symmetric keys must be base64 strings")
    sas.decode_key(primary, what="primaryKey")
    sas.decode_key(secondary, what="secondaryKey")
    return primary, secondary


def _allocation_policy(value: Any) -> AllocationPolicy | None:
    if value is None:
        return None
    try:
        return AllocationPolicy(value)
    except ValueError:
        raise BadRequest(
            f"'allocationPolicy' {value!r} is not one of {', '.join(p.value for p in AllocationPolicy)}"
        ) from None


def _hub_list(body: JsonObject) -> tuple[str, ...]:
    hubs = body.get("iotHubs")
    if hubs is None:
        legacy = body.get("iotHubHostName")
        hubs = [legacy] if legacy else []
    if not isinstance(hubs, list) or not all(isinstance(h, str) and h for h in hubs):
        raise BadRequest("'iotHubs' must be a list of hub host names")
    return tuple(dict.fromkeys(h.lower() for h in hubs))


@dataclass(frozen=True, slots=True)
class LinkedHub:
    hostname: str
    allocation_weight: int = 1
    apply_allocation_policy: bool = True

    def to_json(self) -> JsonObject:
        return {
            "name": self.hostname,
            "allocationWeight": self.allocation_weight,
            "applyAllocationPolicy": self.apply_allocation_policy,
        }


@dataclass(frozen=True, slots=True)
class RegistrationRecord:
    """What the service remembers of a device's last registration (DeviceRegistrationState)."""

    registration_id: str
    status: RegistrationStatus
    enrollment: str
    device_id: str | None = None
    assigned_hub: str | None = None
    substatus: Substatus | None = None
    error_code: int | None = None
    error_message: str | None = None
    payload: Any = None
    created: float = 0.0
    updated: float = 0.0
    etag: str = ""
    initial_hub: str | None = None
    operation_id: str | None = None

    @property
    def key(self) -> str:
        return self.registration_id.lower()

    @property
    def group_id(self) -> str | None:
        kind, _, name = self.enrollment.partition(":")
        return name if kind == EnrollmentKind.GROUP else None

    def to_json(self) -> JsonObject:
        body: JsonObject = {"registrationId": self.registration_id, "createdDateTimeUtc": iso(self.created)}
        if self.assigned_hub:
            body["assignedHub"] = self.assigned_hub
        if self.device_id:
            body["deviceId"] = self.device_id
        body["status"] = str(self.status)
        if self.substatus:
            body["substatus"] = str(self.substatus)
        if self.error_code is not None:
            body["errorCode"] = self.error_code
            body["errorMessage"] = self.error_message or ""
        body["lastUpdatedDateTimeUtc"] = iso(self.updated)
        body["etag"] = self.etag
        if self.payload is not None:
            body["payload"] = self.payload
        if self.group_id is not None:
            body["symmetricKey"] = {"enrollmentGroupId": self.group_id}
        return body


@dataclass(frozen=True, slots=True)
class Operation:
    """A register call's operation; ``body`` is the RegistrationOperationStatus to answer polls with."""

    operation_id: str
    registration_key: str
    enrollment: str
    status: RegistrationStatus
    body: bytes
    created: float


class AttemptOutcome(StrEnum):
    ASSIGNED = "assigned"
    FAILED = "failed"
    DISABLED = "disabled"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One registration attempt, kept in the bounded attempt log."""

    time: float
    source: str
    registration_id: str
    outcome: AttemptOutcome
    reason: str
    enrollment: str | None = None
    hub: str | None = None
    error_code: int | None = None
    message: str = ""
    transport: str = "https"

    def to_json(self) -> JsonObject:
        return {
            "time": iso(self.time),
            "source": self.source,
            "transport": self.transport,
            "registrationId": self.registration_id,
            "enrollment": self.enrollment,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "errorCode": self.error_code,
            "assignedHub": self.hub,
            "message": self.message,
        }
