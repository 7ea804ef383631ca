"""What ``system status`` and ``list`` report, computed from the state directory."""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgeprov.device.services import SERVICE, agent_pid
from edgeprov.device.state import Phase, StateDir, load_identity, load_status

RUNNING = "Running"
READY = "Ready"
HUB_CONNECTION = "hub-connection"


@dataclass(frozen=True, slots=True)
class ServiceState:
    name: str
    state: str

    @property
    def healthy(self) -> bool:
        return self.state in (RUNNING, READY)


@dataclass(frozen=True, slots=True)
class ModuleRow:
    name: str
    status: str
    description: str
    config: str


def service_states(state: StateDir) -> list[ServiceState]:
    """The agent process, the device identity, the module identities, the live hub session: Running, Ready
    or Down - why."""
    status = load_status(state)
    running = agent_pid(state) is not None
    if not running or status is None:
        identity = READY if load_identity(state) else "Down - not provisioned"
        modules = READY if state.modules.exists() else "Down - not created"
        return [
            ServiceState(SERVICE, "Down - not running"),
            ServiceState("identity", identity),
            ServiceState("modules", modules),
            ServiceState(HUB_CONNECTION, "Down - the runtime is not running"),
        ]
    return [
        ServiceState(SERVICE, RUNNING),
        ServiceState("identity", _phase(status.identity, status.identity_detail)),
        ServiceState("modules", _phase(status.modules, status.modules_detail)),
        ServiceState(HUB_CONNECTION, _phase(status.hub, status.hub_detail)),
    ]


def _phase(phase: Phase, detail: str) -> str:
    if phase is Phase.READY:
        return RUNNING
    return f"Down - {detail or 'starting'}"


def agent_row(state: StateDir, name: str, image: str, now: float | None = None) -> ModuleRow:
    """The agent as ``iotedge list`` shows a module: status, humanised age, image."""
    now = time.time() if now is None else now
    status = load_status(state)
    if agent_pid(state) is not None and status is not None:
        return ModuleRow(name, "running", f"Up {humanize(now - status.started_at)}", image)
    if status is not None and status.stopped_at is not None:
        return ModuleRow(name, "stopped", f"Stopped {humanize(now - status.stopped_at)} ago", image)
    return ModuleRow(name, "stopped", "Stopped", image)


def humanize(seconds: float) -> str:
    for size, one, many in ((86400, "a day", "days"), (3600, "an hour", "hours"), (60, "a minute", "minutes")):
        if seconds >= size:
            count = int(seconds // size)
            return one if count == 1 else f"{count} {many}"
    count = int(seconds)
    return "less than a second" if count < 1 else "a second" if count == 1 else f"{count} seconds"
