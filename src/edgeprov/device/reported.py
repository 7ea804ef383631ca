"""What the agent reports in ``$edgeAgent``'s twin, shaped as spec/hub-protocol.md §5.3.

It reports what is true: the agent itself runs; no deployment is applied (running containers is a
later release), so ``modules`` is empty and a deployment in the desired properties is answered
with a failure that says so, not with 200.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from edgeprov import __version__
from edgeprov.clock import iso
from edgeprov.device.settings import AgentSettings
from edgeprov.device.state import AgentStatus
from edgeprov.types import JsonObject

SCHEMA_VERSION = "1.0"
# edgeAgent accepts a deployment of schema 1.0 or 1.1 (spec/hub-protocol.md §5.2).
SUPPORTED_SCHEMAS = ("1.0", "1.1")
DEPLOYMENT_KEYS = ("schemaVersion", "runtime", "systemModules", "modules")


@dataclass(frozen=True, slots=True)
class DesiredStatus:
    """``lastDesiredStatus``: edgeAgent's DeploymentStatusCode and a description."""

    code: int
    description: str

    def to_json(self) -> JsonObject:
        return {"code": self.code, "description": self.description}


CONFIG_EMPTY = DesiredStatus(417, "ConfigEmptyError: the desired properties hold no deployment")
NOT_APPLIED = DesiredStatus(500, "Failed: this runtime does not apply deployments yet; no module was started")


def desired_status(desired: JsonObject) -> DesiredStatus:
    """How the agent answers the desired properties it holds."""
    if not any(key in desired for key in DEPLOYMENT_KEYS):
        return CONFIG_EMPTY
    schema = desired.get("schemaVersion")
    if schema not in SUPPORTED_SCHEMAS:
        return DesiredStatus(412, f"InvalidSchemaVersion: {str(schema)[:40]!r} is not one of {SUPPORTED_SCHEMAS}")
    return NOT_APPLIED


def edge_agent_reported(
    status: AgentStatus, agent: AgentSettings, desired_version: int, desired: JsonObject
) -> JsonObject:
    """The whole reported document; the twin code sends only what differs from the hub's copy."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "lastDesiredVersion": desired_version,
        "lastDesiredStatus": desired_status(desired).to_json(),
        "version": {"version": __version__},
        "runtime": {
            "type": agent.type,
            "platform": {"os": platform.system().lower(), "architecture": platform.machine(), "version": __version__},
        },
        "systemModules": {
            "edgeAgent": {
                "type": agent.type,
                "runtimeStatus": "running",
                "statusDescription": "running",
                "lastStartTimeUtc": iso(status.started_at),
                "imagePullPolicy": agent.image_pull_policy,
                "settings": {"image": agent.image},
            }
        },
        "modules": {},
    }
