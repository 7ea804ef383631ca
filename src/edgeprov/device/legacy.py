"""The IoT Edge 1.1 ``config.yaml``, turned into a ``config.toml`` document (spec/edge-runtime.md §1.5-1.6).

Mistakes are reported with the YAML line they are on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from edgeprov.device import keysource
from edgeprov.device.settings import LISTEN_DEFAULTS, ReprovisioningMode
from edgeprov.errors import BadRequest, ConfigInvalid

DEFAULT_LEGACY_PATH = Path("/etc/iotedge/config.yaml")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$")
_HOST_NAME = re.compile(r"^[a-zA-Z0-9_\-\.]+$")
# 1.1 systemd socket names, renamed in 1.2.
_LISTEN = {
    "fd://iotedge.mgmt.socket": LISTEN_DEFAULTS.management_uri,
    "fd://iotedge.socket": LISTEN_DEFAULTS.workload_uri,
}


class _Yaml:
    """The parsed file with the line of every mapping key, for messages."""

    def __init__(self, text: str, path: Path) -> None:
        self.path = path
        try:
            node = yaml.compose(text)
            self.data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or "invalid YAML"
            raise ConfigInvalid(
                f"could not parse: {problem}",
                path=path,
                line=mark.line + 1 if mark else None,
                hint="indent with spaces only, keys of one mapping in one column",
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigInvalid(f"could not parse: {exc}", path=path) from None
        self.lines: dict[tuple[str, ...], int] = {}
        if node is not None:
            self._index(node, ())
        if not isinstance(self.data, dict):
            raise ConfigInvalid("the file is not a YAML mapping", path=path)

    def _index(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*path, str(key.value))
                self.lines[here] = key.start_mark.line + 1
                self._index(value, here)

    def error(self, path: tuple[str, ...], message: str, hint: str | None = None) -> ConfigInvalid:
        line = next((self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines), None)
        return ConfigInvalid(message, path=self.path, line=line, hint=hint)


def import_legacy(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigInvalid(f"there is no old config at {path} available to migrate") from None
    except OSError as exc:
        raise ConfigInvalid(f"could not read: {exc.strerror or exc}", path=path) from None
    source = _Yaml(text, path)
    old = source.data
    provisioning = old.get("provisioning")
    if not isinstance(provisioning, dict):
        raise source.error((), "the file has no `provisioning` section", 'provisioning:\n    source: "dps"\n    …')
    document: dict[str, Any] = {}
    if isinstance(old.get("hostname"), str):
        document["hostname"] = old["hostname"]
    certificates = old.get("certificates")
    if isinstance(certificates, dict) and isinstance(certificates.get("trusted_ca_certs"), str):
        document["trust_bundle_cert"] = Path(certificates["trusted_ca_certs"]).resolve().as_uri()
    document["auto_reprovisioning_mode"] = _mode(provisioning).value
    document["provisioning"] = _provisioning(source, provisioning)
    for name in ("agent", "connect", "listen", "moby_runtime", "watchdog"):
        if isinstance(old.get(name), dict):
            document[name] = _edged_table(name, old[name])
    return document


def _mode(provisioning: dict[str, Any]) -> ReprovisioningMode:
    """``dynamic_reprovisioning`` wins, then ``always_reprovision_on_startup``, else OnErrorOnly (§1.5)."""
    if provisioning.get("dynamic_reprovisioning") is True:
        return ReprovisioningMode.DYNAMIC
    if provisioning.get("always_reprovision_on_startup") is True:
        return ReprovisioningMode.ALWAYS_ON_STARTUP
    return ReprovisioningMode.ON_ERROR_ONLY


def _provisioning(source: _Yaml, old: dict[str, Any]) -> dict[str, Any]:
    kind = old.get("source")
    if kind == "external":
        raise source.error(("provisioning", "source"), "external provisioning is not supported.")
    if kind == "manual":
        return _manual(source, old)
    if kind != "dps":
        raise source.error(("provisioning", "source"), f"provisioning source {kind!r} is not dps or manual")
    attestation = old.get("attestation")
    if "registration_id" in old:
        if attestation is not None:
            raise source.error(
                ("provisioning", "registration_id"),
                "Provisioning registration_id has to be set only in attestation",
                "move registration_id under attestation:",
            )
        raise source.error(("provisioning", "registration_id"), "TPM attestation is not supported yet")
    if not isinstance(attestation, dict) or "registration_id" not in attestation:
        raise source.error(("provisioning",), "Provisioning registration_id has to be set")
    method = attestation.get("method")
    if method != "symmetric_key":
        raise source.error(("provisioning", "attestation", "method"), f"{method} attestation is not supported yet")
    key = attestation.get("symmetric_key")
    if not isinstance(key, str):
        raise source.error(("provisioning", "attestation", "symmetric_key"), "symmetric_key must be a base64 string")
    try:
        keysource.decode_base64_key(key)
    except BadRequest as exc:
        raise source.error(("provisioning", "attestation", "symmetric_key"), f"symmetric_key: {exc.message}") from None
    if not isinstance(old.get("scope_id"), str) or not old["scope_id"]:
        raise source.error(("provisioning",), "Provisioning scope_id has to be set", 'scope_id: "0ne00000000"')
    return {
        "source": "dps",
        "global_endpoint": str(old.get("global_endpoint") or "https://global.azure-devices-provisioning.net"),
        "id_scope": old["scope_id"],
        "attestation": {
            "method": "symmetric_key",
            "registration_id": str(attestation["registration_id"]),
            "symmetric_key": {"value": key},
        },
    }


def _manual(source: _Yaml, old: dict[str, Any]) -> dict[str, Any]:
    connection = old.get("device_connection_string")
    if (connection is None) == (old.get("authentication") is None):
        raise source.error(
            ("provisioning",), "manual provisioning needs exactly one of device_connection_string or authentication"
        )
    if connection is None:
        raise source.error(("provisioning", "authentication"), "x509 manual provisioning is not supported yet")
    fields = dict(part.split("=", 1) for part in str(connection).split(";") if "=" in part)
    where = ("provisioning", "device_connection_string")
    if not _DEVICE_ID.match(fields.get("DeviceId", "")):
        raise source.error(where, "the connection string's DeviceId is missing or invalid")
    if not _HOST_NAME.match(fields.get("HostName", "")):
        raise source.error(where, "the connection string's HostName is missing or invalid")
    return {"source": "manual", "connection_string": str(connection)}


def _edged_table(name: str, value: dict[str, Any]) -> dict[str, Any]:
    table = {k: v for k, v in value.items() if v is not None}
    if name == "listen":
        table = {k: _LISTEN.get(v, v) if isinstance(v, str) else v for k, v in table.items()}
    if name == "agent" and isinstance(table.get("config"), dict):
        config = {k: v for k, v in table["config"].items() if v not in (None, {})}
        table["config"] = config
    return table
