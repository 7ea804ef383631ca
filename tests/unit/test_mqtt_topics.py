"""Topic parsing and building for the hub and the provisioning service."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprov.mqtt import topics
from edgeprov.mqtt.login import LoginError, parse_login
from edgeprov.mqtt.topics import (
    DesiredPush,
    MethodResponse,
    ReportedPatch,
    Subscription,
    Telemetry,
    TopicError,
    TwinGet,
    TwinResponse,
)

PREFIXES = [
    "$iothub/twin/GET/",
    "$iothub/twin/PATCH/properties/reported/",
    "$iothub/methods/res/",
    "devices/",
    "devices/d/modules/",
    "$dps/registrations/PUT/iotdps-register/",
    "$dps/registrations/GET/iotdps-get-operationstatus/",
]


@pytest.mark.spec("hub-protocol.md §0.6")
def test_telemetry_property_bag_is_percent_decoded() -> None:
    topic = "devices/dev1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes"
    assert topics.parse_hub_topic(topic) == Telemetry(
        "dev1", "", (("$.mid", "m1"), ("$.ct", "application/json"), ("$.ce", "utf-8"), ("alert", "yes"))
    )
    assert topics.parse_hub_topic("devices/dev1/messages/events/") == Telemetry("dev1", "", ())
    module = topics.parse_hub_topic("devices/d/modules/$edgeAgent/messages/events/k=v")
    assert module == Telemetry("d", "$edgeAgent", (("k", "v"),))


@pytest.mark.spec("hub-protocol.md §1.2")
def test_twin_and_method_topics() -> None:
    assert topics.parse_hub_topic("$iothub/twin/GET/?$rid=abc") == TwinGet("abc")
    assert topics.parse_hub_topic("$iothub/twin/PATCH/properties/reported/?$rid=7") == ReportedPatch("7")
    assert topics.parse_hub_topic("$iothub/methods/res/200/?$rid=r%201") == MethodResponse(200, "r%201")
    assert topics.twin_response(204, "r", 5) == "$iothub/twin/res/204/?$rid=r&$version=5"
    assert topics.desired_topic(3) == "$iothub/twin/PATCH/properties/desired/?$version=3"
    assert topics.method_request("reboot", "1") == "$iothub/methods/POST/reboot/?$rid=1"


@pytest.mark.parametrize(
    "topic",
    [
        "$iothub/twin/GET/",
        "$iothub/twin/GET/?x=1",
        "$iothub/twin/PATCH/properties/desired/?$rid=1",
        "$iothub/methods/res/abc/?$rid=1",
        "$iothub/methods/res/²/?$rid=1",
        "devices/dev1/messages/devicebound/x",
        "devices/d/modules/m/inputs/in",
        "anything",
    ],
)
def test_topics_devices_may_not_publish_to(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.parse_hub_topic(topic)


@pytest.mark.spec("dps-protocol.md §3.2")
def test_provisioning_topics() -> None:
    assert topics.parse_dps_topic("$dps/registrations/PUT/iotdps-register/?$rid=1") == topics.DpsRegister("1")
    poll = topics.parse_dps_topic("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=5.a%2Eb")
    assert poll == topics.DpsPoll("2", "5.a.b")
    assert topics.dps_response(202, "r", 3) == "$dps/registrations/res/202/?$rid=r&retry-after=3"
    with pytest.raises(TopicError):
        topics.parse_dps_topic("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2")


def test_a_connection_subscribes_only_to_its_own_topics() -> None:
    assert topics.hub_subscription("devices/d1/messages/devicebound/#", "d1", "") is Subscription.C2D
    assert topics.hub_subscription("devices/d2/messages/devicebound/#", "d1", "") is None
    assert topics.hub_subscription("devices/d1/messages/devicebound/#", "d1", "m") is None
    assert topics.hub_subscription("devices/d1/modules/m/inputs/#", "d1", "m") is Subscription.INPUTS
    assert topics.hub_subscription("#", "d1", "") is None
    assert topics.hub_subscription("$iothub/methods/POST/#", "d1", "") is Subscription.METHODS
    assert topics.dps_subscription("$dps/registrations/res/#") is Subscription.DPS_RESPONSES


def test_c2d_property_bag_encodes_null_and_empty_values() -> None:
    bag = (("$.mid", "m 1"), ("flag", None), ("empty", ""), ("k", "a/b&c"))
    topic = topics.c2d_topic("d1", bag)
    assert topic == "devices/d1/messages/devicebound/%24.mid=m%201&flag&empty=&k=a%2Fb%26c"
    assert topics.decode_properties(topic.split("/", 4)[4]) == bag


@settings(max_examples=1000, deadline=None)
@given(
    topic=st.one_of(
        st.text(max_size=80),
        st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(PREFIXES), st.text(max_size=40)),
    )
)
def test_any_topic_parses_or_is_a_topic_error(topic: str) -> None:
    for parse in (topics.parse_hub_topic, topics.parse_dps_topic):
        with contextlib.suppress(TopicError):
            parse(topic)
    topics.decode_properties(topic)
    with contextlib.suppress(LoginError):
        parse_login(topic)


@pytest.mark.spec("hub-protocol.md §1.2")
def test_twin_topics_as_the_device_sees_them() -> None:
    assert topics.twin_get("1") == "$iothub/twin/GET/?$rid=1"
    assert topics.reported_patch("2") == "$iothub/twin/PATCH/properties/reported/?$rid=2"
    assert topics.parse_twin_topic(topics.twin_response(200, "1")) == TwinResponse(200, "1", None)
    assert topics.parse_twin_topic(topics.twin_response(204, "2", 9)) == TwinResponse(204, "2", 9)
    assert topics.parse_twin_topic(topics.desired_topic(3)) == DesiredPush(3)


@pytest.mark.parametrize(
    "topic",
    [
        "$iothub/twin/res/ok/?$rid=1",
        "$iothub/twin/res/200/",
        "$iothub/twin/res/204/?$rid=1&$version=x",
        "$iothub/twin/PATCH/properties/desired/?$version=",
        "$iothub/twin/PATCH/properties/desired/",
        "$iothub/methods/POST/m/?$rid=1",
    ],
)
def test_twin_topics_the_device_refuses(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.parse_twin_topic(topic)


@given(st.text(max_size=120))
@settings(max_examples=300)
def test_any_twin_topic_parses_or_is_refused(topic: str) -> None:
    with contextlib.suppress(TopicError):
        topics.parse_twin_topic(topic)
