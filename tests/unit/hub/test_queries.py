"""Paged queries stream through the store a chunk at a time and bound the twins one page examines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeprov.clock import SystemClock
from edgeprov.errors import BadRequest
from edgeprov.hub.queries import QueryPage, TwinQueries
from edgeprov.hub.query import parse_query
from edgeprov.hub.service import HubService
from edgeprov.store.sqlite import SqliteStore
from edgeprov.vault import KeyVault

HUB = "hub.example"
DEVICES = 30


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "edgeprov.db", KeyVault.load_or_create(tmp_path / "master.key"))

    async def populate() -> None:
        hubs = HubService(store, SystemClock())
        for n in range(DEVICES):
            await hubs.put_device(HUB, f"d{n:02d}", {"capabilities": {"iotEdge": n % 10 == 0}}, None)
            await hubs.update_twin(HUB, f"d{n:02d}", "", {"tags": {"n": n}}, None, replace_all=False)

    asyncio.run(populate())
    yield store
    store.close()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def all_pages(queries: TwinQueries, text: str, size: int) -> list[QueryPage]:
    async def collect() -> list[QueryPage]:
        pages, continuation = [], None
        while True:
            page = await queries.page(HUB, text, continuation, size)
            pages.append(page)
            continuation = page.continuation
            if continuation is None:
                return pages

    return asyncio.run(collect())


@pytest.mark.spec("hub-protocol.md §4")
def test_a_page_stops_after_its_scan_limit_and_continues_where_it_stopped(store: SqliteStore) -> None:
    queries = TwinQueries(store, chunk=4, scan_limit=10)
    pages = all_pages(queries, "SELECT deviceId FROM devices WHERE tags.n = 25 OR tags.n = 3", 100)
    assert [[row["deviceId"] for row in page.items] for page in pages] == [["d03"], [], ["d25"]]
    assert all(page.item_type == "raw" for page in pages)


def test_pages_cross_chunk_boundaries_and_top_counts_across_pages(store: SqliteStore) -> None:
    queries = TwinQueries(store, chunk=4)
    pages = all_pages(queries, "SELECT * FROM devices", 7)
    assert [len(page.items) for page in pages] == [7, 7, 7, 7, 2]
    assert [t["deviceId"] for page in pages for t in page.items] == [f"d{n:02d}" for n in range(DEVICES)]
    top = all_pages(queries, "SELECT TOP 9 deviceId FROM devices WHERE tags.n >= 5", 4)
    assert [[r["deviceId"] for r in page.items] for page in top] == [
        ["d05", "d06", "d07", "d08"],
        ["d09", "d10", "d11", "d12"],
        ["d13"],
    ]
    assert all_pages(queries, "SELECT TOP 0 * FROM devices", 4)[0].items == []


def test_aggregates_and_counts_read_every_chunk(store: SqliteStore) -> None:
    queries = TwinQueries(store, chunk=4)
    [page] = all_pages(queries, "SELECT COUNT() AS n, SUM(tags.n) AS total FROM devices", 5)
    assert (page.items, page.item_type) == ([{"n": DEVICES, "total": sum(range(DEVICES))}], "raw")

    async def count() -> None:
        texts = [
            "SELECT deviceId FROM devices WHERE capabilities.iotEdge = true",
            "SELECT * FROM devices.modules",
            "SELECT TOP 2 deviceId FROM devices",
            "SELECT tags.n, COUNT() AS c FROM devices WHERE tags.n < 4 GROUP BY tags.n",
        ]
        assert await queries.count(HUB, [parse_query(t) for t in texts]) == [3, 6, 2, 4]

    run(count)


def test_a_continuation_is_checked(store: SqliteStore) -> None:
    queries = TwinQueries(store, chunk=4)

    async def scenario() -> None:
        token = (await queries.page(HUB, "SELECT * FROM devices", None, 2)).continuation
        assert token is not None
        with pytest.raises(BadRequest, match="belongs to another query"):
            await queries.page(HUB, "SELECT deviceId FROM devices", token, 2)
        with pytest.raises(BadRequest, match="not a continuation token this hub issued"):
            await queries.page(HUB, "SELECT * FROM devices", token[:-3], 2)

    run(scenario)
