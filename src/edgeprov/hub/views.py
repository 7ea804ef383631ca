"""Twins as the service API shows them: the stored twin joined with its identity's facts."""

from __future__ import annotations

from dataclasses import dataclass

from edgeprov.clock import NEVER, iso
from edgeprov.hub.model import Device, Module
from edgeprov.hub.twin import Twin
from edgeprov.types import JsonObject


def render_twin(device: Device, module: Module | None, twin: Twin) -> JsonObject:
    identity = module or device
    view: JsonObject = {"deviceId": device.device_id}
    if module is not None:
        view["moduleId"] = module.module_id
    connection = identity.connection
    view |= {
        "etag": twin.etag,
        "deviceEtag": identity.etag,
        "status": str(device.status),
        "statusReason": device.status_reason,
        "statusUpdateTime": iso(device.status_updated) if device.status_updated else NEVER,
        "connectionState": "Connected" if connection.connected else "Disconnected",
        "lastActivityTime": iso(connection.last_activity) if connection.last_activity else NEVER,
        "cloudToDeviceMessageCount": identity.c2d_count,
        "authenticationType": str(identity.auth.type),
        "x509Thumbprint": {
            "primaryThumbprint": identity.auth.primary_thumbprint,
            "secondaryThumbprint": identity.auth.secondary_thumbprint,
        },
        "modelId": "",
        "version": twin.version,
    }
    if module is None:
        view["capabilities"] = {"iotEdge": device.iot_edge}
        if device.device_scope:
            view["deviceScope"] = device.device_scope
    view["tags"] = twin.tags
    view["properties"] = {"desired": twin.desired.to_json(), "reported": twin.reported.to_json()}
    return view


@dataclass(frozen=True, slots=True)
class TwinRow:
    """A stored twin with its identities, as a query streams them in key order."""

    device: Device
    module: Module | None
    twin: Twin

    @property
    def key(self) -> tuple[str, str]:
        return self.twin.device_id, self.twin.module_id

    def view(self) -> JsonObject:
        return render_twin(self.device, self.module, self.twin)
