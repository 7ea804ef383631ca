"""Identity registry operations shared by the provisioning service, the service API and the gateway.

Functions here take a :class:`edgeprov.store.base.Tx` and run inside one write transaction.
"""

from __future__ import annotations

from dataclasses import replace

from edgeprov.hub.identities import module_from_json
from edgeprov.hub.model import EDGE_SYSTEM_MODULES, Authentication, AuthType, Device, Module, new_generation_id
from edgeprov.hub.twin import Twin
from edgeprov.store.base import Tx
from edgeprov.types import JsonObject


def new_sas_device(device_id: str, keys: tuple[str, str], iot_edge: bool, now: float) -> Device:
    auth = Authentication(AuthType.SAS, keys[0], keys[1])
    return Device(device_id, new_generation_id(), auth, iot_edge=iot_edge, created=now, etag_counter=1)


def create_device(tx: Tx, hub: str, device: Device, twin: Twin, now: float) -> bool:
    """Store a new device with its twin (and an edge device's system modules); False if it exists."""
    if not tx.add_device(hub, device):
        return False
    tx.put_twin(hub, twin)
    if device.iot_edge:
        ensure_edge_modules(tx, hub, device.device_id, now)
    return True


def upsert_sas_device(tx: Tx, hub: str, device_id: str, keys: tuple[str, str], iot_edge: bool, now: float) -> Device:
    """Create the device, or give an existing one these keys and this capability."""
    existing = tx.get_device(hub, device_id)
    if existing is None:
        device = new_sas_device(device_id, keys, iot_edge, now)
    else:
        auth = Authentication(AuthType.SAS, keys[0], keys[1])
        device = replace(existing, auth=auth, iot_edge=iot_edge, etag_counter=existing.etag_counter + 1)
    tx.put_device(hub, device)
    if iot_edge:
        ensure_edge_modules(tx, hub, device_id, now)
    return device


def save_device(tx: Tx, hub: str, device: Device, now: float) -> None:
    """Store a device identity with what it needs: a twin and, for an edge device, its system modules."""
    tx.put_device(hub, device)
    ensure_twin(tx, hub, device.device_id, {}, {}, now)
    if device.iot_edge:
        ensure_edge_modules(tx, hub, device.device_id, now)


def save_module(tx: Tx, hub: str, module: Module, now: float) -> None:
    tx.put_module(hub, module)
    if tx.get_twin(hub, module.device_id, module.module_id) is None:
        tx.put_twin(hub, Twin.initial(module.device_id, module.module_id, {}, {}, now))


def ensure_edge_modules(tx: Tx, hub: str, device_id: str, now: float) -> None:
    """An edge device needs ``$edgeAgent`` and ``$edgeHub`` before its runtime can start."""
    for module_id in EDGE_SYSTEM_MODULES:
        ensure_module(tx, hub, device_id, module_id, None, now)


def ensure_module(tx: Tx, hub: str, device_id: str, module_id: str, managed_by: str | None, now: float) -> None:
    if tx.get_module(hub, device_id, module_id) is None:
        save_module(tx, hub, module_from_json(device_id, module_id, {"managedBy": managed_by}, None, now), now)


def set_initial_twin(tx: Tx, hub: str, device_id: str, tags: JsonObject, desired: JsonObject, now: float) -> None:
    """The device's twin from an initial state; an existing twin keeps moving its versions forward."""
    existing = tx.get_twin(hub, device_id)
    twin = Twin.initial(device_id, "", tags, desired, now) if existing is None else existing.reset(tags, desired, now)
    tx.put_twin(hub, twin)


def ensure_twin(tx: Tx, hub: str, device_id: str, tags: JsonObject, desired: JsonObject, now: float) -> None:
    if tx.get_twin(hub, device_id) is None:
        tx.put_twin(hub, Twin.initial(device_id, "", tags, desired, now))


def move_device(tx: Tx, source: str, target: str, device_id: str) -> bool:
    """Carry the device's twin to ``target`` and remove the device from ``source``.

    Returns whether there was a twin to carry.
    """
    twin = tx.get_twin(source, device_id)
    if twin is not None:
        tx.put_twin(target, twin.moved())
    tx.delete_device(source, device_id)
    return twin is not None
