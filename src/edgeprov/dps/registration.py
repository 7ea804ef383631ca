"""Device registration: attestation, allocation, reprovisioning and records, for every transport.

The HTTPS and MQTT adapters both call :class:`Provisioning`; a registration that is refused
changes no stored state (only the attempt log grows), and one that is assigned is committed
— hub identity, twin, registration record, operation and attempt — in one transaction before
the device hears back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from functools import partial
from typing import Any

from edgeprov.clock import Clock, iso
from edgeprov.dps.allocation import (
    WEBHOOK_FAILED_CODE,
    Allocation,
    AllocationFailed,
    WebhookCaller,
    allocate,
    candidates,
    effective_policy,
)
from edgeprov.dps.attestation import (
    DEFAULT_CLOCK_SKEW,
    AttestationRefused,
    Credentials,
    GroupKeys,
    Refusal,
    attest,
    check_expiry,
    check_resource,
    individual_credentials,
    parse_token,
)
from edgeprov.dps.model import (
    AllocationPolicy,
    Attempt,
    AttemptOutcome,
    Enrollment,
    EnrollmentKind,
    LinkedHub,
    Operation,
    RegistrationRecord,
    RegistrationStatus,
    Substatus,
    new_etag,
)
from edgeprov.dps.webhook import allocation_request, parse_allocation, redacted_url
from edgeprov.errors import BadRequest, EdgeprovError, OperationNotFound, RegistrationNotFound
from edgeprov.hub import registry
from edgeprov.hub.model import Device
from edgeprov.hub.twin import Twin
from edgeprov.ids import RegistrationId, new_guid, new_hex
from edgeprov.jsonutil import dumps
from edgeprov.sas import SasToken, same_token
from edgeprov.store.base import Store, Tx
from edgeprov.types import JsonObject

DISABLED_CODE = 401010
# Decided operations each worker keeps for the polls that follow (seconds of a fast roll-out); older
# ones are answered from the database. Bounded so memory does not grow with the fleet.
RECENT_OPERATIONS = 4_096


@dataclass(frozen=True, slots=True)
class DpsSettings:
    id_scope: str
    default_policy: AllocationPolicy = AllocationPolicy.HASHED
    clock_skew: float = DEFAULT_CLOCK_SKEW
    retry_after: int = 2


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """A register call as the wire adapters hand it over, before anything is trusted."""

    id_scope: str
    registration_id: str
    body: JsonObject
    authorization: str | None
    source: str = ""
    transport: str = "https"


class TwinMode(Enum):
    INITIAL = auto()
    KEEP = auto()
    MIGRATE = auto()
    RESET = auto()


@dataclass(frozen=True, slots=True)
class AssignmentPlan:
    """What registering would do to the hubs: pure data, shared by the real thing and the dry run."""

    hub: str
    device_id: str
    mode: TwinMode
    substatus: Substatus
    previous_hub: str | None = None
    twin: JsonObject = field(default_factory=dict)

    def initial_sections(self) -> tuple[JsonObject, JsonObject]:
        """The (tags, desired properties) a reset or first assignment starts the twin from."""
        return self.twin.get("tags") or {}, (self.twin.get("properties") or {}).get("desired") or {}

    def describe(self) -> str:
        if self.mode is TwinMode.INITIAL:
            return f"initial assignment to {self.hub}"
        if self.mode is TwinMode.KEEP:
            return f"stays on {self.hub}; device data kept"
        action = "migrated" if self.mode is TwinMode.MIGRATE else "reset to the initial twin"
        move = (
            f"moves from {self.previous_hub} to {self.hub}" if self.previous_hub != self.hub else f"stays on {self.hub}"
        )
        return f"{move}; device data {action}"


def plan_assignment(
    enrollment: Enrollment,
    registration_id: str,
    existing: RegistrationRecord | None,
    allocated_hub: str,
    webhook_twin: JsonObject | None = None,
) -> AssignmentPlan:
    """Apply the enrollment's reprovision policy (spec/dps-protocol.md §7.2-7.3)."""
    device_id = enrollment.device_id_for(registration_id)
    twin = webhook_twin if webhook_twin is not None else enrollment.initial_twin.to_json()
    previous = existing.assigned_hub if existing and existing.status is RegistrationStatus.ASSIGNED else None
    if previous is None:
        return AssignmentPlan(allocated_hub, device_id, TwinMode.INITIAL, Substatus.INITIAL_ASSIGNMENT, None, twin)
    assert existing is not None
    policy = enrollment.reprovision
    if not policy.update_hub_assignment:
        kept = existing.substatus or Substatus.INITIAL_ASSIGNMENT
        return AssignmentPlan(previous, device_id, TwinMode.KEEP, kept, previous, twin)
    if webhook_twin is not None or not policy.migrate_device_data:
        return AssignmentPlan(allocated_hub, device_id, TwinMode.RESET, Substatus.DEVICE_DATA_RESET, previous, twin)
    if allocated_hub == previous:
        kept = existing.substatus or Substatus.INITIAL_ASSIGNMENT
        return AssignmentPlan(allocated_hub, device_id, TwinMode.KEEP, kept, previous, twin)
    substatus = (
        Substatus.REPROVISIONED_TO_INITIAL_ASSIGNMENT
        if allocated_hub == existing.initial_hub
        else Substatus.DEVICE_DATA_MIGRATED
    )
    return AssignmentPlan(allocated_hub, device_id, TwinMode.MIGRATE, substatus, previous, twin)


def apply_plan(tx: Tx, plan: AssignmentPlan, keys: tuple[str, str], iot_edge: bool, now: float) -> None:
    previous_device_id = plan.device_id
    tags, desired = plan.initial_sections()
    moving = plan.previous_hub is not None and plan.previous_hub != plan.hub
    registry.upsert_sas_device(tx, plan.hub, plan.device_id, keys, iot_edge, now)
    if plan.mode is TwinMode.MIGRATE and moving:
        assert plan.previous_hub is not None
        if not registry.move_device(tx, plan.previous_hub, plan.hub, previous_device_id):
            registry.ensure_twin(tx, plan.hub, plan.device_id, tags, desired, now)
        return
    if moving:
        assert plan.previous_hub is not None
        tx.delete_device(plan.previous_hub, previous_device_id)
    if plan.mode is TwinMode.KEEP:
        registry.ensure_twin(tx, plan.hub, plan.device_id, tags, desired, now)
    else:
        registry.set_initial_twin(tx, plan.hub, plan.device_id, tags, desired, now)


def new_operation_id() -> str:
    return f"5.{new_hex(16)}.{new_guid()}"


@dataclass(frozen=True, slots=True)
class _Config:
    version: int
    groups: tuple[GroupKeys, ...]
    linked: tuple[LinkedHub, ...]
    # A fleet on enrollment groups alone spares every registration the individual lookup.
    has_individuals: bool


@dataclass(frozen=True, slots=True)
class Simulation:
    """The dry run's answer: what registering would do, or why it would be refused."""

    registration_id: str
    outcome: str
    enrollment: Enrollment | None = None
    plan: AssignmentPlan | None = None
    reason: str = ""
    existing: RegistrationRecord | None = None

    def to_json(self) -> JsonObject:
        body: JsonObject = {"registrationId": self.registration_id, "outcome": self.outcome}
        if self.enrollment is not None:
            body["enrollment"] = self.enrollment.label
            body["edgeEnabled"] = self.enrollment.iot_edge
            body["reprovisionPolicy"] = self.enrollment.reprovision.name
        if self.plan is not None:
            body |= {
                "assignedHub": self.plan.hub,
                "deviceId": self.plan.device_id,
                "substatus": str(self.plan.substatus),
                "effect": self.plan.describe(),
                "initialTwin": self.plan.twin,
            }
        if self.existing is not None:
            body["currentRegistration"] = self.existing.to_json()
        if self.reason:
            body["reason"] = self.reason
        return body


@dataclass(frozen=True, slots=True)
class _Decided:
    """A decided operation, with the token that registered it, kept for the device's poll."""

    operation: Operation
    credentials: Credentials
    authorization: str
    token: SasToken


@dataclass(frozen=True, slots=True)
class _Registration:
    """One authentic register call on its way into the write transaction."""

    request: RegisterRequest
    registration_id: str
    credentials: Credentials
    linked: tuple[LinkedHub, ...]
    allocation: Allocation | AllocationFailed | None
    now: float

    @property
    def enrollment(self) -> Enrollment:
        return self.credentials.enrollment

    def attempt(self, outcome: AttemptOutcome, reason: str, **details: Any) -> Attempt:
        return Attempt(
            self.now,
            self.request.source,
            self.registration_id,
            outcome,
            reason,
            self.enrollment.label,
            transport=self.request.transport,
            **details,
        )


class Provisioning:
    """The provisioning service's device-facing operations."""

    def __init__(self, store: Store, clock: Clock, webhooks: WebhookCaller, settings: DpsSettings) -> None:
        self._store = store
        self._clock = clock
        self._webhooks = webhooks
        self.settings = settings
        self._config: _Config | None = None
        self._recent: OrderedDict[str, _Decided] = OrderedDict()

    # -- register ----------------------------------------------------------------------------------
    async def register(self, request: RegisterRequest) -> Operation:
        now = self._clock.now()
        registration_id = request.registration_id
        try:
            registration_id = RegistrationId(request.registration_id)
            _check_body(request.body, registration_id)
            token, credentials, config = await self._attest(request, registration_id, now)
        except EdgeprovError as exc:
            await self._log_refusal(request, registration_id, exc, now)
            raise
        enrollment = credentials.enrollment
        allocation: Allocation | AllocationFailed | None = None
        if enrollment.enabled and effective_policy(enrollment, self.settings.default_policy) is AllocationPolicy.CUSTOM:
            allocation = await self._call_webhook(enrollment, registration_id, request.body.get("payload"), config)
        registration = _Registration(request, registration_id, credentials, config.linked, allocation, now)
        initial = self._prepare_initial(registration)
        operation = await self._store.write(partial(self._commit, registration, initial))
        self._remember(_Decided(operation, credentials, request.authorization or "", token))
        return operation

    def _remember(self, decided: _Decided) -> None:
        """Keep a decided operation's answer for the device's poll, which usually comes back to this worker."""
        self._recent[decided.operation.operation_id] = decided
        if len(self._recent) > RECENT_OPERATIONS:
            self._recent.popitem(last=False)

    async def _attest(
        self, request: RegisterRequest, registration_id: RegistrationId, now: float
    ) -> tuple[SasToken, Credentials, _Config]:
        token = parse_token(request.authorization)
        check_resource(token, self.settings.id_scope, registration_id)
        if request.id_scope.lower() != self.settings.id_scope.lower():
            check_resource(token, request.id_scope, registration_id)  # names the scope mix-up
        config, individual = await self._current(registration_id.key)
        credentials = attest(token, registration_id, individual, config.groups)
        check_expiry(token, now, self.settings.clock_skew, credentials.enrollment)
        return token, credentials, config

    async def _current(self, registration_key: str) -> tuple[_Config, Enrollment | None]:
        """The enrollment groups and linked hubs, and the individual enrollment of this registration id."""
        config = await self._groups()
        if not config.has_individuals:
            return config, None
        individual = await self._store.read(lambda tx: tx.get_enrollment(EnrollmentKind.INDIVIDUAL, registration_key))
        return config, individual

    async def _groups(self) -> _Config:
        """Enrollment groups and linked hubs, cached until the configuration version moves."""
        version = self._store.config_version()
        config = self._config
        if config is None or config.version != version:
            config = await self._store.read(lambda tx: _load_config(tx, version))
            self._config = config
        return config

    async def _call_webhook(
        self, enrollment: Enrollment, registration_id: str, payload: Any, config: _Config
    ) -> Allocation | AllocationFailed:
        try:
            hubs = [hub.hostname for hub in candidates(enrollment, config.linked)]
            existing = await self._store.read(lambda tx: tx.get_registration(registration_id.lower()))
            assert enrollment.custom_allocation is not None
            url = enrollment.custom_allocation.webhook_url
            request = allocation_request(enrollment, registration_id, existing, payload, hubs)
            try:
                response = await self._webhooks.call(url, request)
            except EdgeprovError as exc:
                raise AllocationFailed(
                    f"custom allocation webhook {redacted_url(url)} failed: {exc.message}", WEBHOOK_FAILED_CODE
                ) from None
            return parse_allocation(response, hubs, url)
        except AllocationFailed as failure:
            return failure

    def _prepare_initial(self, registration: _Registration) -> _InitialAssignment | None:
        """What a first registration writes, built before the write lock is taken.

        Most registrations of a roll-out are first ones; building their rows here keeps the time
        the database's single write lock is held (which every worker waits for) to the writes.
        """
        if not registration.enrollment.enabled:
            return None
        try:
            plan = self._plan(registration, None)
        except AllocationFailed:
            return None
        tags, desired = plan.initial_sections()
        record = _assigned_record(registration, plan, None)
        return _InitialAssignment(
            plan,
            registry.new_sas_device(
                plan.device_id, registration.credentials.keys_b64(), registration.enrollment.iot_edge, registration.now
            ),
            Twin.initial(plan.device_id, "", tags, desired, registration.now),
            record,
            registration.attempt(AttemptOutcome.ASSIGNED, "initial", hub=plan.hub, message=plan.describe()),
            assigned_operation(record),
        )

    def _commit(self, registration: _Registration, initial: _InitialAssignment | None, tx: Tx) -> Operation:
        enrollment, now = registration.enrollment, registration.now
        if not enrollment.enabled:
            noun = "enrollment group" if enrollment.kind is EnrollmentKind.GROUP else "enrollment"
            message = f"{noun} {enrollment.id!r} is disabled"
            return _unassigned(
                tx, registration, RegistrationStatus.DISABLED, DISABLED_CODE, message, "enrollment-disabled"
            )
        existing = tx.get_registration(registration.registration_id.lower())
        if (
            existing is None
            and initial is not None
            and registry.create_device(tx, initial.plan.hub, initial.device, initial.twin, now)
        ):
            tx.put_registration(initial.record)
            tx.add_attempt(initial.attempt)
            return initial.operation
        try:
            plan = self._plan(registration, existing)
        except AllocationFailed as failure:
            return _unassigned(
                tx, registration, RegistrationStatus.FAILED, failure.failure_code, failure.message, "allocation-failed"
            )
        apply_plan(tx, plan, registration.credentials.keys_b64(), enrollment.iot_edge, now)
        record = _assigned_record(registration, plan, existing)
        tx.put_registration(record)
        tx.add_attempt(
            registration.attempt(AttemptOutcome.ASSIGNED, plan.mode.name.lower(), hub=plan.hub, message=plan.describe())
        )
        return assigned_operation(record)

    def _plan(self, registration: _Registration, existing: RegistrationRecord | None) -> AssignmentPlan:
        allocation, enrollment = registration.allocation, registration.enrollment
        if isinstance(allocation, AllocationFailed):
            raise allocation
        if isinstance(allocation, Allocation):
            return plan_assignment(
                enrollment, registration.registration_id, existing, allocation.hub, allocation.initial_twin
            )
        policy = effective_policy(enrollment, self.settings.default_policy)
        hub = allocate(policy, registration.registration_id, candidates(enrollment, registration.linked))
        return plan_assignment(enrollment, registration.registration_id, existing, hub)

    async def _log_refusal(
        self, request: RegisterRequest, registration_id: str, exc: EdgeprovError, now: float
    ) -> None:
        enrollment = exc.enrollment.label if isinstance(exc, AttestationRefused) and exc.enrollment else None
        reason = str(exc.reason) if isinstance(exc, AttestationRefused) else type(exc).__name__
        attempt = Attempt(
            now,
            request.source,
            registration_id[:128],
            AttemptOutcome.REFUSED,
            reason,
            enrollment,
            error_code=exc.code,
            message=exc.message,
            transport=request.transport,
        )
        await self._store.write(lambda tx: tx.add_attempt(attempt))

    # -- polling and lookups --------------------------------------------------------------------------
    async def operation_status(
        self, id_scope: str, registration_id: str, operation_id: str, authorization: str | None
    ) -> Operation:
        """The operation's state; its token must still prove the registration's enrollment."""
        key = RegistrationId(registration_id).key
        recent = self._recent.get(operation_id)
        if recent is not None and recent.operation.registration_key == key:
            if authorization is not None and same_token(authorization, recent.authorization):
                # The very token attestation verified moments ago (clients poll with the token they
                # registered with): only its expiry can have changed since.
                check_expiry(recent.token, self._clock.now(), self.settings.clock_skew, recent.credentials.enrollment)
                return recent.operation
            operation, credentials = recent.operation, recent.credentials
        else:
            operation = await self._stored_operation(key, registration_id, operation_id)
            found = await self._credentials(operation.enrollment, registration_id)
            if found is None:
                raise AttestationRefused(Refusal.WRONG_KEY, "the registration's enrollment no longer exists")
            credentials = found
        token = parse_token(authorization)
        check_resource(token, self.settings.id_scope, registration_id)
        if not credentials.verify(token):
            raise AttestationRefused(Refusal.WRONG_KEY, "the token does not prove this registration's enrollment")
        check_expiry(token, self._clock.now(), self.settings.clock_skew, credentials.enrollment)
        return operation

    async def _stored_operation(self, key: str, registration_id: str, operation_id: str) -> Operation:
        """An operation decided by another worker: the registration's latest, or an unassigned outcome."""
        record, unassigned = await self._store.read(
            lambda tx: (tx.get_registration(key), tx.get_operation(operation_id))
        )
        if record is not None and record.operation_id == operation_id:
            return assigned_operation(record)
        if unassigned is not None and unassigned.registration_key == key:
            return unassigned
        raise OperationNotFound(f"no registration operation {operation_id[:80]!r} for {registration_id!r}")

    async def _credentials(self, label: str, registration_id: str) -> Credentials | None:
        kind, _, name = label.partition(":")
        if kind == EnrollmentKind.INDIVIDUAL:
            individual = await self._store.read(lambda tx: tx.get_enrollment(EnrollmentKind.INDIVIDUAL, name.lower()))
            return individual_credentials(individual) if individual else None
        group = next((g for g in (await self._groups()).groups if g.enrollment.key == name.lower()), None)
        return group.credentials(registration_id) if group else None

    async def registration_status(self, request: RegisterRequest) -> RegistrationRecord:
        registration_id = RegistrationId(request.registration_id)
        await self._attest(request, registration_id, self._clock.now())
        record = await self._store.read(lambda tx: tx.get_registration(registration_id.key))
        if record is None:
            raise RegistrationNotFound(f"{registration_id!r} has not registered")
        return record

    # -- dry run ------------------------------------------------------------------------------------
    async def simulate(self, registration_id: str, enrollment_id: str | None = None) -> Simulation:
        reg = RegistrationId(registration_id)
        config, individual = await self._current(reg.key)
        existing = await self._store.read(lambda tx: tx.get_registration(reg.key))
        enrollment = _pick_enrollment(reg, individual, config.groups, enrollment_id)
        if isinstance(enrollment, str):
            return Simulation(reg, "refused", reason=enrollment, existing=existing)
        if not enrollment.enabled:
            return Simulation(reg, "disabled", enrollment, reason=f"{enrollment.label} is disabled", existing=existing)
        policy = effective_policy(enrollment, self.settings.default_policy)
        try:
            hubs = candidates(enrollment, config.linked)
            if policy is AllocationPolicy.CUSTOM:
                assert enrollment.custom_allocation is not None
                url = redacted_url(enrollment.custom_allocation.webhook_url)
                return Simulation(
                    reg,
                    "assigned-by-webhook",
                    enrollment,
                    existing=existing,
                    reason=f"the hub is chosen by {url} among {', '.join(h.hostname for h in hubs)}; "
                    "a dry run does not call it",
                )
            plan = plan_assignment(enrollment, reg, existing, allocate(policy, reg, hubs))
        except AllocationFailed as failure:
            return Simulation(reg, "failed", enrollment, reason=failure.message, existing=existing)
        return Simulation(reg, "assigned", enrollment, plan, existing=existing)


@dataclass(frozen=True, slots=True)
class _InitialAssignment:
    """The rows a first registration writes, and its answer."""

    plan: AssignmentPlan
    device: Device
    twin: Twin
    record: RegistrationRecord
    attempt: Attempt
    operation: Operation


def _assigned_record(
    registration: _Registration, plan: AssignmentPlan, existing: RegistrationRecord | None
) -> RegistrationRecord:
    allocation = registration.allocation
    return RegistrationRecord(
        registration_id=registration.registration_id,
        status=RegistrationStatus.ASSIGNED,
        enrollment=registration.enrollment.label,
        device_id=plan.device_id,
        assigned_hub=plan.hub,
        substatus=plan.substatus,
        payload=allocation.payload if isinstance(allocation, Allocation) else None,
        created=existing.created if existing else registration.now,
        updated=registration.now,
        etag=new_etag(),
        initial_hub=existing.initial_hub if existing and existing.initial_hub else plan.hub,
        operation_id=new_operation_id(),
    )


def assigned_operation(record: RegistrationRecord) -> Operation:
    """The answer to polls of the operation that assigned ``record``."""
    assert record.operation_id is not None
    body = dumps(
        {"operationId": record.operation_id, "status": str(record.status), "registrationState": record.to_json()}
    )
    return Operation(record.operation_id, record.key, record.enrollment, record.status, body, record.updated)


def _unassigned(
    tx: Tx, registration: _Registration, status: RegistrationStatus, code: int, message: str, reason: str
) -> Operation:
    """A disabled or failed outcome: no record changes; only its poll answer and the attempt are kept."""
    state = {
        "registrationId": registration.registration_id,
        "status": str(status),
        "errorCode": code,
        "errorMessage": message,
        "lastUpdatedDateTimeUtc": iso(registration.now),
    }
    operation_id = new_operation_id()
    body = dumps({"operationId": operation_id, "status": str(status), "registrationState": state})
    operation = Operation(
        operation_id,
        registration.registration_id.lower(),
        registration.enrollment.label,
        status,
        body,
        registration.now,
    )
    tx.put_operation(operation)
    outcome = AttemptOutcome.DISABLED if status is RegistrationStatus.DISABLED else AttemptOutcome.FAILED
    tx.add_attempt(registration.attempt(outcome, reason, error_code=code, message=message))
    return operation


def _pick_enrollment(
    reg: RegistrationId, individual: Enrollment | None, groups: Sequence[GroupKeys], enrollment_id: str | None
) -> Enrollment | str:
    if individual is not None:
        if enrollment_id and enrollment_id.lower() != individual.key:
            return (
                f"individual enrollment {individual.id!r} exists for this registration id and takes precedence "
                f"over {enrollment_id!r}"
            )
        return individual
    if enrollment_id:
        group = next((g.enrollment for g in groups if g.enrollment.key == enrollment_id.lower()), None)
        return group or f"no individual enrollment for {reg!r} and no enrollment group {enrollment_id!r}"
    if len(groups) == 1:
        return groups[0].enrollment
    if not groups:
        return f"no individual enrollment for {reg!r} and no enrollment group exists"
    names = ", ".join(g.enrollment.id for g in groups)
    return (
        f"no individual enrollment for {reg!r}; it matches whichever group's derived key it signs with "
        f"({names}): name one with --enrollment-id"
    )


def _load_config(tx: Tx, version: int) -> _Config:
    groups = tx.list_enrollments(EnrollmentKind.GROUP, "", 1_000_000)
    individuals = bool(tx.list_enrollments(EnrollmentKind.INDIVIDUAL, "", 1))
    return _Config(version, tuple(GroupKeys.of(g) for g in groups), tuple(tx.list_linked_hubs()), individuals)


def _check_body(body: JsonObject, registration_id: str) -> None:
    body_id = body.get("registrationId")
    if body_id is not None and (not isinstance(body_id, str) or body_id.lower() != registration_id.lower()):
        raise BadRequest(
            f"'registrationId' in the body ({str(body_id)[:128]!r}) differs from the path ({registration_id!r})"
        )
    if "tpm" in body and body["tpm"] is not None:
        raise BadRequest("TPM attestation is not supported: edgeprov attests with symmetric keys")
