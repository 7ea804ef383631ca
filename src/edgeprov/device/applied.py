"""The applied configuration: what ``config apply`` recorded and the agent runs from.

It is the user's ``config.toml`` with the key replaced by the URI of the key file, so it holds no
key and is read back by the same reader; editing ``config.toml`` changes nothing until the next
``config apply``, as with upstream's generated daemon configurations.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from edgeprov.clock import iso
from edgeprov.device.config import LoadedConfig, load_config
from edgeprov.device.files import read_json, write_atomic, write_json
from edgeprov.device.settings import DpsProvisioning
from edgeprov.device.state import StateDir
from edgeprov.errors import DeviceRuntimeError


@dataclass(frozen=True, slots=True)
class AppliedRecord:
    source: str
    sha256: str
    applied_at: str


def record_applied(state: StateDir, loaded: LoadedConfig, source: Path) -> None:
    state.create()
    state.store_key(loaded.config.provisioning.key.raw)
    document = _without_key(loaded, state.key_file.as_uri())
    write_atomic(state.applied_config, tomli_w.dumps(document).encode())
    write_json(
        state.applied_record,
        {"source": str(source.resolve()), "sha256": loaded.sha256, "applied_at": iso(time.time())},
    )


def load_applied(state: StateDir) -> LoadedConfig:
    if not state.applied_config.exists():
        raise DeviceRuntimeError(
            f"no configuration has been applied to {state.root}; run: edgeprov device config apply -c FILE"
        )
    return load_config(state.applied_config)


def applied_record(state: StateDir) -> AppliedRecord | None:
    value = read_json(state.applied_record)
    if value is None:
        return None
    return AppliedRecord(str(value.get("source")), str(value.get("sha256")), str(value.get("applied_at")))


def _without_key(loaded: LoadedConfig, key_uri: str) -> dict[str, Any]:
    document = copy.deepcopy(loaded.document)
    provisioning = document["provisioning"]
    if isinstance(loaded.config.provisioning, DpsProvisioning):
        provisioning["attestation"]["symmetric_key"] = {"uri": key_uri}
        return document
    manual = loaded.config.provisioning
    provisioning.pop("connection_string", None)
    provisioning["iothub_hostname"] = manual.iothub_hostname
    provisioning["device_id"] = manual.device_id
    provisioning["authentication"] = {"method": "sas", "device_id_pk": {"uri": key_uri}}
    return document
