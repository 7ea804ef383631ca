"""Running queries over a hub's twins: pages for ``POST /devices/query``, counts for configuration metrics.

Twins stream from the store in key order, a chunk per read, and the event loop gets a turn between
chunks: nothing holds more than one chunk of twins, however many the hub has. A page answers once
it is full or once it has examined ``scan_limit`` twins, whichever comes first; its continuation
token says where the next page starts, so a selective query over a large hub costs each request
a bounded time and the client follows the continuation as it does for any page.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import orjson

from edgeprov.errors import BadRequest
from edgeprov.hub.query import Aggregation, Collection, Query, holds, parse_query, project
from edgeprov.hub.views import TwinRow
from edgeprov.store.base import Store, Tx
from edgeprov.types import JsonObject

DEFAULT_CHUNK = 500
DEFAULT_SCAN_LIMIT = 10_000
DEFAULT_PAGE = 100
MAX_PAGE = 1000

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class QueryPage:
    items: list[JsonObject]
    continuation: str | None
    item_type: str


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a paged query stopped: the last twin it examined and how many rows it has returned."""

    after: Key
    returned: int


class TwinQueries:
    def __init__(self, store: Store, *, chunk: int = DEFAULT_CHUNK, scan_limit: int = DEFAULT_SCAN_LIMIT) -> None:
        self._store = store
        self._chunk = chunk
        self._scan_limit = scan_limit

    async def page(self, hub: str, text: str, continuation: str | None, page_size: int) -> QueryPage:
        query = parse_query(text)
        if query.aggregates:
            return QueryPage(await self._aggregate(hub, query), None, "raw")
        item_type = "twin" if query.items is None else "raw"
        position = _decode(continuation, text) if continuation else _Position(("", ""), 0)
        limit = _page_size(page_size)
        if query.top is not None:
            limit = min(limit, query.top - position.returned)
        if limit <= 0:
            return QueryPage([], None, item_type)
        items: list[JsonObject] = []
        last, scanned = position.after, 0
        async for key, document in self._twins(hub, query.collection, position.after):
            last, scanned = key, scanned + 1
            if holds(query.where, document):
                items.append(project(query, document))
            if len(items) >= limit or scanned >= self._scan_limit:
                break
        else:
            return QueryPage(items, None, item_type)
        returned = position.returned + len(items)
        done = (query.top is not None and returned >= query.top) or not await self._any_after(hub, query, last)
        return QueryPage(items, None if done else _encode(_Position(last, returned), text), item_type)

    async def count(self, hub: str, queries: Sequence[Query]) -> list[int]:
        """How many rows each query returns, in one pass over each collection the queries read."""
        counts = [0] * len(queries)
        for collection in Collection:
            mine = [(i, q) for i, q in enumerate(queries) if q.collection is collection]
            if not mine:
                continue
            groups = {i: Aggregation(q) for i, q in mine if q.aggregates}
            async for _, document in self._twins(hub, collection, ("", "")):
                for i, query in mine:
                    if i in groups:
                        groups[i].add(document)
                    elif holds(query.where, document) and (query.top is None or counts[i] < query.top):
                        counts[i] += 1
            for i, aggregation in groups.items():
                counts[i] = len(aggregation.rows())
        return counts

    async def _aggregate(self, hub: str, query: Query) -> list[JsonObject]:
        aggregation = Aggregation(query)
        async for _, document in self._twins(hub, query.collection, ("", "")):
            aggregation.add(document)
        return aggregation.rows()

    async def _twins(self, hub: str, collection: Collection, after: Key) -> AsyncIterator[tuple[Key, JsonObject]]:
        modules = collection is Collection.MODULES
        while True:
            rows = await self._store.read(_listing(hub, after, self._chunk, modules))
            for row in rows:
                yield row.key, row.view()
            if len(rows) < self._chunk:
                return
            after = rows[-1].key
            await asyncio.sleep(0)  # let other requests run between chunks

    async def _any_after(self, hub: str, query: Query, key: Key) -> bool:
        modules = query.collection is Collection.MODULES
        return bool(await self._store.read(_listing(hub, key, 1, modules)))


def _listing(hub: str, after: Key, limit: int, modules: bool) -> Callable[[Tx], list[TwinRow]]:
    return lambda tx: tx.list_twins(hub, after, limit, modules)


def _page_size(requested: int) -> int:
    return DEFAULT_PAGE if requested <= 0 else min(requested, MAX_PAGE)


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode(position: _Position, text: str) -> str:
    raw = orjson.dumps([_fingerprint(text), *position.after, position.returned])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, text: str) -> _Position:
    try:
        fingerprint, device, module, returned = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = _Position((str(device), str(module)), int(returned))
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("x-ms-continuation is not a continuation token this hub issued") from None
    if fingerprint != _fingerprint(text):
        raise BadRequest("x-ms-continuation belongs to another query: send the query that returned it")
    return position
