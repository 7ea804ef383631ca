"""Configurations: automatic device management and IoT Edge deployments, as stored and shown.

spec/hub-protocol.md §3.2: ``content`` is fixed at creation; ``targetCondition``, ``priority``,
``labels`` and ``metrics`` may change. A configuration's metrics are queries of the query
language; their results are computed when it is shown, from the twins as they are then.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeprov.clock import iso
from edgeprov.errors import (
    BadRequest,
    CannotModifyImmutableConfigurationContent,
    InvalidConfigurationContent,
    InvalidConfigurationCustomMetricsQuery,
    InvalidConfigurationTargetCondition,
    InvalidQuery,
    InvalidTwin,
)
from edgeprov.hub.model import counter_etag
from edgeprov.hub.query import Collection, Condition, parse_condition, parse_query
from edgeprov.hub.twin import check_collection
from edgeprov.ids import check_module_id
from edgeprov.types import JsonObject

MODULES_CONTENT = "modulesContent"
CONTENT_KINDS = (MODULES_CONTENT, "moduleContent", "deviceContent")
DESIRED = "properties.desired"
MAX_PRIORITY = 2**31 - 1
MAX_LABELS = 100
# The cloud's alphabet for configuration ids: lower case only.
_CONFIG_ID = re.compile(r"[a-z0-9\-:+%_#*?!(),=@;$']{1,128}")


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: the name its result has, the name its query has, and the query."""

    result: str
    query_name: str
    query: str


@dataclass(frozen=True, slots=True)
class Configuration:
    config_id: str
    content: JsonObject
    target_condition: str = ""
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    metric_queries: dict[str, str] = field(default_factory=dict)
    schema_version: str = "1.0"
    created: float = 0.0
    updated: float = 0.0
    etag_counter: int = 1

    @property
    def etag(self) -> str:
        return counter_etag(self.etag_counter)

    @property
    def kind(self) -> str:
        return next(iter(self.content))

    @classmethod
    def from_json(cls, config_id: str, body: JsonObject, existing: Configuration | None, now: float) -> Configuration:
        """The configuration ``body`` describes; an update keeps the content and creation time."""
        check_configuration_id(config_id)
        if body.get("id", config_id) != config_id:
            raise BadRequest(f"'id' in the body ({str(body.get('id'))[:128]!r}) differs from the path ({config_id!r})")
        content = _content(body.get("content"), existing)
        kind = next(iter(content))
        target_condition = _target_condition(body.get("targetCondition"), kind)
        return cls(
            config_id=config_id,
            content=content,
            target_condition=target_condition,
            priority=_priority(body.get("priority")),
            labels=_labels(body.get("labels")),
            metric_queries=_metric_queries(body.get("metrics")),
            schema_version=_text(body.get("schemaVersion"), "schemaVersion") or "1.0",
            created=existing.created if existing else now,
            updated=now,
            etag_counter=existing.etag_counter + 1 if existing else 1,
        )

    def system_metrics(self) -> list[Metric]:
        """spec §3.2: what the cloud counts for every configuration, as queries of the query language."""
        applied = f"configurations.[[{self.config_id}]].status = 'Applied'"
        if self.kind == MODULES_CONTENT:
            agent = f"select deviceId from devices.modules where moduleId = '$edgeAgent' and {applied}"
            reported = f"{agent} and properties.desired.$version = properties.reported.lastDesiredVersion"
            return [
                *self._targeted("targetedCount", "Targeted", "deviceId", "capabilities.iotEdge = true"),
                Metric("appliedCount", "Applied", agent),
                Metric("reportedSuccessfulCount", "Reporting Success", f"{reported} and {_SUCCEEDED}"),
                Metric("reportedFailedCount", "Reporting Failure", f"{reported} and {_FAILED}"),
            ]
        source, columns = _collection_of(self.kind)
        return [
            *self._targeted("targetedCount", "targetedCount", columns, ""),
            Metric("appliedCount", "appliedCount", f"select {columns} from {source} where {applied}"),
        ]

    def _targeted(self, result: str, name: str, columns: str, required: str) -> list[Metric]:
        condition = parse_condition(self.target_condition) if self.target_condition.strip() else None
        if condition is None:
            return []  # no target condition targets nothing
        source, _ = _collection_of(self.kind)
        parts = [part for part in (required, "" if condition.expression is None else f"({condition.text})") if part]
        where = f" where {' and '.join(parts)}" if parts else ""
        return [Metric(result, name, f"select {columns} from {source}{where}")]

    def custom_metrics(self) -> list[Metric]:
        return [Metric(name, name, query) for name, query in self.metric_queries.items()]

    def to_json(self, counts: Mapping[Metric, int]) -> JsonObject:
        """The wire form, with the ``counts`` of its system and custom metrics."""
        system, custom = self.system_metrics(), self.custom_metrics()
        return {
            "id": self.config_id,
            "schemaVersion": self.schema_version,
            "labels": dict(self.labels),
            "content": {kind: copy.deepcopy(self.content.get(kind, {})) for kind in CONTENT_KINDS},
            "targetCondition": self.target_condition,
            "createdTimeUtc": iso(self.created),
            "lastUpdatedTimeUtc": iso(self.updated),
            "priority": self.priority,
            "systemMetrics": _metrics_json(system, counts, defaults=("targetedCount",)),
            "metrics": _metrics_json(custom, counts),
            "etag": self.etag,
        }


_SUCCEEDED = "properties.reported.lastDesiredStatus.code = 200"
_FAILED = "properties.reported.lastDesiredStatus.code != 200"


def _collection_of(kind: str) -> tuple[str, str]:
    return ("devices.modules", "deviceId, moduleId") if kind == "moduleContent" else ("devices", "deviceId")


def _metrics_json(metrics: list[Metric], counts: Mapping[Metric, int], defaults: tuple[str, ...] = ()) -> JsonObject:
    results = {name: 0 for name in defaults} | {m.result: counts.get(m, 0) for m in metrics}
    return {"results": results, "queries": {m.query_name: m.query for m in metrics}}


def check_configuration_id(config_id: str) -> None:
    if not _CONFIG_ID.fullmatch(config_id):
        raise BadRequest(
            f"configuration id {config_id[:128]!r} is invalid: 1 to 128 lower-case letters, digits and "
            "- : + % _ # * ? ! ( ) , = @ ; $ '"
        )


def check_target_condition(text: str) -> Condition | None:
    """The parsed condition, or None for an empty one (which targets nothing)."""
    if not text.strip():
        return None
    try:
        return parse_condition(text)
    except InvalidQuery as exc:
        raise InvalidConfigurationTargetCondition(f"targetCondition: {exc.message}") from None


def check_metric_query(name: str, text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidConfigurationCustomMetricsQuery(f"metric {name!r}: the query must be a string")
    try:
        parse_query(text)
    except InvalidQuery as exc:
        raise InvalidConfigurationCustomMetricsQuery(f"metric {name!r}: {exc.message}") from None
    return text


def _content(value: Any, existing: Configuration | None) -> JsonObject:
    if existing is not None:
        if value is not None and _normalized(value, "content") not in ({}, existing.content):
            raise CannotModifyImmutableConfigurationContent(
                f"the content of configuration {existing.config_id!r} cannot change after it is created; "
                "only targetCondition, priority, labels and metrics can; create a new configuration instead"
            )
        return existing.content
    return check_content(value, "content")


def check_content(value: Any, what: str) -> JsonObject:
    """Content with exactly one non-empty kind, each part valid; empty kinds are dropped."""
    content = _normalized(value, what)
    if len(content) != 1:
        raise InvalidConfigurationContent(
            f"'{what}' must have exactly one of modulesContent (an IoT Edge deployment), moduleContent or "
            f"deviceContent, not {len(content) or 'none'}"
        )
    kind, sections = next(iter(content.items()))
    if kind == MODULES_CONTENT:
        _check_modules_content(what, sections)
    else:
        _check_properties(f"{what}.{kind}", sections)
    return content


def _normalized(value: Any, what: str) -> JsonObject:
    """The content's non-empty kinds; empty ones, which clients send back as they read them, drop out."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfigurationContent(f"'{what}' must be a JSON object")
    unknown = sorted(set(value) - set(CONTENT_KINDS))
    if unknown:
        allowed = ", ".join(CONTENT_KINDS)
        raise InvalidConfigurationContent(f"'{what}' has unknown keys {unknown}; it may have {allowed}")
    for kind, sections in value.items():
        if sections is not None and not isinstance(sections, dict):
            raise InvalidConfigurationContent(f"'{what}.{kind}' must be a JSON object")
    return {kind: copy.deepcopy(sections) for kind, sections in value.items() if sections}


def _check_modules_content(what: str, modules: JsonObject) -> None:
    """``{moduleId: {"properties.desired": {...}}}``, or deeper paths for layered deployments."""
    for module_id, sections in modules.items():
        try:
            check_module_id(module_id)
        except BadRequest as exc:
            raise InvalidConfigurationContent(f"{what}.modulesContent: {exc.message}") from None
        if not isinstance(sections, dict) or not sections:
            raise InvalidConfigurationContent(
                f'{what}.modulesContent.{module_id} must be an object like {{"{DESIRED}": {{...}}}}'
            )
        _check_properties(f"{what}.modulesContent.{module_id}", sections)


def _check_properties(where: str, sections: JsonObject) -> None:
    for path, value in sections.items():
        if path != DESIRED and not path.startswith(f"{DESIRED}."):
            raise InvalidConfigurationContent(f"{where}: {path!r} is neither {DESIRED!r} nor a path under it")
        if path == DESIRED and not isinstance(value, dict):
            raise InvalidConfigurationContent(f"{where}.{DESIRED} must be a JSON object")
        try:
            check_collection("desired", value if path == DESIRED else {"value": value}, allow_null=False)
        except InvalidTwin as exc:
            raise InvalidConfigurationContent(f"{where}.{path}: {exc.message}") from None


def _target_condition(value: Any, kind: str) -> str:
    text = _text(value, "targetCondition")
    condition = check_target_condition(text)
    wanted = Collection.MODULES if kind == "moduleContent" else Collection.DEVICES
    if condition is not None and condition.collection not in (None, wanted):
        raise InvalidConfigurationTargetCondition(
            f"targetCondition: a configuration with {kind} targets {wanted}, not {condition.collection}"
        )
    return text


def _priority(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PRIORITY:
        raise BadRequest(f"'priority' must be a whole number from 0 to {MAX_PRIORITY}, not {str(value)[:40]}")
    return value


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRequest('\'labels\' must be a JSON object of strings, like {"environment": "test"}')
    if len(value) > MAX_LABELS:
        raise BadRequest(f"a configuration has at most {MAX_LABELS} labels, not {len(value)}")
    return dict(value)


def _metric_queries(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    queries = value.get("queries") if isinstance(value, dict) else None
    if queries is None:
        return {}
    if not isinstance(queries, dict):
        raise InvalidConfigurationCustomMetricsQuery("'metrics.queries' must be a JSON object of name: query")
    return {str(name): check_metric_query(str(name), text) for name, text in queries.items()}


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"'{what}' must be a string")
    return value
