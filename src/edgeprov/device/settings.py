"""The device runtime's settings: what a ``config.toml`` says, as frozen values checked when built.

Each value object refuses what the runtime could not use; the config reader turns those refusals
into messages that name the file and line (``device/config.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from edgeprov.errors import BadRequest
from edgeprov.ids import check_device_id, check_registration_id
from edgeprov.sas import MAX_KEY_BYTES, MIN_KEY_BYTES
from edgeprov.types import JsonObject

MIN_CLOUD_TIMEOUT = 70
DEFAULT_GLOBAL_ENDPOINT = "https://global.azure-devices-provisioning.net"
DEFAULT_AGENT_IMAGE = "mcr.microsoft.com/azureiotedge-agent:1.6"


class ReprovisioningMode(StrEnum):
    """When the runtime goes back to the provisioning service (spec/edge-runtime.md §1.5, §3.5)."""

    DYNAMIC = "Dynamic"
    ALWAYS_ON_STARTUP = "AlwaysOnStartup"
    ON_ERROR_ONLY = "OnErrorOnly"


class ProvisioningSource(StrEnum):
    DPS = "dps"
    MANUAL = "manual"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A device's symmetric key; its bytes never appear in a repr, a log line or a message."""

    raw: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not MIN_KEY_BYTES <= len(self.raw) <= MAX_KEY_BYTES:
            raise BadRequest(
                f"the key is {len(self.raw)} bytes long; the service accepts keys of {MIN_KEY_BYTES} to "
                f"{MAX_KEY_BYTES} bytes"
            )

    @property
    def fingerprint(self) -> str:
        """Tells two keys apart without revealing either."""
        return hashlib.sha256(b"edgeprov-device-key\0" + self.raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An HTTPS endpoint; like the identity service, only scheme, host and port are used."""

    host: str
    port: int = 443

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise BadRequest(f"{url!r} is not an https:// URL")
        try:
            port = parts.port or 443
        except ValueError:
            raise BadRequest(f"{url!r} has an invalid port") from None
        return cls(parts.hostname.lower(), port)

    @property
    def authority(self) -> str:
        return self.host if self.port == 443 else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.authority}"


@dataclass(frozen=True, slots=True)
class DpsProvisioning:
    """``source = "dps"`` with symmetric-key attestation."""

    endpoint: Endpoint
    id_scope: str
    registration_id: str
    key: DeviceKey
    payload: JsonObject | None = None

    def __post_init__(self) -> None:
        if not self.id_scope.strip():
            raise BadRequest("id_scope is empty")
        check_registration_id(self.registration_id)

    def fingerprint(self) -> dict[str, str]:
        """What identifies a provisioning: a change in any of these means provisioning again."""
        return {
            "endpoint": self.endpoint.url,
            "id_scope": self.id_scope,
            "registration_id": self.registration_id,
            "key": self.key.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class ManualProvisioning:
    """``source = "manual"``: the device's hub and id given outright, with its key."""

    iothub_hostname: str
    device_id: str
    key: DeviceKey

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        if not self.iothub_hostname or any(c.isspace() or c == "/" for c in self.iothub_hostname):
            raise BadRequest(f"{self.iothub_hostname!r} is not a host name")

    def fingerprint(self) -> dict[str, str]:
        return {"iothub_hostname": self.iothub_hostname, "device_id": self.device_id, "key": self.key.fingerprint}


Provisioning = DpsProvisioning | ManualProvisioning


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """``[agent]``: the module that runs the deployment; the image is what ``list`` shows."""

    name: str = "edgeAgent"
    type: str = "docker"
    image_pull_policy: str = "on-create"
    image: str = DEFAULT_AGENT_IMAGE
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise BadRequest("module name cannot be empty")
        if not self.type:
            raise BadRequest("module type cannot be empty")
        if self.image_pull_policy not in ("on-create", "never"):
            raise BadRequest(f'imagePullPolicy {self.image_pull_policy!r} is not "on-create" or "never"')


@dataclass(frozen=True, slots=True)
class SocketUris:
    """``[connect]`` or ``[listen]``: where the management and workload APIs are."""

    management_uri: str
    workload_uri: str

    def __post_init__(self) -> None:
        for uri in (self.management_uri, self.workload_uri):
            if urlsplit(uri).scheme not in ("unix", "fd", "http"):
                raise BadRequest(f"{uri!r} is not a unix://, fd:// or http:// URI")


CONNECT_DEFAULTS = SocketUris("unix:///var/run/iotedge/mgmt.sock", "unix:///var/run/iotedge/workload.sock")
LISTEN_DEFAULTS = SocketUris("fd://aziot-edged.mgmt.socket", "fd://aziot-edged.workload.socket")


@dataclass(frozen=True, slots=True)
class MobyRuntime:
    uri: str = "unix:///var/run/docker.sock"
    network: str = "azure-iot-edge"

    def __post_init__(self) -> None:
        if urlsplit(self.uri).scheme not in ("unix", "npipe", "http", "https", "tcp"):
            raise BadRequest(f"{self.uri!r} is not a container engine URI such as unix:///var/run/docker.sock")
        if not self.network:
            raise BadRequest("network cannot be empty")


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One ``config.toml``, as the runtime uses it."""

    hostname: str
    provisioning: Provisioning
    auto_reprovisioning_mode: ReprovisioningMode = ReprovisioningMode.DYNAMIC
    trust_bundle_cert: Path | None = None
    cloud_timeout_sec: int = MIN_CLOUD_TIMEOUT
    cloud_retries: int = 1
    agent: AgentSettings = field(default_factory=AgentSettings)
    connect: SocketUris = CONNECT_DEFAULTS
    listen: SocketUris = LISTEN_DEFAULTS
    moby_runtime: MobyRuntime = field(default_factory=MobyRuntime)

    def __post_init__(self) -> None:
        if self.cloud_timeout_sec < MIN_CLOUD_TIMEOUT:
            raise BadRequest(f"cloud_timeout_sec must be at least {MIN_CLOUD_TIMEOUT} seconds")
        if self.cloud_retries < 0:
            raise BadRequest("cloud_retries cannot be negative")
        if not self.hostname:
            raise BadRequest("hostname cannot be empty")
