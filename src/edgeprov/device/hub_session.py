"""The agent's live session with its hub: MQTT 3.1.1 over TLS on port 8883 (spec/hub-protocol.md §1, §5).

Two connections, as the hub sees a running edge device:

- the device itself, signed with the device's own key: the hub shows the device connected, and a
  disabled device or a wrong device key is refused right here;
- ``$edgeAgent`` (client id ``{deviceId}/$edgeAgent``), signed with the module key derived on the
  device, as a real edgeAgent connects: it reads its twin, follows desired pushes and reports the
  runtime's state (``agent_twin.py``).

Both use a persistent session (clean session 0), so the twin subscriptions outlive a reconnect.
Tokens are made for ``token_ttl`` seconds; before they expire the session reconnects with new
ones, as the SDKs do (the cloud's hub closes a connection whose token has expired).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn

from edgeprov import sas
from edgeprov.device.agent import SessionLink
from edgeprov.device.agent_twin import AgentTwin
from edgeprov.device.modules import EDGE_AGENT, ModuleIdentity
from edgeprov.device.mqtt_client import ConnectionLost, ConnectionRefused, MqttClient, open_tls
from edgeprov.device.settings import AgentSettings, DeviceKey
from edgeprov.device.state import Identity
from edgeprov.device.transport import HttpSettings, unreachable
from edgeprov.errors import IdentityRejected, ServiceUnreachable
from edgeprov.mqtt.packets import SUBACK_FAILURE, ConnackCode, Connect

MQTT_PORT = 8883
API_VERSION = "2021-04-12"
TWIN_FILTERS = ("$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#")
DEFAULT_KEEP_ALIVE = 60
DEFAULT_TOKEN_TTL = 3600
RENEW_AFTER = 0.9  # of a token's lifetime: time to spare for a slow reconnect and some clock skew
# What the hub answers a CONNECT whose credentials or device it does not accept (spec/hub-protocol.md §1.1);
# the other refusals are about the packet, which a new identity would not change.
REJECTED = (ConnackCode.BAD_USERNAME_OR_PASSWORD, ConnackCode.NOT_AUTHORIZED)


@dataclass(frozen=True, slots=True)
class SessionSettings:
    keep_alive: int = DEFAULT_KEEP_ALIVE
    token_ttl: int = DEFAULT_TOKEN_TTL

    def __post_init__(self) -> None:
        if self.keep_alive < 1 or self.token_ttl < 2:
            raise ValueError("a session needs a keep-alive of at least 1 s and tokens of at least 2 s")


class MqttHubSession:
    """The :class:`~edgeprov.device.agent.HubSession` of the runtime."""

    def __init__(
        self, http: HttpSettings, agent: AgentSettings, log: logging.Logger, settings: SessionSettings | None = None
    ) -> None:
        self._http = http
        self._agent = agent
        self._log = log
        self._settings = settings or SessionSettings()

    async def run(self, identity: Identity, key: DeviceKey, agent: ModuleIdentity, link: SessionLink) -> NoReturn:
        twin = AgentTwin(self._agent, link.status, self._log, self._http.timeout)
        while True:
            await self._hold(identity, key, agent, link, twin)
            self._log.info("Renewing the SAS tokens: reconnecting to hub %s", identity.hub)

    async def _hold(
        self, identity: Identity, key: DeviceKey, agent: ModuleIdentity, link: SessionLink, twin: AgentTwin
    ) -> None:
        """Connect both, and keep them until their tokens are due for renewal."""
        context = self._http.context()
        device = await self._connect(identity, "", key, context)
        try:
            module = await self._connect(identity, EDGE_AGENT, agent.key, context)
            try:
                link.connected(f"connected to hub {identity.hub} as {identity.device_id} and {module.client_id}")
                await _first_failure(
                    self._settings.token_ttl * RENEW_AFTER,
                    _watch(device, _idle(device)),
                    _watch(module, _follow(module, twin)),
                )
            finally:
                await module.close()
        finally:
            await device.close()

    async def _connect(self, identity: Identity, module_id: str, key: DeviceKey, context: ssl.SSLContext) -> MqttClient:
        client_id = _client_id(identity, module_id)
        resource = f"{identity.hub}/devices/{identity.device_id}" + (f"/modules/{module_id}" if module_id else "")
        token = sas.build_token(resource, key.raw, int(time.time()) + self._settings.token_ttl)
        username = f"{identity.hub}/{client_id}/?api-version={API_VERSION}"
        connect = Connect(client_id, username, token, clean_session=False, keep_alive=self._settings.keep_alive)
        try:
            async with asyncio.timeout(self._http.timeout):
                reader, writer = await open_tls(identity.hub, MQTT_PORT, context)
                return await MqttClient.start(reader, writer, connect)
        except ConnectionRefused as exc:
            what = f"hub {identity.hub} refused {client_id!r}: {exc}"
            if exc.code in REJECTED:
                raise IdentityRejected(f"{what} (a wrong key, or the device disabled or deleted)") from None
            raise ServiceUnreachable(what) from None
        except (ConnectionLost, OSError) as exc:
            raise unreachable(f"mqtts://{identity.hub}:{MQTT_PORT}", exc) from None


def _client_id(identity: Identity, module_id: str) -> str:
    return f"{identity.device_id}/{module_id}" if module_id else identity.device_id


async def _idle(device: MqttClient) -> NoReturn:
    """The device's own connection subscribes to nothing: this waits for its end."""
    while True:
        await device.next_message()


async def _follow(module: MqttClient, twin: AgentTwin) -> NoReturn:
    if not module.session_present:
        codes = await module.subscribe(TWIN_FILTERS)
        if SUBACK_FAILURE in codes:
            raise ServiceUnreachable(f"the hub refused $edgeAgent's twin subscriptions (SUBACK {list(codes)})")
    await twin.follow(module)


async def _watch(client: MqttClient, work: Coroutine[Any, Any, NoReturn]) -> NoReturn:
    try:
        await work
    except ConnectionLost as exc:
        raise ServiceUnreachable(f"the MQTT connection of {client.client_id!r} ended: {exc}") from None


async def _first_failure(seconds: float, *work: Coroutine[Any, Any, NoReturn]) -> None:
    """Run ``work`` together: raise what the first of them raises, or return after ``seconds``."""
    tasks = [asyncio.create_task(each) for each in work]
    try:
        done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
