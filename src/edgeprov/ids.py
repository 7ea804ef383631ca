"""Identifiers of the protocol, validated when built so that invalid ones never pass the edge."""

from __future__ import annotations

import os
import random
import re
import secrets

from edgeprov.errors import BadRequest, InvalidRegistrationId

MAX_ID_LENGTH = 128

# spec/dps-protocol.md §5.3: alphanumerics and - . _ :, no special character first, the last
# one alphanumeric or '-'. Compared case-insensitively.
_REGISTRATION_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:-]*[A-Za-z0-9-])?")
# The hub's device and module id alphabet (spec/hub-protocol.md §3.2, the cloud's documented set).
_DEVICE_ID = re.compile(r"[A-Za-z0-9\-.%_*?!(),:=@$']+")
_ID_SCOPE = re.compile(r"0ne[0-9A-F]{8}")


class RegistrationId(str):
    """A registration or enrollment-group id as the device or operator wrote it.

    ``key`` is the case-folded form used for lookups: ids are case-insensitive.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> RegistrationId:
        check_registration_id(value)
        return super().__new__(cls, value)

    @property
    def key(self) -> str:
        return self.lower()


def check_registration_id(value: str, *, what: str = "registration id") -> None:
    if not value:
        raise InvalidRegistrationId(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRegistrationId(f"{what} is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed")
    if not _REGISTRATION_ID.fullmatch(value):
        raise InvalidRegistrationId(
            f"{what} {value[:MAX_ID_LENGTH]!r} is invalid: use letters, digits and - . _ : "
            "(starting with a letter or digit, ending with a letter, digit or -)"
        )


def check_device_id(value: str, *, what: str = "device id") -> str:
    if not value or len(value) > MAX_ID_LENGTH or not _DEVICE_ID.fullmatch(value):
        raise BadRequest(
            f"{what} {value[:MAX_ID_LENGTH]!r} is invalid: 1 to {MAX_ID_LENGTH} characters of letters, digits "
            "and - . % _ * ? ! ( ) , : = @ $ '"
        )
    return value


def check_module_id(value: str) -> str:
    return check_device_id(value, what="module id")


_ids = random.Random(secrets.randbits(128))
# Worker processes are forked: each must draw its own sequence, not its parent's.
os.register_at_fork(after_in_child=lambda: _ids.seed(secrets.randbits(128)))


def new_guid() -> str:
    """A random GUID-shaped id for etags and operations.

    These name things and guard nothing (an operation's poll needs the device's own token), so
    they come from a seeded non-cryptographic generator: a system call per id cost more than
    anything else in making one.
    """
    h = f"{_ids.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_hex(digits: int) -> str:
    return f"{_ids.getrandbits(digits * 4):0{digits}x}"


def new_id_scope() -> str:
    return "0ne" + secrets.token_hex(4).upper()


def is_id_scope(value: str) -> bool:
    return _ID_SCOPE.fullmatch(value) is not None
