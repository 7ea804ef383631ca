"""Keys at rest: sealed with AES-256-GCM under a master key kept outside the database.

A copy of the database alone then hands out no device, enrollment or policy key; the master
key lives in the data directory (mode 0600) and every server sharing a database needs it.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edgeprov.errors import InternalError

SEALED_PREFIX = "sealed1:"
_NONCE_BYTES = 12


class KeyVault:
    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(master_key)

    @classmethod
    def load_or_create(cls, path: Path) -> KeyVault:
        if not path.exists():
            write_secret_file(path, base64.b64encode(AESGCM.generate_key(bit_length=256)).decode() + "\n")
        return cls(base64.b64decode(path.read_text().strip()))

    def seal(self, secret: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), None)
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()

    def unseal(self, sealed: str) -> str:
        if not sealed.startswith(SEALED_PREFIX):
            raise InternalError("a stored key is not sealed; the database was written without a vault")
        raw = base64.b64decode(sealed[len(SEALED_PREFIX) :])
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None).decode()
        except InvalidTag:
            raise InternalError(
                "a stored key cannot be unsealed: this data directory's master.key is not the one the "
                "database was written with"
            ) from None


def write_secret_file(path: Path, content: str) -> None:
    """Write a file only its owner can read, without a moment where it is readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(path, 0o600)
