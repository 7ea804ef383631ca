"""The hub's configurations as the service API manages them (spec/hub-protocol.md §3.2).

Configurations are stored and listed here; applying them to the devices they target is not
done yet. Their metrics are counted from the twins when a configuration is shown, in one pass
over the twins for every configuration shown together.
"""

from __future__ import annotations

from typing import Any

from edgeprov.clock import Clock
from edgeprov.errors import (
    BadRequest,
    ConfigurationAlreadyExists,
    ConfigurationNotFound,
    InvalidConfigurationCustomMetricsQuery,
    InvalidConfigurationTargetCondition,
)
from edgeprov.etags import check_create_or_update, check_if_match
from edgeprov.hub.configuration import Configuration, Metric, check_metric_query, check_target_condition
from edgeprov.hub.queries import TwinQueries
from edgeprov.hub.query import parse_query
from edgeprov.store.base import Store, Tx
from edgeprov.types import JsonObject

MAX_LIST = 1000


class ConfigurationService:
    def __init__(self, store: Store, clock: Clock, queries: TwinQueries) -> None:
        self._store = store
        self._clock = clock
        self._queries = queries

    async def put(self, hub: str, config_id: str, body: JsonObject, if_match: str | None) -> JsonObject:
        """Create (no If-Match) or update (If-Match) a configuration."""
        now = self._clock.now()

        def write(tx: Tx) -> Configuration:
            existing = tx.get_configuration(hub, config_id)
            etag = existing.etag if existing else None
            what = f"configuration {config_id!r}"
            check_create_or_update(
                etag, if_match, what, f"on {hub}", missing=ConfigurationNotFound, exists=ConfigurationAlreadyExists
            )
            configuration = Configuration.from_json(config_id, body, existing, now)
            tx.put_configuration(hub, configuration)
            return configuration

        return (await self._shown(hub, [await self._store.write(write)]))[0]

    async def get(self, hub: str, config_id: str) -> JsonObject:
        configuration = await self._store.read(lambda tx: tx.get_configuration(hub, config_id))
        if configuration is None:
            raise ConfigurationNotFound(f"configuration {config_id!r} does not exist on {hub}")
        return (await self._shown(hub, [configuration]))[0]

    async def list_configurations(self, hub: str, top: int) -> list[JsonObject]:
        limit = MAX_LIST if top <= 0 else min(top, MAX_LIST)
        return await self._shown(hub, await self._store.read(lambda tx: tx.list_configurations(hub, limit)))

    async def delete(self, hub: str, config_id: str, if_match: str | None) -> None:
        def write(tx: Tx) -> None:
            existing = tx.get_configuration(hub, config_id)
            if existing is None:
                raise ConfigurationNotFound(f"configuration {config_id!r} does not exist on {hub}")
            check_if_match(if_match, existing.etag, f"configuration {config_id!r}")
            tx.delete_configuration(hub, config_id)

        await self._store.write(write)

    async def _shown(self, hub: str, configurations: list[Configuration]) -> list[JsonObject]:
        metrics = [m for c in configurations for m in (*c.system_metrics(), *c.custom_metrics())]
        counts = await self._queries.count(hub, [parse_query(m.query) for m in metrics])
        by_metric: dict[Metric, int] = dict(zip(metrics, counts, strict=True))
        return [c.to_json(by_metric) for c in configurations]


def check_queries(body: Any) -> JsonObject:
    """``POST /configurations/testQueries``: what is wrong with a target condition and metric queries."""
    if not isinstance(body, dict):
        raise BadRequest('the body is {"targetCondition": "...", "customMetricQueries": {"name": "SELECT ..."}}')
    condition, queries = body.get("targetCondition") or "", body.get("customMetricQueries") or {}
    if not isinstance(condition, str) or not isinstance(queries, dict):
        raise BadRequest("'targetCondition' is a string and 'customMetricQueries' an object of name: query")
    condition_error = ""
    try:
        check_target_condition(condition)
    except InvalidConfigurationTargetCondition as exc:
        condition_error = exc.message
    errors: dict[str, str] = {}
    for name, query in queries.items():
        try:
            check_metric_query(str(name), query)
        except InvalidConfigurationCustomMetricsQuery as exc:
            errors[str(name)] = exc.message
    return {"targetConditionError": condition_error, "customMetricQueryErrors": errors}
