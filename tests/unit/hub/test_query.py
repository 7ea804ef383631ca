"""The query language: parsing, evaluation, projection, aggregation and its error messages."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprov.errors import InvalidQuery
from edgeprov.hub.query import (
    UNDEFINED,
    Aggregation,
    Collection,
    Condition,
    evaluate,
    holds,
    parse_condition,
    parse_query,
    project,
)
from edgeprov.types import JsonObject

TWIN: JsonObject = {
    "deviceId": "edge-1",
    "etag": "AAAAAAAAAAE=",
    "status": "enabled",
    "connectionState": "Disconnected",
    "lastActivityTime": "0001-01-01T00:00:00Z",
    "capabilities": {"iotEdge": True},
    "tags": {"environment": "test", "floor": 3, "location": {"region": "US", "plant": "Redmond43"}},
    "properties": {
        "desired": {"telemetryConfig": {"sendFrequency": "5m"}, "$version": 4},
        "reported": {"lastDesiredVersion": 4, "lastDesiredStatus": {"code": 200}, "$version": 7},
    },
    "configurations": {"deploy-1": {"status": "Applied"}},
}


def where(condition: str, twin: JsonObject = TWIN) -> bool:
    return holds(parse_query(f"SELECT * FROM devices WHERE {condition}").where, twin)


def value(expression: str, twin: JsonObject = TWIN) -> Any:
    query = parse_query(f"SELECT {expression} AS v FROM devices")
    assert query.items is not None
    item = query.items[0].value
    return evaluate(item, twin)  # type: ignore[arg-type]


def error(text: str) -> str:
    with pytest.raises(InvalidQuery) as caught:
        parse_query(text)
    return caught.value.message


@pytest.mark.spec("hub-protocol.md §4")
@pytest.mark.parametrize(
    "condition",
    [
        "tags.environment = 'test'",
        'tags.environment = "test"',
        "tags.location.region = 'US' AND tags.floor >= 3",
        "capabilities.iotEdge = true",
        "devices.capabilities.iotEdge = true",
        "properties.desired.$version = properties.reported.lastDesiredVersion",
        "properties.reported.lastDesiredStatus.code = 200",
        "configurations.[[deploy-1]].status = 'Applied'",
        "deviceId IN ['edge-1', 'edge-2']",
        "deviceId NIN ['edge-2']",
        "deviceId NOT IN ['edge-2']",
        "tags.floor * 2 + 1 = 7",
        "(tags.floor - 1) / 2 = 1",
        "tags.floor % 2 = 1",
        "tags.floor <> 4 AND tags.floor != 5",
        "NOT tags.environment = 'prod'",
        "IS_DEFINED(tags.location) AND NOT IS_DEFINED(tags.nothing)",
        "STARTS_WITH(deviceId, 'edge') AND ENDS_WITH(deviceId, '-1') AND CONTAINS(deviceId, 'ge-')",
        "LOWER('ABC') = 'abc' AND UPPER(tags.environment) = 'TEST'",
        "LENGTH(deviceId) = 6 AND INDEX_OF(deviceId, '-') = 4",
        "CONCAT(deviceId, '/', tags.environment) = 'edge-1/test' AND SUBSTRING(deviceId, 0, 4) = 'edge'",
        "tags.floor = 0x3 AND tags.floor < 3.5e0",
        "tags.environment = 'te\\u0073t'",
        "status = 'enabled' OR tags.nothing = 1",
    ],
)
def test_conditions_that_hold(condition: str) -> None:
    assert where(condition) is True


@pytest.mark.spec("hub-protocol.md §4")
@pytest.mark.parametrize(
    "condition",
    [
        "tags.environment = 'prod'",
        # Any non-true result is false: comparisons with undefined, or across types, are undefined.
        "tags.nothing = 1",
        "tags.nothing != 1",
        "NOT tags.nothing = 1",
        "tags.floor = '3'",
        "tags.floor != '3'",
        "tags.location = 'US'",
        "true < false",
        "deviceId IN ['other']",
        "tags.nothing IN ['x']",
        "tags.floor / 0 = 1",
        "STARTS_WITH(tags.floor, '3')",
        "tags.environment AND true",
    ],
)
def test_conditions_that_do_not_hold(condition: str) -> None:
    assert where(condition) is False


@pytest.mark.spec("hub-protocol.md §4")
def test_keywords_and_system_names_are_case_insensitive_but_tags_are_not() -> None:
    query = parse_query("select DeviceId, LASTACTIVITYTIME from DEVICES where Tags.environment = 'test'")
    assert project(query, TWIN) == {"deviceId": "edge-1", "lastActivityTime": "0001-01-01T00:00:00Z"}
    assert where("Properties.Desired.$version = 4")
    assert not where("tags.Environment = 'test'")


def test_three_valued_logic() -> None:
    assert value("tags.nothing = 1 OR true") is True
    assert value("tags.nothing = 1 AND false") is False
    assert value("tags.nothing = 1 AND true") is UNDEFINED
    assert value("NOT (tags.nothing = 1)") is UNDEFINED
    assert value("-tags.floor") == -3
    assert value("7 % -2") == 1
    assert value("-7 % 2") == -1
    assert value("7 / 2") == 3.5
    assert value("6 / 2") == 3


def test_numbers_stay_within_what_json_carries() -> None:
    assert isinstance(value("4000000000 * 4000000000 * 4000000000"), float)
    assert isinstance(value("123456789012345678901234567890"), float)
    assert value("9223372036854775807") == 2**63 - 1
    assert isinstance(value("-(-9223372036854775807 - 1)"), float)


@pytest.mark.spec("hub-protocol.md §4")
def test_projections_name_columns_by_last_segment_or_alias_and_drop_undefined() -> None:
    query = parse_query(
        "SELECT deviceId, tags.location.region, tags.floor AS level, tags.nothing, LOWER(status) FROM devices"
    )
    assert project(query, TWIN) == {"deviceId": "edge-1", "region": "US", "level": 3, "$5": "enabled"}
    aliased = parse_query("SELECT TOP 2 deviceId id FROM devices")
    assert aliased.top == 2
    assert project(aliased, TWIN) == {"id": "edge-1"}


@pytest.mark.spec("hub-protocol.md §4")
def test_count_and_group_by() -> None:
    twins = [
        {"deviceId": "a", "tags": {"env": "test", "n": 1}},
        {"deviceId": "b", "tags": {"env": "test", "n": 3}},
        {"deviceId": "c", "tags": {"env": "prod", "n": 5}},
        {"deviceId": "d", "tags": {}},
    ]
    grouped = Aggregation(
        parse_query(
            "SELECT tags.env AS env, COUNT() AS devices, SUM(tags.n) AS total, AVG(tags.n) AS mean, "
            "MIN(deviceId) AS first, MAX(tags.n) AS highest FROM devices GROUP BY tags.env"
        )
    )
    for twin in twins:
        grouped.add(twin)
    assert grouped.rows() == [
        {"env": "test", "devices": 2, "total": 4, "mean": 2.0, "first": "a", "highest": 3},
        {"env": "prod", "devices": 1, "total": 5, "mean": 5.0, "first": "c", "highest": 5},
        {"devices": 1, "total": 0, "first": "d"},
    ]
    counted = Aggregation(parse_query("SELECT COUNT() AS total FROM devices WHERE tags.env = 'test'"))
    assert counted.rows() == [{"total": 0}]
    for twin in twins:
        counted.add(twin)
    assert counted.rows() == [{"total": 2}]
    unnamed = Aggregation(parse_query("SELECT COUNT() FROM devices"))
    assert unnamed.rows() == [{"$1": 0}]


def test_collections_and_target_conditions() -> None:
    assert parse_query("SELECT * FROM devices.modules WHERE moduleId = '$edgeAgent'").collection is Collection.MODULES
    assert parse_condition(" * ") == Condition(None, None, "*")
    condition = parse_condition("FROM devices.modules WHERE tags.building = 43 ")
    assert condition.collection is Collection.MODULES
    assert condition.text == "tags.building = 43"
    assert holds(condition.expression, {"tags": {"building": 43}})
    assert parse_condition("tags.environment='test'").collection is None


@pytest.mark.spec("hub-protocol.md §4")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT * form devices", "expected FROM but found word 'form' at position 10 (near 'form devices')"),
        ("SELECT FROM devices", "expected a value, a property path or '(' but found word 'FROM' at position 8"),
        ("SELECT * FROM things", "expected devices or devices.modules but found word 'things' at position 15"),
        ("SELECT * FROM devices.jobs", "devices.jobs is not supported"),
        ("SELECT * FROM devices WHERE", "expected a value, a property path or '(' but found the end of the query"),
        ("SELECT * FROM devices WHERE tags.x = 'open", "the string starting with ' is not closed at position 38"),
        ("SELECT * FROM devices WHERE (tags.x = 1", "expected ')' but found the end of the query at position 40"),
        ("SELECT * FROM devices WHERE tags.x = #", "unexpected character '#' at position 38"),
        ("SELECT * FROM devices WHERE tags. = 1", "expected a property name after '.' but found '='"),
        ("SELECT * FROM devices WHERE tags.x IN 1", "expected '[' to start the list of values but found number '1'"),
        ("SELECT * FROM devices WHERE tags.x IN [1 2]", "expected ',' or ']' but found number '2' at position 42"),
        ("SELECT * FROM devices WHERE FOO(deviceId)", "unknown function 'FOO' (known: CONCAT"),
        ("SELECT * FROM devices WHERE LOWER()", "LOWER takes 1 argument, not 0 at position 29"),
        ("SELECT * FROM devices WHERE COUNT() > 1", "COUNT() may only stand alone as a SELECT item"),
        ("SELECT * FROM devices WHERE tags.x = 1 tags.y = 2", "expected WHERE, GROUP BY or the end of the query"),
        ("SELECT * FROM devices ORDER BY deviceId", "ORDER BY is not supported"),
        ("SELECT TOP x * FROM devices", "expected a whole number after TOP but found word 'x' at position 12"),
        ("SELECT deviceId, tags.deviceId FROM devices", "two SELECT items are named 'deviceId'"),
        ("SELECT deviceId, COUNT() FROM devices", "'deviceId' is neither an aggregate"),
        ("SELECT * FROM devices GROUP BY tags.x", "SELECT * cannot be combined with GROUP BY"),
        ("SELECT * FROM devices WHERE tags.x = 'a\\q'", "unknown escape '\\q' in a string at position 40"),
        ("SELECT * FROM devices WHERE tags.x = 12ab", "'12a'... is neither a number nor a name"),
        ("SELECT * FROM devices WHERE " + "(" * 25 + "1" + ")" * 25, "nests deeper than 20 levels"),
        ("SELECT * FROM devices WHERE " + "NOT " * 9 + "true", "more than 8 prefix operators in a row"),
        ("SELECT * FROM devices WHERE " + "x" * 9000, "at most 8192 are allowed"),
    ],
)
def test_errors_say_where_and_what_was_expected(text: str, message: str) -> None:
    assert message in error(text)


def test_long_flat_chains_evaluate_without_deep_recursion() -> None:
    condition = " OR ".join(f"deviceId = 'd{n}'" for n in range(300)) + " OR deviceId = 'edge-1'"
    assert where(condition)
    assert value(" + ".join(["1"] * 1000)) == 1000


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("SELECT*FROMdevicsWHR .,()[]'\"=<>!-+/%0x1$ANDOR_\\u")), max_size=80))
def test_any_text_parses_or_fails_with_a_query_error(text: str) -> None:
    for candidate in (text, f"SELECT * FROM devices WHERE {text}"):
        try:
            query = parse_query(candidate)
        except InvalidQuery:
            continue
        if not query.aggregates:
            holds(query.where, TWIN)
