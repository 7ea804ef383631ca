"""The device runtime: IoT Edge's config.toml, provisioning, the identity backup, the agent.

The CLI (``edgeprov device …``) is a thin layer over these.
"""

from edgeprov.device.agent import Agent, HubSession, SessionLink
from edgeprov.device.applied import load_applied, record_applied
from edgeprov.device.config import LoadedConfig, load_config, parse_config
from edgeprov.device.dps_client import Assignment, DpsClient
from edgeprov.device.hub_session import MqttHubSession, SessionSettings
from edgeprov.device.identity import Provisioner, Trigger, should_reprovision
from edgeprov.device.modules import ModuleIdentities, ModuleIdentity
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
    "ModuleIdentity",
    "MqttHubSession",
    "Provisioner",
    "ReprovisioningMode",
    "SessionLink",
    "SessionSettings",
    "StateDir",
    "Trigger",
    "load_applied",
    "load_config",
    "parse_config",
    "record_applied",
    "should_reprovision",
]
