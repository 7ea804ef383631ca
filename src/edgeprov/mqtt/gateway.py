"""The device gateway of one worker process: its connections, and everything that reaches them.

It lets devices in (one connection per client id: a new one takes over, on any worker), records
telemetry in batches (each batch one commit, its messages acknowledged after it), and implements
the hub's :class:`~edgeprov.hub.service.TwinListener` and :class:`~edgeprov.hub.messaging.DeviceLink`:
desired patches, direct methods and C2D notices go to the local connection, or over the bus to
the worker that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from edgeprov import sas
from edgeprov.bus.base import Bus
from edgeprov.clock import Clock
from edgeprov.dps.registration import Provisioning
from edgeprov.errors import DeviceNotOnline, EdgeprovError, GatewayTimeout
from edgeprov.hub.connections import ConnectedIdentity, Connections
from edgeprov.hub.messages import DeviceEvent
from edgeprov.hub.messaging import MethodCall, MethodResult
from edgeprov.hub.service import HubService
from edgeprov.mqtt.connection import Connection, Refused, Session
from edgeprov.mqtt.dps_session import DpsSession
from edgeprov.mqtt.hub_session import HubSession
from edgeprov.mqtt.login import DpsLogin, HubLogin, LoginError, parse_login
from edgeprov.mqtt.packets import ConnackCode, Connect
from edgeprov.mqtt.recorder import EventRecorder
from edgeprov.store.base import Touch
from edgeprov.types import JsonObject

log = logging.getLogger("edgeprov.mqtt")

ACTIVITY_FLUSH_SECONDS = 10.0
CONNECT_POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 2.0


@dataclass(slots=True)
class _Relay:
    """A method call this worker passed to its device for another worker."""

    origin: int
    expires: float


class Gateway:
    def __init__(
        self,
        connections: Connections,
        hubs: HubService,
        provisioning: Provisioning,
        clock: Clock,
        bus: Bus,
        hosted_hubs: tuple[str, ...],
    ) -> None:
        self.connections = connections
        self.hubs = hubs
        self.provisioning = provisioning
        self.clock = clock
        self._bus = bus
        self._hosted = frozenset(hosted_hubs)
        self._clients: dict[tuple[str, str], HubSession] = {}
        self._calls: dict[str, asyncio.Future[MethodResult]] = {}
        self._relays: dict[str, _Relay] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recorder = EventRecorder(connections, self.spawn)
        self._flushed_activity: dict[tuple[str, str], float] = {}
        self._activity: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop_policy().get_event_loop()

    # -- life ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._bus.start(self._on_bus)
        alive = [worker for worker in self._bus.peers() if _alive(worker)]
        await self.connections.forget_workers([*alive, self._bus.worker])
        self._activity = self.loop.create_task(self._flush_activity_forever())

    async def stop(self) -> None:
        """Close every connection and let their disconnections be recorded (briefly), then stop."""
        if self._activity is not None:
            self._activity.cancel()
        for session in list(self._clients.values()):
            session.abort("the server is stopping")
        await asyncio.sleep(0)  # the transports report their loss on the next turn of the loop
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, *filter(None, [self._activity]), return_exceptions=True)
        self._bus.close()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("MQTT task failed", exc_info=task.exception())

    # -- connections -------------------------------------------------------------------------------------
    async def open_session(self, connection: Connection, connect: Connect) -> Session:
        try:
            login = parse_login(connect.username)
        except LoginError as exc:
            raise Refused(ConnackCode.BAD_USERNAME_OR_PASSWORD, str(exc)) from None
        if not connect.password:
            raise Refused(ConnackCode.BAD_USERNAME_OR_PASSWORD, "the CONNECT carries no SAS token")
        if isinstance(login, DpsLogin):
            if connect.client_id != login.registration_id:
                raise Refused(ConnackCode.IDENTIFIER_REJECTED, "the client id is not the registration id")
            return DpsSession(connection, login, connect.password)
        return await self._open_hub_session(connection, connect, login)

    async def _open_hub_session(self, connection: Connection, connect: Connect, login: HubLogin) -> HubSession:
        if connect.client_id != login.client_id:
            raise Refused(
                ConnackCode.IDENTIFIER_REJECTED, f"client id {connect.client_id[:130]!r} is not the user name's"
            )
        if login.hub not in self._hosted:
            raise Refused(ConnackCode.NOT_AUTHORIZED, f"{login.hub[:100]!r} is not a hub of this service")
        assert connect.password is not None
        try:
            token = sas.SasToken.parse(connect.password)
            await self.connections.authenticate(login.hub, login.device_id, login.module_id, token)
        except EdgeprovError as exc:
            raise Refused(ConnackCode.NOT_AUTHORIZED, exc.message) from None
        identity = ConnectedIdentity(login.hub, login.device_id, login.module_id, secrets.token_hex(8))
        subscriptions = await self.connections.open(identity, self._bus.worker, not connect.clean_session)
        session = HubSession(connection, identity, subscriptions, not connect.clean_session, connect.will)
        self._take_over(identity)
        self._clients[(identity.hub, identity.client_id)] = session
        return session

    def _take_over(self, identity: ConnectedIdentity) -> None:
        previous = self._clients.pop((identity.hub, identity.client_id), None)
        if previous is not None:
            previous.abort("a new connection took over its client id")
        self._bus.broadcast(_message("takeover", hub=identity.hub, client=identity.client_id, session=identity.session))

    def session_closed(self, session: HubSession) -> None:
        identity = session.identity
        key = (identity.hub, identity.client_id)
        if self._clients.get(key) is session:
            del self._clients[key]
        self._flushed_activity.pop(key, None)
        self.spawn(self.connections.close(identity, session.last_activity))

    def _local(self, hub: str, device_id: str, module_id: str) -> HubSession | None:
        return self._clients.get((hub, f"{device_id}/{module_id}" if module_id else device_id))

    # -- telemetry and activity ----------------------------------------------------------------------------
    def record_event(self, hub: str, event: DeviceEvent, done: Callable[[bool], None]) -> None:
        self._recorder.record(hub, event, done)

    async def _flush_activity_forever(self) -> None:
        while True:
            await asyncio.sleep(ACTIVITY_FLUSH_SECONDS)
            try:
                await self.connections.record_activity(self._activity_since_last_flush())
            except EdgeprovError:
                log.exception("could not record device activity")
            now = self.loop.time()
            for rid in [rid for rid, relay in self._relays.items() if relay.expires < now]:
                del self._relays[rid]

    def _activity_since_last_flush(self) -> list[Touch]:
        touches = []
        for key, session in self._clients.items():
            activity = session.last_activity
            if activity > self._flushed_activity.get(key, 0.0):
                self._flushed_activity[key] = activity
                identity = session.identity
                touches.append(Touch(identity.hub, identity.device_id, identity.module_id, identity.session, activity))
        return touches

    # -- the hub's listener and device link --------------------------------------------------------------------
    def desired_changed(self, hub: str, device_id: str, module_id: str, patch: JsonObject, version: int) -> None:
        session = self._local(hub, device_id, module_id)
        if session is not None:
            session.push_desired(patch, version)
        else:
            self._bus.broadcast(
                _message("desired", hub=hub, device=device_id, module=module_id, patch=patch, version=version)
            )

    def access_revoked(self, hub: str, device_id: str, module_id: str) -> None:
        self._revoke(hub, device_id, module_id)
        self._bus.broadcast(_message("revoke", hub=hub, device=device_id, module=module_id))

    def _revoke(self, hub: str, device_id: str, module_id: str) -> None:
        """Close the identity's connections: those of the device and its modules when ``module_id`` is empty."""
        for (client_hub, _), session in list(self._clients.items()):
            identity = session.identity
            if client_hub == hub and identity.device_id == device_id and module_id in ("", identity.module_id):
                session.abort("its identity was disabled or deleted")

    def c2d_enqueued(self, hub: str, device_id: str) -> None:
        session = self._local(hub, device_id, "")
        if session is not None:
            session.deliver_c2d()
        else:
            self._bus.broadcast(_message("c2d", hub=hub, device=device_id))

    async def invoke_method(self, hub: str, device_id: str, module_id: str, call: MethodCall) -> MethodResult:
        await self._await_connection(hub, device_id, module_id, call.connect_timeout)
        rid = uuid.uuid4().hex
        future: asyncio.Future[MethodResult] = self.loop.create_future()
        self._calls[rid] = future
        try:
            session = self._local(hub, device_id, module_id)
            if session is not None:
                if not session.deliver_method(rid, call.name, call.payload):
                    raise _not_online(device_id, module_id)
            else:
                self._bus.broadcast(
                    _message(
                        "invoke",
                        rid=rid,
                        origin=self._bus.worker,
                        hub=hub,
                        device=device_id,
                        module=module_id,
                        name=call.name,
                        payload=call.payload,
                        timeout=call.response_timeout,
                    )
                )
            try:
                return await asyncio.wait_for(future, call.response_timeout)
            except TimeoutError:
                raise GatewayTimeout(
                    f"{device_id!r} did not answer method {call.name!r} within {call.response_timeout:.0f} s"
                ) from None
        finally:
            self._calls.pop(rid, None)

    async def _await_connection(self, hub: str, device_id: str, module_id: str, patience: float) -> None:
        deadline = self.loop.time() + patience
        while not (
            self._local(hub, device_id, module_id) or await self.connections.is_connected(hub, device_id, module_id)
        ):
            if self.loop.time() >= deadline:
                raise _not_online(device_id, module_id)
            await asyncio.sleep(CONNECT_POLL_SECONDS)

    def method_answered(self, rid: str, status: int, payload: Any) -> None:
        future = self._calls.get(rid)
        if future is not None:
            if not future.done():
                future.set_result(MethodResult(status, payload))
            return
        relay = self._relays.pop(rid, None)
        if relay is not None:
            self._bus.send(relay.origin, _message("result", rid=rid, status=status, payload=payload))

    # -- the bus ---------------------------------------------------------------------------------------------
    def _on_bus(self, raw: bytes) -> None:
        message = orjson.loads(raw)
        kind = message["t"]
        if kind == "result":
            self._resolve_remote(message)
            return
        hub, client = message["hub"], message.get("client")
        if kind == "takeover":
            session = self._clients.get((hub, client))
            if session is not None and session.identity.session != message["session"]:
                del self._clients[(hub, client)]
                session.abort("a new connection on another worker took over its client id")
            return
        if kind == "revoke":
            self._revoke(hub, message["device"], message["module"])
            return
        session = self._local(hub, message["device"], message.get("module", ""))
        if session is None:
            return  # another worker holds it
        if kind == "desired":
            session.push_desired(message["patch"], message["version"])
        elif kind == "c2d":
            session.deliver_c2d()
        elif kind == "invoke":
            if session.deliver_method(message["rid"], message["name"], message["payload"]):
                self._relays[message["rid"]] = _Relay(message["origin"], self.loop.time() + message["timeout"] + 5)
            else:
                self._bus.send(message["origin"], _message("result", rid=message["rid"], offline=True))

    def _resolve_remote(self, message: JsonObject) -> None:
        future = self._calls.get(message["rid"])
        if future is None or future.done():
            return
        if message.get("offline"):
            future.set_exception(DeviceNotOnline("the device is connected but not subscribed to direct methods"))
        else:
            future.set_result(MethodResult(message["status"], message["payload"]))


def _message(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"t": kind, **fields})


def _not_online(device_id: str, module_id: str) -> DeviceNotOnline:
    who = f"module {module_id!r} of device {device_id!r}" if module_id else f"device {device_id!r}"
    return DeviceNotOnline(f"{who} is not connected (or has not subscribed to direct methods)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
