"""Shared access signatures: parse, sign, verify; symmetric keys and derived device keys.

A token is verified over its ``sr`` exactly as transmitted: the official clients encode the
resource in five different ways (raw, ``%2F``, ``%2f``, lower-cased, ...), and re-encoding a
decoded ``sr`` would reject most of them (spec/dps-protocol.md §2.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

from edgeprov.errors import BadRequest, Unauthorized

PREFIX = "SharedAccessSignature "
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64
GENERATED_KEY_BYTES = 64


@dataclass(frozen=True, slots=True)
class SasToken:
    """A parsed ``SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`` token."""

    resource: str
    signature: bytes
    expiry: int
    key_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> SasToken:
        if not text.startswith(PREFIX):
            raise Unauthorized("authorization is not a SharedAccessSignature token")
        fields: dict[str, str] = {}
        for part in text[len(PREFIX) :].strip().split("&"):
            name, sep, value = part.partition("=")
            if not sep:
                raise Unauthorized(f"malformed SharedAccessSignature field {name[:20]!r}")
            fields[name.strip().lower()] = value
        missing = [name for name in ("sr", "sig", "se") if name not in fields]
        if missing:
            raise Unauthorized(f"SharedAccessSignature lacks {', '.join(missing)}")
        try:
            expiry = int(fields["se"])
        except ValueError:
            raise Unauthorized("SharedAccessSignature 'se' is not a whole number of seconds") from None
        try:
            signature = binascii.a2b_base64(_unquote(fields["sig"]), strict_mode=True)
        except (binascii.Error, ValueError):
            raise Unauthorized("SharedAccessSignature 'sig' is not base64") from None
        return cls(fields["sr"], signature, expiry, fields.get("skn"))

    @property
    def audience(self) -> str:
        """The decoded resource, for comparing with what the token should grant."""
        return _unquote(self.resource)

    def signed_with(self, key: bytes) -> bool:
        return hmac.compare_digest(sign(key, self.resource, self.expiry), self.signature)

    def seconds_past_expiry(self, now: float) -> float:
        return now - self.expiry


_COMMON_ESCAPES = (("%2F", "/"), ("%2f", "/"), ("%2B", "+"), ("%2b", "+"), ("%3D", "="), ("%3d", "="))


def _unquote(value: str) -> str:
    """Percent-decoding, fast for what tokens carry (``/``, ``+``, ``=``): this runs on every request."""
    if "%" not in value:
        return value
    for escape, char in _COMMON_ESCAPES:
        value = value.replace(escape, char)
    return unquote(value) if "%" in value else value


def same_token(presented: str, known: str) -> bool:
    """Whether a presented token is exactly a known one, in constant time: tokens are bearer secrets."""
    return hmac.compare_digest(presented.encode(), known.encode())


def sign(key: bytes, resource: str, expiry: int) -> bytes:
    return hmac.digest(key, f"{resource}\n{expiry}".encode(), "sha256")


def build_token(resource: str, key: bytes, expiry: int, key_name: str | None = None, *, encode: bool = True) -> str:
    """A token for ``resource``; with ``encode`` it is percent-encoded the way the Python SDK does."""
    sr = quote(resource, safe="") if encode else resource
    signature = quote(base64.b64encode(sign(key, sr, expiry)).decode(), safe="")
    token = f"{PREFIX}sr={sr}&sig={signature}&se={expiry}"
    return f"{token}&skn={key_name}" if key_name else token


def token_for(resource: str, key_b64: str, ttl: int = 3600, key_name: str | None = None) -> str:
    return build_token(resource, decode_key(key_b64), int(time.time()) + ttl, key_name)


def decode_key(key_b64: str, *, what: str = "symmetric key") -> bytes:
    """Decode a base64 key, refusing what the service would refuse (16 to 64 bytes)."""
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64") from None
    if not MIN_KEY_BYTES <= len(raw) <= MAX_KEY_BYTES:
        raise BadRequest(f"{what} must decode to {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {len(raw)}")
    return raw


def generate_key(nbytes: int = GENERATED_KEY_BYTES) -> str:
    return base64.b64encode(secrets.token_bytes(nbytes)).decode()


def derive_device_key(group_key: bytes, registration_id: str) -> bytes:
    """The key a device of a group signs with: HMAC-SHA256(group key, registration id)."""
    return hmac.digest(group_key, registration_id.encode(), "sha256")


class DeviceKeyDeriver:
    """:func:`derive_device_key` for many devices of one group.

    The group key's HMAC state is computed once and copied per device, which costs a third less
    than a one-shot HMAC on every registration.
    """

    __slots__ = ("_mac",)

    def __init__(self, group_key: bytes) -> None:
        self._mac = hmac.new(group_key, digestmod=hashlib.sha256)

    def derive(self, registration_id: str) -> bytes:
        mac = self._mac.copy()
        mac.update(registration_id.encode())
        return mac.digest()


def derive_device_key_b64(group_key_b64: str, registration_id: str) -> str:
    group_key = decode_key(group_key_b64, what="group key")
    return base64.b64encode(derive_device_key(group_key, registration_id)).decode()
