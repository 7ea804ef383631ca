"""Reading ``config.toml`` as IoT Edge 1.2+ does (spec/edge-runtime.md §1), with better messages.

Every mistake names the file, the line and what to write instead; unknown and misplaced keys,
which upstream silently ignores, are reported as warnings.
"""

from __future__ import annotations

import hashlib
import json
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgeprov.device import keysource
from edgeprov.device.document import ConfigWarning, Document, dotted
from edgeprov.device.settings import (
    CONNECT_DEFAULTS,
    DEFAULT_AGENT_IMAGE,
    LISTEN_DEFAULTS,
    AgentSettings,
    DeviceConfig,
    DeviceKey,
    DpsProvisioning,
    Endpoint,
    ManualProvisioning,
    MobyRuntime,
    Provisioning,
    ProvisioningSource,
    ReprovisioningMode,
    SocketUris,
)
from edgeprov.device.syntax import KEY_HINT, syntax_error
from edgeprov.device.toml_lines import KeyLines, KeyPath
from edgeprov.errors import BadRequest, ConfigInvalid

DEFAULT_CONFIG_PATH = Path("/etc/aziot/config.toml")

# Top-level settings upstream knows; the tables edgeprov keeps without interpreting are passed over.
PASSED_OVER = frozenset(
    {
        "allow_elevated_docker_permissions", "prefer_module_identity_cache", "additional_info",
        "iotedge_max_requests", "aziot_max_requests", "imported_master_encryption_key", "aziot_keys",
        "preloaded_keys", "preloaded_certs", "cert_issuance", "tpm", "watchdog", "edge_ca",
        "image_garbage_collection", "endpoints",
    }
)  # fmt: skip
TOP_LEVEL_SETTINGS = frozenset(
    {
        "hostname", "parent_hostname", "local_gateway_hostname", "trust_bundle_cert", "auto_reprovisioning_mode",
        "cloud_timeout_sec", "cloud_retries", "allow_elevated_docker_permissions", "prefer_module_identity_cache",
        "additional_info", "imported_master_encryption_key",
    }
)  # fmt: skip
DEFAULT_MOBY = MobyRuntime()

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A configuration with what was said about it and what it was read from."""

    config: DeviceConfig
    warnings: tuple[ConfigWarning, ...]
    document: dict[str, Any]
    sha256: str


def load_config(path: Path) -> LoadedConfig:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigInvalid(f"could not read config file: {exc.strerror or exc}", path=path) from None
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigInvalid(f"the file is not UTF-8 text (byte {exc.start})", path=path) from None
    return parse_config(text, str(path))


def parse_config(text: str, path: str) -> LoadedConfig:
    lines = KeyLines.scan(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise syntax_error(exc, lines, path) from None
    doc = Document(data, lines, path, TOP_LEVEL_SETTINGS)
    config = _read(doc)
    return LoadedConfig(config, tuple(doc.leftovers()), data, hashlib.sha256(text.encode()).hexdigest())


def _read(doc: Document) -> DeviceConfig:
    for name in PASSED_OVER:
        doc.get((name,))
    provisioning = _provisioning(doc)
    mode = _string(doc, ("auto_reprovisioning_mode",))
    return _build(
        doc,
        (),
        lambda: DeviceConfig(
            hostname=_string(doc, ("hostname",)) or socket.gethostname(),
            provisioning=provisioning,
            auto_reprovisioning_mode=_mode(doc, mode) if mode is not None else ReprovisioningMode.DYNAMIC,
            trust_bundle_cert=_file(doc, ("trust_bundle_cert",), 'trust_bundle_cert = "file:///path/to/ca.pem"'),
            cloud_timeout_sec=_integer(doc, ("cloud_timeout_sec",), 70),
            cloud_retries=_integer(doc, ("cloud_retries",), 1),
            agent=_agent(doc),
            connect=_sockets(doc, "connect", CONNECT_DEFAULTS),
            listen=_sockets(doc, "listen", LISTEN_DEFAULTS),
            moby_runtime=_moby(doc),
        ),
        {"cloud_timeout_sec": ("cloud_timeout_sec = 70", ("cloud_timeout_sec",))},
    )


def _build(doc: Document, table: KeyPath, make: Callable[[], T], hints: dict[str, tuple[str, KeyPath]]) -> T:
    """Build a value object; its refusal becomes a message at the line of the key it is about."""
    try:
        return make()
    except ConfigInvalid:
        raise
    except BadRequest as exc:
        for word, (hint, path) in hints.items():
            if word in exc.message:
                raise doc.error(path, exc.message, hint) from None
        raise doc.error(table, exc.message) from None


# -- scalars ---------------------------------------------------------------------------------------------
def _string(doc: Document, path: KeyPath, *, hint: str | None = None) -> str | None:
    value = doc.get(path)
    if value is not None and not isinstance(value, str):
        raise doc.error(path, f"`{dotted(path)}` must be a quoted string", hint or f'{path[-1]} = "…"')
    return value


def _required(doc: Document, path: KeyPath, hint: str) -> str:
    value = _string(doc, path, hint=hint)
    if value is None:
        table = f"[{dotted(path[:-1])}]" if path[:-1] else "the top level"
        raise doc.error(path[:-1], f"{table} lacks `{path[-1]}`", hint)
    return value


def _integer(doc: Document, path: KeyPath, default: int) -> int:
    value = doc.get(path)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise doc.error(path, f"`{dotted(path)}` must be a whole number", f"{path[-1]} = {default}")
    return value


def _mode(doc: Document, value: str) -> ReprovisioningMode:
    by_case = {mode.value.lower(): mode for mode in ReprovisioningMode}
    choices = ", ".join(f'"{mode.value}"' for mode in ReprovisioningMode)
    try:
        return ReprovisioningMode(value)
    except ValueError:
        near = by_case.get(value.lower(), ReprovisioningMode.DYNAMIC)
        raise doc.error(
            ("auto_reprovisioning_mode",),
            f"auto_reprovisioning_mode {value!r} is not one of {choices} (the names are case-sensitive)",
            f'auto_reprovisioning_mode = "{near.value}"',
        ) from None


def _file(doc: Document, path: KeyPath, hint: str) -> Path | None:
    uri = _string(doc, path, hint=hint)
    if uri is None:
        return None
    try:
        file = keysource.file_path(uri)
    except BadRequest as exc:
        raise doc.error(path, exc.message, hint) from None
    if not file.is_file():
        raise doc.error(path, f"{file} does not exist or is not a file", hint)
    return file


# -- [provisioning] --------------------------------------------------------------------------------------
def _provisioning(doc: Document) -> Provisioning:
    if not doc.has(("provisioning",)):
        raise doc.error(
            (), "the configuration has no [provisioning] table", '[provisioning] with source = "dps" and its keys'
        )
    doc.table(("provisioning",))
    source = _required(doc, ("provisioning", "source"), 'source = "dps"')
    try:
        kind = ProvisioningSource(source)
    except ValueError:
        raise doc.error(
            ("provisioning", "source"), f"provisioning source {source!r} is not dps, manual or none", 'source = "dps"'
        ) from None
    if kind is ProvisioningSource.NONE:
        raise doc.error(
            ("provisioning", "source"),
            'source = "none" (local identities only) is not supported: the runtime needs a device identity',
            'source = "dps"',
        )
    if kind is ProvisioningSource.MANUAL:
        return _manual(doc)
    return _dps(doc)


def _dps(doc: Document) -> DpsProvisioning:
    table = ("provisioning",)
    for nested in ("parent_hostname", "local_gateway_hostname"):
        if _string(doc, (nested,)) is not None:
            raise doc.error((nested,), "DPS provisioning is not supported in nested mode", f"remove `{nested}`")
    endpoint_text = _required(
        doc, (*table, "global_endpoint"), 'global_endpoint = "https://global.azure-devices-provisioning.net"'
    )
    id_scope = _id_scope(doc)
    payload = _payload(doc)
    attestation = ("provisioning", "attestation")
    doc.table(attestation)
    method = _required(doc, (*attestation, "method"), 'method = "symmetric_key"')
    if method in ("x509", "tpm"):
        raise doc.error(
            (*attestation, "method"), f"{method} attestation is not supported yet", 'method = "symmetric_key"'
        )
    if method != "symmetric_key":
        raise doc.error(
            (*attestation, "method"), f"attestation method {method!r} is unknown", 'method = "symmetric_key"'
        )
    registration_id = _required(doc, (*attestation, "registration_id"), 'registration_id = "my-device"')
    key = _key(doc, (*attestation, "symmetric_key"))
    try:
        endpoint = Endpoint.parse(endpoint_text)
    except BadRequest as exc:
        raise doc.error(
            (*table, "global_endpoint"),
            exc.message,
            'global_endpoint = "https://global.azure-devices-provisioning.net"',
        ) from None
    return _build(
        doc,
        attestation,
        lambda: DpsProvisioning(endpoint, id_scope, registration_id, key, payload),
        {
            "registration id": ('registration_id = "my-device"', (*attestation, "registration_id")),
            "id_scope": ('id_scope = "0ne00000000"', (*table, "id_scope")),
        },
    )


def _id_scope(doc: Document) -> str:
    path = ("provisioning", "id_scope")
    legacy = ("provisioning", "scope_id")
    if not doc.has(path) and doc.has(legacy):
        value = doc.get(legacy)
        shown = value if isinstance(value, str) else "0ne00000000"
        raise doc.error(
            legacy,
            "`scope_id` is the name this setting had in the 1.1 config.yaml; config.toml calls it `id_scope`",
            f'id_scope = "{shown}"',
        )
    return _required(doc, path, 'id_scope = "0ne00000000"')


def _payload(doc: Document) -> dict[str, Any] | None:
    path = ("provisioning", "payload")
    hint = 'payload = { uri = "file:///path/to/payload.json" }'
    value = doc.get(path)
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"uri"} or not isinstance(value["uri"], str):
        raise doc.error(path, "`payload` must be an inline table with a file `uri`", hint)
    try:
        payload = json.loads(keysource.file_path(value["uri"]).read_text())
    except BadRequest as exc:
        raise doc.error(path, exc.message, hint) from None
    except (OSError, ValueError) as exc:
        raise doc.error(path, f"the payload file cannot be read as JSON: {exc}", hint) from None
    if not isinstance(payload, dict):
        raise doc.error(path, "the payload file must hold a JSON object", hint)
    return payload


def _key(doc: Document, path: KeyPath) -> DeviceKey:
    """``{ value = "<base64>" }`` or ``{ uri = "file:///…" }``: exactly one of them."""
    value = doc.get(path)
    name = path[-1]
    hint = KEY_HINT.replace("symmetric_key", name)
    if value is None:
        raise doc.error(path[:-1], f"[{dotted(path[:-1])}] lacks `{name}`", hint)
    if isinstance(value, str):
        raise doc.error(
            path,
            f"`{name}` is a plain string, the 1.1 config.yaml form; config.toml wants an inline table",
            f'{name} = {{ value = "<the same base64 key>" }}',
        )
    if not isinstance(value, dict) or len(value.keys() & {"value", "uri"}) != 1 or len(value) != 1:
        forms = "both `value` and `uri`" if {"value", "uri"} <= value.keys() else "neither `value` nor `uri` alone"
        raise doc.error(path, f"`{name}` has {forms}; give exactly one", hint)
    try:
        return DeviceKey(_key_bytes(value))
    except keysource.UnsupportedKeySource as exc:
        raise doc.error(path, exc.message, hint) from None
    except BadRequest as exc:
        raise doc.error(path, f"`{name}`: {exc.message}", hint) from None


def _key_bytes(form: dict[str, Any]) -> bytes:
    kind, text = next(iter(form.items()))
    if not isinstance(text, str):
        raise BadRequest(f"the key `{kind}` must be a quoted string")
    return keysource.decode_base64_key(text) if kind == "value" else keysource.key_from_uri(text)


def _manual(doc: Document) -> ManualProvisioning:
    table = ("provisioning",)
    connection = _string(doc, (*table, "connection_string"))
    explicit = [k for k in ("iothub_hostname", "device_id", "authentication") if doc.has((*table, k))]
    if connection is not None and explicit:
        raise doc.error(
            (*table, explicit[0]),
            f"manual provisioning has both `connection_string` and `{explicit[0]}`; give one form",
            'connection_string = "HostName=…;DeviceId=…;SharedAccessKey=…" alone, or iothub_hostname, device_id '
            "and [provisioning.authentication]",
        )
    if connection is not None:
        return _connection_string(doc, connection)
    hostname = _required(doc, (*table, "iothub_hostname"), 'iothub_hostname = "myhub.azure-devices.net"')
    device_id = _required(doc, (*table, "device_id"), 'device_id = "my-device"')
    auth = ("provisioning", "authentication")
    doc.table(auth)
    method = _required(doc, (*auth, "method"), 'method = "sas"')
    if method != "sas":
        raise doc.error((*auth, "method"), f"authentication method {method!r} is not supported yet", 'method = "sas"')
    key = _key(doc, (*auth, "device_id_pk"))
    return _build(doc, table, lambda: ManualProvisioning(hostname, device_id, key), {})


def _connection_string(doc: Document, text: str) -> ManualProvisioning:
    path = ("provisioning", "connection_string")
    hint = 'connection_string = "HostName=myhub.azure-devices.net;DeviceId=my-device;SharedAccessKey=<base64>"'
    fields: dict[str, str] = {}
    for segment in text.split(";"):
        name, sep, value = segment.partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    for required in ("HostName", "DeviceId", "SharedAccessKey"):
        if required not in fields:
            raise doc.error(path, f'required parameter "{required}" is missing from the connection string', hint)
    try:
        raw = keysource.decode_base64_key(fields["SharedAccessKey"])
    except BadRequest:
        raise doc.error(
            path, 'connection string\'s "SharedAccessKey" parameter could not be decoded from base64', hint
        ) from None
    return _build(doc, path, lambda: ManualProvisioning(fields["HostName"], fields["DeviceId"], DeviceKey(raw)), {})


# -- edged tables ----------------------------------------------------------------------------------------
def _agent(doc: Document) -> AgentSettings:
    table = ("agent",)
    doc.table(table)
    doc.table((*table, "config"))
    for passed in ("createOptions", "auth"):
        doc.get((*table, "config", passed))
    env = doc.table((*table, "env"))
    for key in env:
        _string(doc, (*table, "env", key))
    image = _string(doc, (*table, "config", "image")) or DEFAULT_AGENT_IMAGE
    name = _string(doc, (*table, "name"))
    kind = _string(doc, (*table, "type"))
    policy = _string(doc, (*table, "imagePullPolicy"))
    return _build(
        doc,
        table,
        lambda: AgentSettings(
            name="edgeAgent" if name is None else name,
            type="docker" if kind is None else kind,
            image_pull_policy="on-create" if policy is None else policy,
            image=image,
            env={k: str(v) for k, v in env.items()},
        ),
        {
            "name cannot": ('name = "edgeAgent"', (*table, "name")),
            "type cannot": ('type = "docker"', (*table, "type")),
            "imagePullPolicy": ('imagePullPolicy = "on-create"', (*table, "imagePullPolicy")),
        },
    )


def _sockets(doc: Document, name: str, defaults: SocketUris) -> SocketUris:
    table = (name,)
    doc.table(table)
    management = _string(doc, (*table, "management_uri")) or defaults.management_uri
    workload = _string(doc, (*table, "workload_uri")) or defaults.workload_uri
    return _build(
        doc,
        table,
        lambda: SocketUris(management, workload),
        {
            management: (f'management_uri = "{defaults.management_uri}"', (*table, "management_uri")),
            workload: (f'workload_uri = "{defaults.workload_uri}"', (*table, "workload_uri")),
        },
    )


def _moby(doc: Document) -> MobyRuntime:
    table = ("moby_runtime",)
    doc.table(table)
    doc.get((*table, "content_trust"))
    uri = _string(doc, (*table, "uri")) or DEFAULT_MOBY.uri
    network = doc.get((*table, "network"))
    if isinstance(network, dict):
        network = network.get("name", DEFAULT_MOBY.network)
    if network is not None and not isinstance(network, str):
        raise doc.error((*table, "network"), "`network` must be a name or a table", 'network = "azure-iot-edge"')
    return _build(
        doc,
        table,
        lambda: MobyRuntime(uri, network if network is not None else DEFAULT_MOBY.network),
        {
            "container engine": ('uri = "unix:///var/run/docker.sock"', (*table, "uri")),
            "network": ('network = "azure-iot-edge"', (*table, "network")),
        },
    )
