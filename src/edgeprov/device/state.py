"""The runtime's state directory: what was applied, the key, the identity backup, the agent's status.

    STATE/                        --state-dir, $EDGEPROV_STATE, default /var/lib/edgeprov (mode 0700)
      config/applied.toml         the applied config.toml, its key replaced by the key file's URI
      config/applied.json         where it was applied from, the file's SHA-256, when
      keys/device-id              the device key, raw bytes, mode 0600
      keys/master-id              the master key module keys are derived from (random, made once), mode 0600
      identity/device_info.json   the provisioning backup: hub, device id, the settings it came from
      identity/modules.json       module identities in the hub ($edgeAgent, $edgeHub): ids and generationIds
      run/agent.pid               the running agent's process id
      run/status.json             the agent's state, for `system status`, `list` and `check`
      logs/runtime.log            the runtime's own log, for `system logs`

Every file is mode 0600; none holds a key but those in keys/.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgeprov.device.files import PRIVATE_DIR, read_json, write_atomic, write_json

DEFAULT_STATE_DIR = Path("/var/lib/edgeprov")
STATE_ENV = "EDGEPROV_STATE"


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR)


@dataclass(frozen=True, slots=True)
class StateDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.resolve())

    @property
    def applied_config(self) -> Path:
        return self.root / "config" / "applied.toml"

    @property
    def applied_record(self) -> Path:
        return self.root / "config" / "applied.json"

    @property
    def key_file(self) -> Path:
        return self.root / "keys" / "device-id"

    @property
    def master_key(self) -> Path:
        return self.root / "keys" / "master-id"

    @property
    def backup(self) -> Path:
        return self.root / "identity" / "device_info.json"

    @property
    def modules(self) -> Path:
        return self.root / "identity" / "modules.json"

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / "agent.pid"

    @property
    def status(self) -> Path:
        return self.root / "run" / "status.json"

    @property
    def log(self) -> Path:
        return self.root / "logs" / "runtime.log"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        for sub in ("config", "keys", "identity", "run", "logs"):
            (self.root / sub).mkdir(exist_ok=True, mode=PRIVATE_DIR)

    def store_key(self, raw: bytes) -> None:
        write_atomic(self.key_file, raw)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the device is in its hub: the provisioning result, kept as the offline backup."""

    hub: str
    device_id: str
    source: str
    provisioned_at: str
    settings: dict[str, str] = field(default_factory=dict)
    substatus: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Identity | None:
        try:
            return cls(**value)
        except TypeError:
            return None


def load_identity(state: StateDir) -> Identity | None:
    """The backup; a missing, torn or foreign one counts as none (the device provisions again)."""
    value = read_json(state.backup)
    return Identity.from_json(value) if value is not None else None


def save_identity(state: StateDir, identity: Identity) -> None:
    write_json(state.backup, identity.to_json())
    state.modules.unlink(missing_ok=True)


class Phase(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RETRYING = "retrying"


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """What the running agent says of itself, rewritten at every change."""

    pid: int
    state: str
    started_at: float
    identity: Phase = Phase.PENDING
    identity_detail: str = ""
    modules: Phase = Phase.PENDING
    modules_detail: str = ""
    hub: Phase = Phase.PENDING  # the MQTT session: READY while connected
    hub_detail: str = ""
    stopped_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AgentStatus | None:
        try:
            phases = {name: Phase(value.get(name, Phase.PENDING)) for name in ("identity", "modules", "hub")}
            return cls(**{**value, **phases})
        except (TypeError, ValueError):
            return None


def load_status(state: StateDir) -> AgentStatus | None:
    value = read_json(state.status)
    return AgentStatus.from_json(value) if value is not None else None


def save_status(state: StateDir, status: AgentStatus) -> None:
    write_json(state.status, status.to_json())
