"""Symmetric-key attestation: which enrollment a device's SAS token proves, or why it proves none.

A refusal names its cause so an operator can act on it (wrong key, the group key used where a
derived key belongs, a registration id in another case, an expired token with the clock
difference, ...) without the message ever carrying key material.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from edgeprov import sas
from edgeprov.dps.model import Enrollment
from edgeprov.errors import Unauthorized

# Devices stamp tokens with their own clock; aziot-identityd gives them 30 s to live.
DEFAULT_CLOCK_SKEW = 300.0


class Refusal(StrEnum):
    """Reason codes kept in the attempt log."""

    MALFORMED_TOKEN = "malformed-token"
    WRONG_SCOPE = "wrong-scope"
    WRONG_RESOURCE = "wrong-resource"
    UNKNOWN_REGISTRATION = "unknown-registration"
    WRONG_KEY = "wrong-key"
    GROUP_KEY_USED = "group-key-used"
    CASE_MISMATCH = "case-mismatch"
    INDIVIDUAL_TAKES_PRECEDENCE = "individual-takes-precedence"
    TOKEN_EXPIRED = "token-expired"


class AttestationRefused(Unauthorized):
    def __init__(self, reason: Refusal, message: str, enrollment: Enrollment | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.enrollment = enrollment


@dataclass(frozen=True, slots=True)
class Credentials:
    """What attestation proved: the enrollment, and the device's own (primary, secondary) keys."""

    enrollment: Enrollment
    primary: bytes
    secondary: bytes

    def verify(self, token: sas.SasToken) -> bool:
        return token.signed_with(self.primary) or token.signed_with(self.secondary)

    def keys_b64(self) -> tuple[str, str]:
        return base64.b64encode(self.primary).decode(), base64.b64encode(self.secondary).decode()


@dataclass(frozen=True, slots=True)
class GroupKeys:
    """An enrollment group with its keys decoded once, for the per-request derivations."""

    enrollment: Enrollment
    primary: bytes
    secondary: bytes
    _derive_primary: sas.DeviceKeyDeriver = field(repr=False, compare=False)
    _derive_secondary: sas.DeviceKeyDeriver = field(repr=False, compare=False)

    @classmethod
    def of(cls, enrollment: Enrollment) -> GroupKeys:
        primary, secondary = sas.decode_key(enrollment.primary_key), sas.decode_key(enrollment.secondary_key)
        return cls(enrollment, primary, secondary, sas.DeviceKeyDeriver(primary), sas.DeviceKeyDeriver(secondary))

    def credentials(self, registration_id: str) -> Credentials:
        return Credentials(
            self.enrollment,
            self._derive_primary.derive(registration_id),
            self._derive_secondary.derive(registration_id),
        )

    def raw_signs(self, token: sas.SasToken) -> bool:
        return token.signed_with(self.primary) or token.signed_with(self.secondary)


def individual_credentials(enrollment: Enrollment) -> Credentials:
    return Credentials(enrollment, sas.decode_key(enrollment.primary_key), sas.decode_key(enrollment.secondary_key))


def parse_token(authorization: str | None) -> sas.SasToken:
    if not authorization:
        raise AttestationRefused(Refusal.MALFORMED_TOKEN, "the request carries no SharedAccessSignature")
    try:
        return sas.SasToken.parse(authorization)
    except Unauthorized as exc:
        raise AttestationRefused(Refusal.MALFORMED_TOKEN, exc.message) from None


def check_resource(token: sas.SasToken, id_scope: str, registration_id: str) -> None:
    expected = f"{id_scope}/registrations/{registration_id}"
    granted = token.audience
    if granted.lower() == expected.lower():
        return
    scope, _, rest = granted.partition("/")
    if scope.lower() != id_scope.lower() and rest.lower() == f"registrations/{registration_id}".lower():
        raise AttestationRefused(
            Refusal.WRONG_SCOPE,
            f"the token is for ID scope {scope!r}, but this service's ID scope is {id_scope!r}",
        )
    raise AttestationRefused(
        Refusal.WRONG_RESOURCE, f"the token grants {granted[:200]!r}, but the request is for {expected!r}"
    )


def attest(
    token: sas.SasToken, registration_id: str, individual: Enrollment | None, groups: Sequence[GroupKeys]
) -> Credentials:
    """The credentials whose key signed ``token``; an individual enrollment takes precedence."""
    if individual is not None:
        credentials = individual_credentials(individual)
        if credentials.verify(token):
            return credentials
        group = next((g for g in groups if g.credentials(registration_id).verify(token)), None)
        if group is not None:
            raise AttestationRefused(
                Refusal.INDIVIDUAL_TAKES_PRECEDENCE,
                f"the token is signed with a key derived from enrollment group {group.enrollment.id!r}, but the "
                f"individual enrollment {individual.id!r} takes precedence: sign with its key",
                individual,
            )
        raise AttestationRefused(
            Refusal.WRONG_KEY,
            "the signature matches neither the primary nor the secondary key of individual enrollment "
            f"{individual.id!r}",
            individual,
        )
    for group in groups:
        credentials = group.credentials(registration_id)
        if credentials.verify(token):
            return credentials
    raise _diagnose_group_refusal(token, registration_id, groups)


def _diagnose_group_refusal(
    token: sas.SasToken, registration_id: str, groups: Sequence[GroupKeys]
) -> AttestationRefused:
    for group in groups:
        if group.raw_signs(token):
            return AttestationRefused(
                Refusal.GROUP_KEY_USED,
                f"the token is signed with the key of enrollment group {group.enrollment.id!r} itself; a device signs "
                "with its derived key, base64(HMAC-SHA256(groupKey, registrationId)) "
                "(edgeprov dps compute-device-key)",
                group.enrollment,
            )
        for variant in {registration_id.lower(), registration_id.upper()} - {registration_id}:
            if group.credentials(variant).verify(token):
                return AttestationRefused(
                    Refusal.CASE_MISMATCH,
                    f"the device key was derived from registration id {variant!r}, but the device registers as "
                    f"{registration_id!r}; derive the key from the id exactly as the device sends it",
                    group.enrollment,
                )
    if not groups:
        return AttestationRefused(
            Refusal.UNKNOWN_REGISTRATION,
            f"no individual enrollment for {registration_id!r} and no enrollment group exists",
        )
    return AttestationRefused(
        Refusal.UNKNOWN_REGISTRATION,
        f"no individual enrollment for {registration_id!r}, and the signature matches no key derived from any "
        f"of the {len(groups)} enrollment groups",
    )


def check_expiry(token: sas.SasToken, now: float, skew: float, enrollment: Enrollment | None = None) -> None:
    late = token.seconds_past_expiry(now)
    if late > skew:
        raise AttestationRefused(
            Refusal.TOKEN_EXPIRED,
            f"the token expired {late:.0f} s before this service's time; its clock allows {skew:.0f} s of skew. "
            "Check the device clock (or the token lifetime)",
            enrollment,
        )
