"""Configuration rules: what may be created, what may change, and the metrics as queries."""

from __future__ import annotations

from typing import Any

import pytest

from edgeprov.errors import (
    BadRequest,
    CannotModifyImmutableConfigurationContent,
    InvalidConfigurationContent,
    InvalidConfigurationCustomMetricsQuery,
    InvalidConfigurationTargetCondition,
)
from edgeprov.hub.configuration import Configuration, check_configuration_id
from edgeprov.hub.configurations import check_queries
from edgeprov.hub.query import parse_query

EDGE = {"modulesContent": {"$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}}}}


def make(body: dict[str, Any], existing: Configuration | None = None, config_id: str = "deploy-1") -> Configuration:
    return Configuration.from_json(config_id, body, existing, now=1_700_000_000.0)


@pytest.mark.spec("hub-protocol.md §3.2")
def test_edge_deployment_system_metrics_are_queries_of_the_query_language() -> None:
    configuration = make({"content": EDGE, "targetCondition": "tags.env = 'test' OR tags.env = 'dev'"})
    metrics = {m.query_name: m for m in configuration.system_metrics()}
    assert metrics["Targeted"].query == (
        "select deviceId from devices where capabilities.iotEdge = true and (tags.env = 'test' OR tags.env = 'dev')"
    )
    assert metrics["Applied"].query == (
        "select deviceId from devices.modules where moduleId = '$edgeAgent' "
        "and configurations.[[deploy-1]].status = 'Applied'"
    )
    assert metrics["Reporting Failure"].query.endswith(
        "properties.desired.$version = properties.reported.lastDesiredVersion "
        "and properties.reported.lastDesiredStatus.code != 200"
    )
    assert [m.result for m in metrics.values()] == [
        "targetedCount",
        "appliedCount",
        "reportedSuccessfulCount",
        "reportedFailedCount",
    ]
    for metric in metrics.values():
        parse_query(metric.query)


def test_module_configurations_target_module_twins() -> None:
    content = {"moduleContent": {"properties.desired.x": 1}}
    configuration = make({"content": content, "targetCondition": "FROM devices.modules WHERE moduleId = 'm'"})
    targeted = configuration.system_metrics()[0]
    assert targeted.query == "select deviceId, moduleId from devices.modules where (moduleId = 'm')"


def test_an_update_keeps_content_and_creation_and_moves_the_etag() -> None:
    first = make({"content": EDGE, "priority": 1, "labels": {"a": "b"}})
    echoed = {**EDGE, "deviceContent": {}, "moduleContent": {}}  # as a client reads it back
    second = Configuration.from_json("deploy-1", {"content": echoed, "priority": 2}, first, now=1_700_000_100.0)
    assert (second.content, second.priority, second.labels) == (first.content, 2, {})
    assert (second.created, second.updated) == (first.created, 1_700_000_100.0)
    assert second.etag != first.etag
    assert make({"priority": 3}, second).content == first.content  # no content at all keeps it too
    with pytest.raises(CannotModifyImmutableConfigurationContent):
        make({"content": {"modulesContent": {"$edgeHub": {"properties.desired": {}}}}}, second)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, InvalidConfigurationContent),
        ({"content": {"deviceContent": {}}}, InvalidConfigurationContent),
        ({"content": {"deviceContent": {"properties.reported.x": 1}}}, InvalidConfigurationContent),
        ({"content": {"modulesContent": {"$edgeAgent": "x"}}}, InvalidConfigurationContent),
        ({"content": {"modulesContent": {"$edgeAgent": {"properties.desired": []}}}}, InvalidConfigurationContent),
        ({"content": "modulesContent"}, InvalidConfigurationContent),
        ({"content": EDGE, "targetCondition": "tags.x = 'open"}, InvalidConfigurationTargetCondition),
        ({"content": EDGE, "targetCondition": 5}, BadRequest),
        ({"content": EDGE, "metrics": {"queries": {"m": 5}}}, InvalidConfigurationCustomMetricsQuery),
        ({"content": EDGE, "metrics": {"queries": ["SELECT"]}}, InvalidConfigurationCustomMetricsQuery),
        ({"content": EDGE, "priority": True}, BadRequest),
        ({"content": EDGE, "priority": 2**31}, BadRequest),
        ({"content": EDGE, "labels": {str(n): "x" for n in range(101)}}, BadRequest),
        ({"content": EDGE, "schemaVersion": 1}, BadRequest),
    ],
)
def test_invalid_configurations(body: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        make(body)


@pytest.mark.parametrize("config_id", ["deploy", "a-b:c+d%e_f#g*h?i!j(k)l,m=n@o;p$q'r", "x" * 128])
def test_configuration_ids_that_are_valid(config_id: str) -> None:
    check_configuration_id(config_id)


@pytest.mark.parametrize("config_id", ["", "Deploy", "has space", "x" * 129, "a/b", "a[b"])
def test_configuration_ids_that_are_not(config_id: str) -> None:
    with pytest.raises(BadRequest, match="lower-case letters"):
        check_configuration_id(config_id)


def test_check_queries() -> None:
    assert check_queries({"targetCondition": "*", "customMetricQueries": {}}) == {
        "targetConditionError": "",
        "customMetricQueryErrors": {},
    }
    result = check_queries({"targetCondition": "a ==", "customMetricQueries": {"m": "SELECT * FROM devices"}})
    assert result["targetConditionError"].startswith("targetCondition: invalid query: expected a value")
    assert result["customMetricQueryErrors"] == {}
    with pytest.raises(BadRequest):
        check_queries(["SELECT"])
