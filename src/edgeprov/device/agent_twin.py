"""``$edgeAgent``'s twin as the agent keeps it, one MQTT connection after another (spec/hub-protocol.md §1.2).

Each connection starts by reading the twin whole: the hub does not keep desired pushes for a
client that was away. Pushes then apply one version at a time; a gap means one was missed, and
the twin is read again. The agent remembers what the hub holds of its reported properties, so a
report sends only what changed (``null`` for what is gone) and a reconnect with nothing new
sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NoReturn

from edgeprov.device.mqtt_client import MqttClient
from edgeprov.device.reported import desired_status, edge_agent_reported
from edgeprov.device.settings import AgentSettings
from edgeprov.device.state import AgentStatus
from edgeprov.errors import EdgeprovError, IdentityRejected, ServiceUnreachable
from edgeprov.hub.twin import diff, merge_patch, writable
from edgeprov.jsonutil import dumps, loads_object
from edgeprov.mqtt import topics
from edgeprov.mqtt.packets import Publish
from edgeprov.mqtt.topics import DesiredPush, TopicError, TwinResponse
from edgeprov.types import JsonObject

# The twin answers the hub gives a client whose identity it no longer accepts.
REFUSALS = (401, 403, 404)


class AgentTwin:
    def __init__(
        self, agent: AgentSettings, status: Callable[[], AgentStatus], log: logging.Logger, timeout: float
    ) -> None:
        self._agent = agent
        self._status = status
        self._log = log
        self._timeout = timeout  # for the hub's answer to one request
        self._desired: JsonObject = {}
        self._version = 0
        self._reported: JsonObject = {}  # as the hub holds it, once read
        self._stale = True
        self._rid = 0  # never reused, so an answer meant for an earlier connection cannot be taken for ours

    async def follow(self, client: MqttClient) -> NoReturn:
        """Read, report, follow desired pushes; ends when the connection does, or the hub refuses."""
        self._stale = True
        while True:
            if self._stale:
                await self._read(client)
                continue
            wanted = edge_agent_reported(self._status(), self._agent, self._version, self._desired)
            patch = diff(self._reported, wanted)
            if patch:
                answer, _ = await self._request(client, topics.reported_patch, dumps(patch))
                self._reported = wanted
                self._log.info("Reported the runtime's state in $edgeAgent's twin (version %s)", answer.version)
            else:
                self._received(await client.next_message())

    async def _read(self, client: MqttClient) -> None:
        self._stale = False
        known = self._version
        _, body = await self._request(client, topics.twin_get, b" ")  # the SDKs send one space
        try:
            twin = loads_object(body, what="the twin")
            desired, reported = twin.get("desired"), twin.get("reported")
            version = int(desired["$version"]) if isinstance(desired, dict) else None
        except (EdgeprovError, KeyError, TypeError, ValueError) as exc:
            raise ServiceUnreachable(f"the hub answered $edgeAgent's twin GET with {exc!r}") from None
        if version is None or not isinstance(desired, dict) or not isinstance(reported, dict):
            raise ServiceUnreachable("the hub's $edgeAgent twin lacks its desired or reported properties")
        if known < self._version and version < self._version:
            self._stale = True  # a push newer than this read arrived before it: read again
            return
        self._reported = writable(reported)
        self._desire(version, writable(desired))

    async def _request(
        self, client: MqttClient, topic: Callable[[str], str], payload: bytes
    ) -> tuple[TwinResponse, bytes]:
        """Publish a twin request and wait for its answer, applying desired pushes that come first."""
        self._rid += 1
        rid = str(self._rid)
        try:
            async with asyncio.timeout(self._timeout):
                await client.publish(topic(rid), payload)
                answer, body = await self._answer(client, rid)
        except TimeoutError:
            raise ServiceUnreachable(f"the hub did not answer a twin request within {self._timeout:g} s") from None
        if answer.status >= 300:
            text = body[:300].decode("utf-8", "replace")
            what = f"hub refused $edgeAgent's twin request (status {answer.status}): {text}"
            raise IdentityRejected(what) if answer.status in REFUSALS else ServiceUnreachable(what)
        return answer, body

    async def _answer(self, client: MqttClient, rid: str) -> tuple[TwinResponse, bytes]:
        while True:
            message = await client.next_message()
            answer = self._received(message)
            if answer is not None and answer.rid == rid:
                return answer, message.payload

    def _received(self, message: Publish) -> TwinResponse | None:
        """A response to hand back, or None once a push (or a stray message) has been dealt with."""
        try:
            topic = topics.parse_twin_topic(message.topic)
        except TopicError as exc:
            self._log.warning("Ignoring a message the agent did not subscribe to: %s", exc)
            return None
        if isinstance(topic, DesiredPush):
            self._pushed(topic.version, message.payload)
            return None
        return topic

    def _pushed(self, version: int, payload: bytes) -> None:
        if version <= self._version:
            return  # already part of a twin read after it was sent
        try:
            patch = loads_object(payload, what="a desired-properties push")
        except EdgeprovError:
            patch = None
        if version != self._version + 1 or patch is None:
            self._stale = True
            return
        self._desire(version, merge_patch(self._desired, writable(patch)))

    def _desire(self, version: int, desired: JsonObject) -> None:
        if version != self._version:
            status = desired_status(desired)
            self._log.info(
                "$edgeAgent's desired properties are at version %d: %d %s", version, status.code, status.description
            )
        self._version, self._desired = version, desired
