"""The embedded store's group commit: writes queued together commit together, and fail alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edgeprov.errors import Conflict
from edgeprov.hub.registry import new_sas_device
from edgeprov.sas import generate_key
from edgeprov.store.sqlite import SqliteStore, SqliteTx
from edgeprov.vault import KeyVault


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "edgeprov.db", KeyVault.load_or_create(tmp_path / "master.key"))


def test_a_failing_write_leaves_no_trace_and_its_batch_commits(store: SqliteStore) -> None:
    def failing(tx: SqliteTx) -> None:
        tx.set_meta("b", "half-written")
        raise Conflict("refused after writing")

    async def batch() -> list[object]:
        writes = [
            store.write(lambda tx: tx.set_meta("a", "1")),
            store.write(failing),
            store.write(lambda tx: tx.set_meta("c", "3")),
        ]
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        first, second, third = asyncio.run(batch())
        assert first is None and third is None
        assert isinstance(second, Conflict)
        stored = store.write_blocking(lambda tx: [tx.get_meta(name) for name in ("a", "b", "c")])
        assert stored == ["1", None, "3"]
    finally:
        store.close()


def test_add_device_refuses_an_existing_id_and_keeps_the_stored_one(store: SqliteStore) -> None:
    first = new_sas_device("dev-1", (generate_key(), generate_key()), iot_edge=False, now=1.0)
    second = new_sas_device("dev-1", (generate_key(), generate_key()), iot_edge=True, now=2.0)
    try:
        assert store.write_blocking(lambda tx: tx.add_device("hub", first)) is True
        assert store.write_blocking(lambda tx: tx.add_device("hub", second)) is False
        stored = store.write_blocking(lambda tx: tx.get_device("hub", "dev-1"))
        assert stored is not None
        assert stored.generation_id == first.generation_id
        assert stored.auth == first.auth
    finally:
        store.close()
