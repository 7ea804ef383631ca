"""A device's (or module's) session with its hub: telemetry, twins, direct methods, C2D (spec/hub-protocol.md §1.2).

A session may touch only its own identity: publishing to another device's topics closes the
connection, subscribing to them is refused in the SUBACK. QoS 1 telemetry and reported patches
are acknowledged only once committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeprov.errors import EdgeprovError
from edgeprov.hub.connections import ConnectedIdentity
from edgeprov.hub.messages import DeviceEvent
from edgeprov.jsonutil import dumps, loads, loads_object
from edgeprov.mqtt import codec, packets, topics
from edgeprov.mqtt.errors import hub_error_body
from edgeprov.mqtt.packets import Publish, Subscribe, Unsubscribe, Will
from edgeprov.mqtt.topics import MethodResponse, ReportedPatch, Subscription, Telemetry, TopicError, TwinGet

if TYPE_CHECKING:
    from edgeprov.mqtt.connection import Connection
    from edgeprov.mqtt.gateway import Gateway

MAX_SUBSCRIPTIONS = 16
C2D_BATCH = 50


class HubSession:
    def __init__(
        self,
        connection: Connection,
        identity: ConnectedIdentity,
        subscriptions: dict[str, int],
        persistent: bool,
        will: Will | None = None,
    ) -> None:
        self._connection = connection
        self._gateway: Gateway = connection.gateway
        self.identity = identity
        self._persistent = persistent
        self._present = persistent and bool(subscriptions)
        self._subscriptions = dict(subscriptions)
        self._kinds = {self._kind(f) for f in subscriptions} - {None}
        self._next_packet_id = 0
        self._inflight: dict[int, int] = {}  # packet id -> C2D sequence
        self._fetching = False
        self._fetch_again = False
        self._will = will
        self._methods: set[str] = set()  # request ids sent to this device, the only ones it may answer

    @property
    def present(self) -> bool:
        return self._present

    @property
    def last_activity(self) -> float:
        return self._connection.last_activity

    def started(self) -> None:
        self.deliver_c2d()

    def abort(self, reason: str) -> None:
        self._connection.abort(reason)

    def _kind(self, topic_filter: str) -> Subscription | None:
        return topics.hub_subscription(topic_filter, self.identity.device_id, self.identity.module_id)

    def subscribed(self, kind: Subscription) -> bool:
        return kind in self._kinds

    # -- from the device -----------------------------------------------------------------------------
    def on_publish(self, packet: Publish) -> None:
        try:
            topic = topics.parse_hub_topic(packet.topic)
        except TopicError as exc:
            self._connection.abort(str(exc))
            return
        if isinstance(topic, Telemetry):
            self._telemetry(topic, packet)
        elif isinstance(topic, TwinGet):
            self._ack(packet)
            self._gateway.spawn(self._twin_get(topic.rid))
        elif isinstance(topic, ReportedPatch):
            self._gateway.spawn(self._reported(topic.rid, packet))
        elif isinstance(topic, MethodResponse):
            self._ack(packet)
            if topic.rid in self._methods:
                self._methods.discard(topic.rid)
                self._gateway.method_answered(topic.rid, topic.status, _method_payload(packet.payload))

    def _ack(self, packet: Publish) -> None:
        if packet.qos and packet.packet_id is not None:
            self._connection.send(codec.encode_puback(packet.packet_id))

    def _own(self, topic: Telemetry) -> bool:
        return topic.device_id == self.identity.device_id and topic.module_id == self.identity.module_id

    def _telemetry(self, topic: Telemetry, packet: Publish) -> None:
        if not self._own(topic):
            self._connection.abort(f"{self.identity.client_id!r} may not send as {topic.device_id!r}")
            return
        # The hub keeps no retained messages; it marks them instead (spec/hub-protocol.md §1.1).
        properties = (*topic.properties, ("mqtt-retain", "true")) if packet.retain else topic.properties
        event = DeviceEvent(topic.device_id, topic.module_id, self._gateway.clock.now(), properties, packet.payload)
        self._gateway.record_event(self.identity.hub, event, lambda ok: self._durable(ok, packet))

    def _durable(self, ok: bool, packet: Publish) -> None:
        if ok:
            self._ack(packet)
        else:
            self._connection.abort("the event log refused the message")

    async def _twin_get(self, rid: str) -> None:
        identity = self.identity
        try:
            twin = await self._gateway.hubs.twin_properties(identity.hub, identity.device_id, identity.module_id)
        except EdgeprovError as exc:
            self._connection.publish(topics.twin_response(exc.status, rid), hub_error_body(exc))
            return
        self._connection.publish(topics.twin_response(200, rid), dumps(twin))

    async def _reported(self, rid: str, packet: Publish) -> None:
        identity = self.identity
        try:
            patch = loads_object(packet.payload, what="a reported properties patch")
            version = await self._gateway.hubs.patch_reported(
                identity.hub, identity.device_id, identity.module_id, patch
            )
        except EdgeprovError as exc:
            self._ack(packet)
            self._connection.publish(topics.twin_response(exc.status, rid), hub_error_body(exc))
            return
        self._ack(packet)
        self._connection.publish(topics.twin_response(204, rid, version), b"")

    def on_subscribe(self, packet: Subscribe) -> None:
        codes: list[int] = []
        for topic_filter, qos in packet.topics:
            kind = self._kind(topic_filter)
            if kind is None or (
                topic_filter not in self._subscriptions and len(self._subscriptions) >= MAX_SUBSCRIPTIONS
            ):
                codes.append(packets.SUBACK_FAILURE)
                continue
            self._subscriptions[topic_filter] = min(qos, 1)
            self._kinds.add(kind)
            codes.append(min(qos, 1))
        self._gateway.spawn(self._subscribed(packet.packet_id, tuple(codes)))

    async def _subscribed(self, packet_id: int, codes: tuple[int, ...]) -> None:
        if self._persistent:
            # Durable before the SUBACK: the Python SDK never subscribes again after a reconnect.
            await self._gateway.connections.save_subscriptions(self.identity, dict(self._subscriptions))
        self._connection.send(codec.encode_suback(packet_id, codes))
        self.deliver_c2d()

    def on_unsubscribe(self, packet: Unsubscribe) -> None:
        for topic_filter in packet.topics:
            self._subscriptions.pop(topic_filter, None)
        self._kinds = {self._kind(f) for f in self._subscriptions} - {None}
        self._gateway.spawn(self._unsubscribed(packet.packet_id))

    async def _unsubscribed(self, packet_id: int) -> None:
        if self._persistent:
            await self._gateway.connections.save_subscriptions(self.identity, dict(self._subscriptions))
        self._connection.send(codec.encode_unsuback(packet_id))

    def on_puback(self, packet_id: int) -> None:
        sequence = self._inflight.pop(packet_id, None)
        if sequence is not None:
            identity = self.identity
            self._gateway.spawn(self._gateway.connections.complete_c2d(identity.hub, identity.device_id, sequence))

    def closed(self, graceful: bool) -> None:
        if not graceful and self._will is not None:
            self._send_will(self._will)
        self._gateway.session_closed(self)

    def _send_will(self, will: Will) -> None:
        """The hub forwards a will to its own telemetry topic as a message of type Will."""
        try:
            topic = topics.parse_hub_topic(will.topic)
        except TopicError:
            return
        if isinstance(topic, Telemetry) and self._own(topic):
            properties = (*topic.properties, ("iothub-MessageType", "Will"))
            event = DeviceEvent(topic.device_id, topic.module_id, self._gateway.clock.now(), properties, will.payload)
            self._gateway.record_event(self.identity.hub, event, lambda ok: None)

    # -- to the device -------------------------------------------------------------------------------
    def push_desired(self, patch: dict[str, Any], version: int) -> None:
        if self.subscribed(Subscription.DESIRED):
            self._connection.publish(topics.desired_topic(version), dumps({**patch, "$version": version}))

    def deliver_method(self, rid: str, name: str, payload: Any) -> bool:
        if not self.subscribed(Subscription.METHODS) or self._connection.closing:
            return False
        self._methods.add(rid)
        self._connection.publish(topics.method_request(name, rid), dumps(payload))
        return True

    def deliver_c2d(self) -> None:
        if self.identity.module_id or not self.subscribed(Subscription.C2D) or self._connection.closing:
            return
        if self._fetching:
            self._fetch_again = True
            return
        self._fetching = True
        self._gateway.spawn(self._fetch_c2d())

    async def _fetch_c2d(self) -> None:
        try:
            while True:
                self._fetch_again = False
                identity = self.identity
                pending = await self._gateway.connections.pending_c2d(identity.hub, identity.device_id, C2D_BATCH)
                sent = set(self._inflight.values())
                for message in pending:
                    if message.sequence not in sent:
                        packet_id = self._packet_id()
                        self._inflight[packet_id] = message.sequence
                        topic = topics.c2d_topic(identity.device_id, message.properties)
                        self._connection.publish(topic, message.body, 1, packet_id)
                if not self._fetch_again:
                    return
        finally:
            self._fetching = False

    def _packet_id(self) -> int:
        while True:
            self._next_packet_id = self._next_packet_id % 0xFFFF + 1
            if self._next_packet_id not in self._inflight:
                return self._next_packet_id


def _method_payload(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return loads(body)
    except EdgeprovError:
        return body.decode("utf-8", "replace")
