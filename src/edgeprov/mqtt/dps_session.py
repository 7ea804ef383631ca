"""Provisioning over MQTT (spec/dps-protocol.md §3): the HTTPS path's domain calls behind other topics.

The CONNECT's password is the registration's SAS token; every request is attested by
:class:`edgeprov.dps.registration.Provisioning` exactly as an HTTPS request with that token in
its Authorization header, so rules, records, the attempt log and outcomes are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeprov.dps.model import RegistrationStatus
from edgeprov.dps.registration import RegisterRequest
from edgeprov.errors import EdgeprovError
from edgeprov.jsonutil import dumps, loads_object
from edgeprov.mqtt import codec, packets, topics
from edgeprov.mqtt.errors import dps_error
from edgeprov.mqtt.login import DpsLogin
from edgeprov.mqtt.packets import Publish, Subscribe, Unsubscribe
from edgeprov.mqtt.topics import DpsPoll, DpsRegister, TopicError

if TYPE_CHECKING:
    from edgeprov.mqtt.connection import Connection


class DpsSession:
    present = False

    def __init__(self, connection: Connection, login: DpsLogin, token: str) -> None:
        self._connection = connection
        self._gateway = connection.gateway
        self._login = login
        self._token = token

    def started(self) -> None:
        return None

    def on_publish(self, packet: Publish) -> None:
        try:
            topic = topics.parse_dps_topic(packet.topic)
        except TopicError as exc:
            self._connection.abort(str(exc))
            return
        self._gateway.spawn(self._answer(topic, packet))

    async def _answer(self, topic: DpsRegister | DpsPoll, packet: Publish) -> None:
        provisioning = self._gateway.provisioning
        retry_after: int | None = provisioning.settings.retry_after
        try:
            if isinstance(topic, DpsRegister):
                status, body = 202, await self._register(packet.payload)
            else:
                operation = await provisioning.operation_status(
                    self._login.id_scope, self._login.registration_id, topic.operation_id, self._token
                )
                status, body = (
                    (202, operation.body) if operation.status is RegistrationStatus.ASSIGNING else (200, operation.body)
                )
                if status == 200:
                    retry_after = None
        except EdgeprovError as exc:
            status, body, retry_after = exc.status, dps_error(exc, self._gateway.clock.now()), None
        if packet.qos and packet.packet_id is not None:
            self._connection.send(codec.encode_puback(packet.packet_id))
        self._connection.publish(topics.dps_response(status, topic.rid, retry_after), body)

    async def _register(self, payload: bytes) -> bytes:
        request = RegisterRequest(
            id_scope=self._login.id_scope,
            registration_id=self._login.registration_id,
            body=loads_object(payload) if payload.strip() else {},
            authorization=self._token,
            source=self._connection.peer,
            transport="mqtt",
        )
        operation = await self._gateway.provisioning.register(request)
        return dumps({"operationId": operation.operation_id, "status": str(RegistrationStatus.ASSIGNING)})

    def on_subscribe(self, packet: Subscribe) -> None:
        codes = tuple(
            min(qos, 1) if topics.dps_subscription(topic_filter) else packets.SUBACK_FAILURE
            for topic_filter, qos in packet.topics
        )
        self._connection.send(codec.encode_suback(packet.packet_id, codes))

    def on_unsubscribe(self, packet: Unsubscribe) -> None:
        self._connection.send(codec.encode_unsuback(packet.packet_id))

    def on_puback(self, packet_id: int) -> None:
        return None

    def closed(self, graceful: bool) -> None:
        return None
