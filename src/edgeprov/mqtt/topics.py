"""The hub's and the provisioning service's MQTT topics (spec/hub-protocol.md §1.2, dps-protocol.md §3.2).

Inbound topics are parsed into small values; ids in topics are never percent-encoded, property
values always are. ``$rid`` is echoed exactly as the device sent it. Both ends are here: what the
gateway parses and answers, and what the device runtime sends and parses back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto
from urllib.parse import quote, unquote

from edgeprov.hub.messages import Properties

TWIN_PREFIX = "$iothub/twin/"
METHODS_PREFIX = "$iothub/methods/"
DPS_PREFIX = "$dps/registrations/"
DESIRED_PREFIX = "$iothub/twin/PATCH/properties/desired/"
_STATUS = re.compile(r"-?[0-9]{1,9}")  # ASCII digits only: str.isdigit also takes '²'


class Subscription(Enum):
    """What a topic filter subscribes to; a connection may hold only its own kinds."""

    TWIN_RESPONSES = auto()
    DESIRED = auto()
    METHODS = auto()
    C2D = auto()
    INPUTS = auto()
    DPS_RESPONSES = auto()


@dataclass(frozen=True, slots=True)
class Telemetry:
    device_id: str
    module_id: str
    properties: Properties


@dataclass(frozen=True, slots=True)
class TwinGet:
    rid: str


@dataclass(frozen=True, slots=True)
class ReportedPatch:
    rid: str


@dataclass(frozen=True, slots=True)
class MethodResponse:
    status: int
    rid: str


@dataclass(frozen=True, slots=True)
class TwinResponse:
    """The hub's answer to a twin GET or reported PATCH (``$version`` only after a PATCH)."""

    status: int
    rid: str
    version: int | None


@dataclass(frozen=True, slots=True)
class DesiredPush:
    version: int


@dataclass(frozen=True, slots=True)
class DpsRegister:
    rid: str


@dataclass(frozen=True, slots=True)
class DpsPoll:
    rid: str
    operation_id: str


HubTopic = Telemetry | TwinGet | ReportedPatch | MethodResponse
TwinTopic = TwinResponse | DesiredPush
DpsTopic = DpsRegister | DpsPoll


class TopicError(ValueError):
    """A topic the gateway does not serve, or one that is not the connection's own."""


def decode_properties(bag: str) -> Properties:
    """``k=v&k2&k3=`` with percent-encoded keys and values; a key alone has no value."""
    if not bag:
        return ()
    pairs: list[tuple[str, str | None]] = []
    for part in bag.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        pairs.append((unquote(key), unquote(value) if sep else None))
    return tuple(pairs)


def encode_properties(properties: Properties) -> str:
    return "&".join(
        quote(key, safe="") if value is None else f"{quote(key, safe='')}={quote(value, safe='')}"
        for key, value in properties
    )


def _query(topic: str, prefix_end: int) -> dict[str, str]:
    """The raw (still encoded) values of the ``?k=v&…`` part that starts at ``prefix_end``."""
    if not topic.startswith("?", prefix_end):
        raise TopicError(f"{topic[:200]!r} lacks its '?$rid=' part")
    fields: dict[str, str] = {}
    for part in topic[prefix_end + 1 :].split("&"):
        key, _, value = part.partition("=")
        fields.setdefault(key, value)
    return fields


def _rid(topic: str, prefix_end: int) -> tuple[str, dict[str, str]]:
    fields = _query(topic, prefix_end)
    rid = fields.get("$rid")
    if not rid:
        raise TopicError(f"{topic[:200]!r} has no $rid")
    return rid, fields


def parse_hub_topic(topic: str) -> HubTopic:
    if topic.startswith(TWIN_PREFIX):
        rest = topic[len(TWIN_PREFIX) :]
        if rest.startswith("GET/"):
            return TwinGet(_rid(topic, len(TWIN_PREFIX) + 4)[0])
        reported = "PATCH/properties/reported/"
        if rest.startswith(reported):
            return ReportedPatch(_rid(topic, len(TWIN_PREFIX) + len(reported))[0])
        raise TopicError(f"twin topic {topic[:200]!r} is not GET or a reported PATCH")
    if topic.startswith(METHODS_PREFIX + "res/"):
        start = len(METHODS_PREFIX) + 4
        slash = topic.find("/", start)
        status = topic[start:slash] if slash > 0 else ""
        if not _STATUS.fullmatch(status):
            raise TopicError(f"method response {topic[:200]!r} has no numeric status")
        return MethodResponse(int(status), _rid(topic, slash + 1)[0])
    if topic.startswith("devices/"):
        return _parse_telemetry(topic)
    raise TopicError(f"{topic[:200]!r} is not a topic devices publish to")


def _parse_telemetry(topic: str) -> Telemetry:
    parts = topic.split("/", 6)
    # devices/{d}/messages/events/{bag} or devices/{d}/modules/{m}/messages/events/{bag}
    if len(parts) >= 5 and parts[2] == "messages" and parts[3] == "events":
        return Telemetry(parts[1], "", decode_properties("/".join(parts[4:])))
    if len(parts) >= 7 and parts[2] == "modules" and parts[4] == "messages" and parts[5] == "events":
        return Telemetry(parts[1], parts[3], decode_properties(parts[6]))
    raise TopicError(f"{topic[:200]!r} is not a telemetry topic")


def parse_dps_topic(topic: str) -> DpsTopic:
    register = DPS_PREFIX + "PUT/iotdps-register/"
    if topic.startswith(register):
        return DpsRegister(_rid(topic, len(register))[0])
    poll = DPS_PREFIX + "GET/iotdps-get-operationstatus/"
    if topic.startswith(poll):
        rid, fields = _rid(topic, len(poll))
        operation_id = fields.get("operationId")
        if not operation_id:
            raise TopicError("a status poll needs operationId")
        return DpsPoll(rid, unquote(operation_id))
    raise TopicError(f"{topic[:200]!r} is not a provisioning topic")


def hub_subscription(topic_filter: str, device_id: str, module_id: str) -> Subscription | None:
    """The kind a hub connection subscribes to with ``topic_filter``, or None if it may not."""
    if topic_filter == "$iothub/twin/res/#":
        return Subscription.TWIN_RESPONSES
    if topic_filter == DESIRED_PREFIX + "#":
        return Subscription.DESIRED
    if topic_filter == METHODS_PREFIX + "POST/#":
        return Subscription.METHODS
    if not module_id and topic_filter == f"devices/{device_id}/messages/devicebound/#":
        return Subscription.C2D
    if module_id and topic_filter == f"devices/{device_id}/modules/{module_id}/inputs/#":
        return Subscription.INPUTS
    return None


def dps_subscription(topic_filter: str) -> Subscription | None:
    return Subscription.DPS_RESPONSES if topic_filter == DPS_PREFIX + "res/#" else None


def twin_response(status: int, rid: str, version: int | None = None) -> str:
    topic = f"{TWIN_PREFIX}res/{status}/?$rid={rid}"
    return topic if version is None else f"{topic}&$version={version}"


def desired_topic(version: int) -> str:
    return f"{DESIRED_PREFIX}?$version={version}"


# -- the device's side of the twin topics ----------------------------------------------------------------
def twin_get(rid: str) -> str:
    return f"{TWIN_PREFIX}GET/?$rid={rid}"


def reported_patch(rid: str) -> str:
    return f"{TWIN_PREFIX}PATCH/properties/reported/?$rid={rid}"


def parse_twin_topic(topic: str) -> TwinTopic:
    """What the hub publishes to a twin client: a response, or a desired-properties push."""
    if topic.startswith(DESIRED_PREFIX):
        return DesiredPush(_version(_query(topic, len(DESIRED_PREFIX)).get("$version"), topic))
    responses = TWIN_PREFIX + "res/"
    if topic.startswith(responses):
        slash = topic.find("/", len(responses))
        status = topic[len(responses) : slash] if slash > 0 else ""
        if not _STATUS.fullmatch(status):
            raise TopicError(f"twin response {topic[:200]!r} has no numeric status")
        rid, fields = _rid(topic, slash + 1)
        version = fields.get("$version")
        return TwinResponse(int(status), rid, None if version is None else _version(version, topic))
    raise TopicError(f"{topic[:200]!r} is not a twin response or desired-properties push")


def _version(value: str | None, topic: str) -> int:
    if value is None or not _STATUS.fullmatch(value):
        raise TopicError(f"{topic[:200]!r} has no numeric $version")
    return int(value)


def method_request(name: str, rid: str) -> str:
    return f"{METHODS_PREFIX}POST/{name}/?$rid={rid}"


def c2d_topic(device_id: str, properties: Properties) -> str:
    return f"devices/{device_id}/messages/devicebound/{encode_properties(properties)}"


def dps_response(status: int, rid: str, retry_after: int | None = None) -> str:
    # $rid first: the Python client splits on '$' and reads the properties after it.
    topic = f"{DPS_PREFIX}res/{status}/?$rid={rid}"
    return topic if retry_after is None else f"{topic}&retry-after={retry_after}"
