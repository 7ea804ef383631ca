"""Deploying modules content to one edge device (``POST /devices/{id}/applyConfigurationContent``).

spec/hub-protocol.md §5.1: ``modulesContent["$edgeAgent"]["properties.desired"]`` becomes the
desired properties of the ``$edgeAgent`` module twin, and likewise for ``$edgeHub`` and every
other module named; a module that has no identity yet gets one (managed by IoT Edge).
"""

from __future__ import annotations

from typing import Any

from edgeprov.errors import BadRequest, DeviceNotFound, InvalidConfigurationContent
from edgeprov.hub import registry
from edgeprov.hub.configuration import DESIRED, MODULES_CONTENT, check_content
from edgeprov.hub.twin import DesiredChange
from edgeprov.store.base import Tx
from edgeprov.types import JsonObject

MANAGED_BY_EDGE = "IotEdge"


def modules_desired(body: Any) -> dict[str, JsonObject]:
    """Each module's full desired properties from a ``{"modulesContent": {...}}`` body."""
    content = check_content(body, "body")
    if MODULES_CONTENT not in content:
        raise InvalidConfigurationContent(
            "a device deployment needs 'modulesContent'; deviceContent and moduleContent are for configurations"
        )
    modules: dict[str, JsonObject] = {}
    for module_id, sections in content[MODULES_CONTENT].items():
        if set(sections) != {DESIRED}:
            raise InvalidConfigurationContent(
                f"body.modulesContent.{module_id}: a device deployment sets whole desired properties "
                f"({DESIRED!r}); layered paths belong to layered deployments"
            )
        modules[module_id] = sections[DESIRED]
    return modules


def apply(tx: Tx, hub: str, device_id: str, modules: dict[str, JsonObject], now: float) -> list[DesiredChange]:
    device = tx.get_device(hub, device_id)
    if device is None:
        raise DeviceNotFound(f"device {device_id!r} does not exist on {hub}")
    if not device.iot_edge:
        raise BadRequest(f"device {device_id!r} is not an IoT Edge device (capabilities.iotEdge is false)")
    registry.ensure_edge_modules(tx, hub, device_id, now)
    changes = []
    for module_id, desired in modules.items():
        registry.ensure_module(tx, hub, device_id, module_id, MANAGED_BY_EDGE, now)
        twin = tx.get_twin(hub, device_id, module_id)
        assert twin is not None, "save_module gives every module a twin"
        twin, change = twin.replace_desired(desired, now)
        tx.put_twin(hub, twin)
        if change:
            changes.append(DesiredChange(device_id, module_id, change, twin.desired.version))
    return changes
