"""The device runtime: IoT Edge's config.toml, provisioning, the identity backup, the agent.

The CLI (``edgeprov device …``) is a thin layer over these.
"""

from edgeprov.device.agent import Agent, HubSession
from edgeprov.device.applied import load_applied, record_applied
from edgeprov.device.config import LoadedConfig, load_config, parse_config
from edgeprov.device.dps_client import Assignment, DpsClient
from edgeprov.device.identity import Provisioner, Trigger, should_reprovision
from edgeprov.device.modules import ModuleIdentities
from edgeprov.device.settings import DeviceConfig, DeviceKey, DpsProvisioning, ManualProvisioning, ReprovisioningMode
from edgeprov.device.state import AgentStatus, Identity, StateDir

__all__ = [
    "Agent",
    "AgentStatus",
    "Assignment",
    "DeviceConfig",
    "DeviceKey",
    "DpsClient",
    "DpsProvisioning",
    "HubSession",
    "Identity",
    "LoadedConfig",
    "ManualProvisioning",
    "ModuleIdentities",
    "Provisioner",
    "ReprovisioningMode",
    "StateDir",
    "Trigger",
    "load_applied",
    "load_config",
    "parse_config",
    "record_applied",
    "should_reprovision",
]
