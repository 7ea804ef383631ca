"""Fleet images: a ``config.toml`` template rendered per device with its derived key.

The template is a ``config.toml`` with placeholders ``{{registration_id}}``, ``{{device_key}}``
and, optionally, ``{{hostname}}``. The group key is used to derive the device's key and never
reaches the output; the result is read back by the config reader before it is written.
"""

from __future__ import annotations

import base64
import re

from edgeprov import sas
from edgeprov.device.config import LoadedConfig, parse_config
from edgeprov.device.keysource import decode_base64_key
from edgeprov.errors import BadRequest, ConfigInvalid

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
PLACEHOLDERS = ("registration_id", "device_key", "hostname")


def render(template: str, template_name: str, registration_id: str, group_key_b64: str, hostname: str) -> str:
    names = set(_PLACEHOLDER.findall(template))
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        raise ConfigInvalid(
            f"unknown placeholder {{{{{sorted(unknown)[0]}}}}}",
            path=template_name,
            hint=" ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS),
        )
    if "device_key" not in names:
        raise ConfigInvalid(
            "the template has no {{device_key}} placeholder", path=template_name,
            hint='symmetric_key = { value = "{{device_key}}" }',
        )  # fmt: skip
    try:
        group_key = decode_base64_key(group_key_b64)
    except BadRequest:
        raise BadRequest("the group key file does not hold a base64 key") from None
    device_key = base64.b64encode(sas.derive_device_key(group_key, registration_id)).decode()
    values = {"registration_id": registration_id, "device_key": device_key, "hostname": hostname}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def check_rendered(text: str, group_key_b64: str, output_name: str) -> LoadedConfig:
    """The rendered file must be a valid configuration, and must not carry the group key."""
    if group_key_b64.strip() and group_key_b64.strip() in text:
        raise BadRequest("the template contains the group key itself; it must only hold {{device_key}}")
    return parse_config(text, output_name)
