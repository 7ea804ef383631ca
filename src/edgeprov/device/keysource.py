"""Where a device key comes from: inline base64, a file of raw bytes, or (not yet) PKCS#11."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgeprov.errors import BadRequest


class UnsupportedKeySource(BadRequest):
    pass


def decode_base64_key(text: str) -> bytes:
    """Padded base64 first, then unpadded, as the identity service decodes an inline key."""
    stripped = text.strip()
    for candidate in (stripped, stripped + "=" * (-len(stripped) % 4)):
        try:
            return base64.b64decode(candidate, validate=True)
        except (binascii.Error, ValueError):
            continue
    raise BadRequest("the key is not valid base64")


def file_path(uri: str) -> Path:
    """The absolute path of a ``file:///…`` URI."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise BadRequest(f"{uri!r} is not a file:// URI")
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise BadRequest(f"{uri!r} is not an absolute file URI; write three slashes: file:///path/to/file")
    return Path(unquote(parts.path))


def key_from_uri(uri: str) -> bytes:
    """The raw key bytes a ``file://`` URI names; PKCS#11 is refused clearly."""
    if uri.lower().startswith("pkcs11:"):
        raise UnsupportedKeySource("PKCS#11 keys are not supported yet by edgeprov's runtime")
    path = file_path(uri)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read the key file {path}: {exc.strerror or exc}") from None
