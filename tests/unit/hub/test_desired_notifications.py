"""After a commit, the hub tells its listener (the device gateway) of every desired-property change.

A real SQLite store and the real services; only the listener is a recording one, as the
TwinListener protocol invites.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from edgeprov.clock import SystemClock
from edgeprov.errors import PreconditionFailed
from edgeprov.hub.service import HubService
from edgeprov.store.sqlite import SqliteStore
from edgeprov.types import JsonObject
from edgeprov.vault import KeyVault

HUB = "hub.example"
Call = tuple[str, str, str, JsonObject, int]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def desired_changed(self, hub: str, device_id: str, module_id: str, patch: JsonObject, version: int) -> None:
        self.calls.append((hub, device_id, module_id, patch, version))

    def access_revoked(self, hub: str, device_id: str, module_id: str) -> None:
        return None


def run(tmp_path: Path, scenario: Callable[[HubService, Recorder], Coroutine[Any, Any, None]]) -> None:
    store = SqliteStore(tmp_path / "edgeprov.db", KeyVault.load_or_create(tmp_path / "master.key"))
    recorder = Recorder()
    try:
        asyncio.run(scenario(HubService(store, SystemClock(), recorder), recorder))
    finally:
        store.close()


@pytest.mark.spec("hub-protocol.md §2.2")
def test_patch_replace_bulk_and_deployments_notify_changes_only(tmp_path: Path) -> None:
    async def scenario(hubs: HubService, recorder: Recorder) -> None:
        await hubs.put_device(HUB, "d1", {"capabilities": {"iotEdge": True}}, None)
        await hubs.update_twin(HUB, "d1", "", {"properties": {"desired": {"a": 1, "b": 2}}}, None, replace_all=False)
        await hubs.update_twin(HUB, "d1", "", {"tags": {"t": 1}}, None, replace_all=False)
        await hubs.update_twin(HUB, "d1", "", {"properties": {"desired": {"b": 3}}}, None, replace_all=True)
        await hubs.update_twin(HUB, "d1", "", {"properties": {"desired": {"b": 3}}}, None, replace_all=True)
        with pytest.raises(PreconditionFailed):
            await hubs.update_twin(HUB, "d1", "", {"properties": {"desired": {"c": 1}}}, '"AAAA"', replace_all=False)
        await hubs.bulk(HUB, [{"id": "d1", "importMode": "updateTwin", "properties": {"desired": {"b": 4}}}])
        content = {"modulesContent": {"$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}}}}
        await hubs.apply_configuration_content(HUB, "d1", content)
        assert recorder.calls == [
            (HUB, "d1", "", {"a": 1, "b": 2}, 2),
            (HUB, "d1", "", {"a": None, "b": 3}, 3),  # a replace is told as the diff, removals as null
            (HUB, "d1", "", {"b": 4}, 4),
            (HUB, "d1", "$edgeAgent", {"schemaVersion": "1.1"}, 2),
        ]

    run(tmp_path, scenario)


def test_a_rejected_bulk_batch_notifies_nothing(tmp_path: Path) -> None:
    async def scenario(hubs: HubService, recorder: Recorder) -> None:
        await hubs.put_device(HUB, "d1", {}, None)
        items = [
            {"id": "d1", "importMode": "updateTwin", "properties": {"desired": {"x": 1}}},
            {"id": "ghost", "importMode": "update"},
        ]
        result = await hubs.bulk(HUB, items)
        assert [e["deviceId"] for e in result.errors] == ["ghost"]
        assert recorder.calls == []
        twin = await hubs.get_twin(HUB, "d1")
        assert "x" not in twin["properties"]["desired"]

    run(tmp_path, scenario)
