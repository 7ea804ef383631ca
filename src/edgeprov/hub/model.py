"""The hub's identity registry nouns and their wire shapes (spec/hub-protocol.md §3.2)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum

from edgeprov.clock import NEVER, iso
from edgeprov.ids import new_hex
from edgeprov.types import JsonObject

EDGE_AGENT = "$edgeAgent"
EDGE_HUB = "$edgeHub"
EDGE_SYSTEM_MODULES = (EDGE_AGENT, EDGE_HUB)


class DeviceStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class AuthType(StrEnum):
    SAS = "sas"
    SELF_SIGNED = "selfSigned"
    CERTIFICATE_AUTHORITY = "certificateAuthority"
    NONE = "none"


def new_generation_id() -> str:
    return f"{int(new_hex(15), 16) % 10**18:018d}"


def counter_etag(counter: int) -> str:
    return base64.b64encode(str(counter).encode()).decode()


@dataclass(frozen=True, slots=True)
class Authentication:
    type: AuthType = AuthType.SAS
    primary_key: str | None = None
    secondary_key: str | None = None
    primary_thumbprint: str | None = None
    secondary_thumbprint: str | None = None

    def to_json(self, *, include_keys: bool = True) -> JsonObject:
        keys = (self.primary_key, self.secondary_key) if include_keys else (None, None)
        return {
            "symmetricKey": {"primaryKey": keys[0], "secondaryKey": keys[1]},
            "x509Thumbprint": {
                "primaryThumbprint": self.primary_thumbprint,
                "secondaryThumbprint": self.secondary_thumbprint,
            },
            "type": str(self.type),
        }

    def symmetric_keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.primary_key, self.secondary_key) if k)


@dataclass(frozen=True, slots=True)
class Connection:
    """Connection facts the gateway keeps true for a device or module."""

    connected: bool = False
    state_updated: float | None = None
    last_activity: float | None = None

    def to_json(self) -> JsonObject:
        return {
            "connectionState": "Connected" if self.connected else "Disconnected",
            "connectionStateUpdatedTime": iso(self.state_updated) if self.state_updated else NEVER,
            "lastActivityTime": iso(self.last_activity) if self.last_activity else NEVER,
        }


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    generation_id: str
    auth: Authentication
    status: DeviceStatus = DeviceStatus.ENABLED
    status_reason: str | None = None
    status_updated: float | None = None
    iot_edge: bool = False
    connection: Connection = field(default_factory=Connection)
    c2d_count: int = 0
    device_scope: str | None = None
    parent_scopes: tuple[str, ...] = ()
    etag_counter: int = 0
    created: float = 0.0

    @property
    def etag(self) -> str:
        return counter_etag(self.etag_counter)

    @property
    def enabled(self) -> bool:
        return self.status is DeviceStatus.ENABLED

    def to_json(self, *, include_keys: bool = True) -> JsonObject:
        return {
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag,
            **self.connection.to_json(),
            "status": str(self.status),
            "statusReason": self.status_reason,
            "statusUpdatedTime": iso(self.status_updated) if self.status_updated else NEVER,
            "cloudToDeviceMessageCount": self.c2d_count,
            "authentication": self.auth.to_json(include_keys=include_keys),
            "capabilities": {"iotEdge": self.iot_edge},
            "deviceScope": self.device_scope,
            "parentScopes": list(self.parent_scopes),
        }


@dataclass(frozen=True, slots=True)
class Module:
    device_id: str
    module_id: str
    generation_id: str
    auth: Authentication
    managed_by: str | None = None
    connection: Connection = field(default_factory=Connection)
    c2d_count: int = 0
    etag_counter: int = 0
    created: float = 0.0

    @property
    def etag(self) -> str:
        return counter_etag(self.etag_counter)

    def to_json(self, *, include_keys: bool = True) -> JsonObject:
        return {
            "moduleId": self.module_id,
            "managedBy": self.managed_by,
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag,
            **self.connection.to_json(),
            "cloudToDeviceMessageCount": self.c2d_count,
            "authentication": self.auth.to_json(include_keys=include_keys),
        }
