"""``edgeprov device run``: the long-running agent.

It gets the device's identity (from the backup without contacting the service, or from the
provisioning service with backoff), makes sure the ``$edgeAgent`` and ``$edgeHub`` module
identities exist in the hub with keys derived on the device, then holds the hub session. Nothing
here exits on a network failure: every failure waits a bounded, jittered, growing delay and tries
again; the delay starts over once the session is connected.

The hub session (MQTT, ``device/hub_session.py``) is one component behind :class:`HubSession`. A
session that drops is simply opened again; one the hub refuses sends the agent back to the module
identities, or to the provisioning service, by ``auto_reprovisioning_mode`` (spec §3.5).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol

from edgeprov import __version__
from edgeprov.device.backoff import Backoff, BackoffSettings
from edgeprov.device.files import write_atomic, write_json
from edgeprov.device.identity import Provisioner, Trigger, changes, should_reprovision
from edgeprov.device.modules import EDGE_AGENT, EDGE_MODULES, ModuleIdentities, ModuleIdentity
from edgeprov.device.settings import DeviceConfig, DeviceKey, DpsProvisioning, ReprovisioningMode
from edgeprov.device.state import AgentStatus, Identity, Phase, StateDir, load_identity, save_status
from edgeprov.errors import IdentityRejected, ProvisioningRefused, ServiceUnreachable


@dataclass(frozen=True, slots=True)
class SessionLink:
    """What the agent lends its hub session: the runtime's state, and where to say the session is up."""

    status: Callable[[], AgentStatus]
    connected: Callable[[str], None]


class HubSession(Protocol):
    """The device's live connection to its hub.

    ``run`` connects with the device's identity and key and with ``$edgeAgent``'s module identity,
    calls ``link.connected`` each time it is connected, reports the runtime's state (``link.status()``)
    in the ``$edgeAgent`` twin, and returns only by raising: :class:`ServiceUnreachable` when the
    connection is lost or cannot be made (the agent waits and calls ``run`` again), or
    :class:`IdentityRejected` when the hub refuses the credentials or the device is disabled.
    """

    async def run(self, identity: Identity, key: DeviceKey, agent: ModuleIdentity, link: SessionLink) -> NoReturn: ...


class _SessionRejected(Exception):
    def __init__(self, cause: IdentityRejected) -> None:
        super().__init__(cause.message)
        self.message = cause.message


class Agent:
    def __init__(
        self,
        state: StateDir,
        config: DeviceConfig,
        provisioner: Provisioner,
        modules: ModuleIdentities,
        session: HubSession,
        backoff: BackoffSettings,
        log: logging.Logger,
    ) -> None:
        self._state = state
        self._config = config
        self._provisioner = provisioner
        self._modules = modules
        self._session = session
        self._backoff = backoff
        self._log = log
        self.status = AgentStatus(os.getpid(), "starting", time.time())

    async def run(self) -> None:
        """Run until cancelled (SIGTERM), then record that the agent stopped."""
        write_atomic(self._state.pid_file, f"{os.getpid()}\n".encode())
        self._publish(state="running")
        self._log.info("Starting edgeprov device runtime %s (state directory %s)", __version__, self._state.root)
        try:
            identity = await self._startup_identity()
            await self._serve(identity)
        finally:
            self._publish(state="stopped", stopped_at=time.time())
            self._state.pid_file.unlink(missing_ok=True)
            self._log.info("Stopped.")

    # -- identity ------------------------------------------------------------------------------------------
    async def _startup_identity(self) -> Identity:
        provisioning = self._config.provisioning
        backup = self._provisioner.backup_for(provisioning)
        dps = isinstance(provisioning, DpsProvisioning)
        if dps and self._config.auto_reprovisioning_mode is ReprovisioningMode.ALWAYS_ON_STARTUP:
            self._log.info("auto_reprovisioning_mode is AlwaysOnStartup: provisioning again")
            return await self._provision(fallback=backup)
        if backup is not None:
            self._log.info(
                "Provisioned with backup for device %s on hub %s (the provisioning service was not contacted)",
                backup.device_id,
                backup.hub,
            )
            self._publish(identity=Phase.READY, identity_detail=f"restored from backup: {backup.device_id}")
            return backup
        previous = load_identity(self._state)
        if previous is not None and dps:
            described = "; ".join(changes(previous.settings, provisioning.fingerprint()))
            self._log.info("Provisioning settings changed since the last successful run: %s", described)
        return await self._provision(fallback=None)

    async def _provision(self, fallback: Identity | None) -> Identity:
        backoff = Backoff(self._backoff)
        while True:
            attempt = backoff.failures + 1
            try:
                identity = await self._provisioner.provision(self._config.provisioning)
            except (ServiceUnreachable, ProvisioningRefused) as exc:
                if fallback is not None:
                    self._log.warning("Provisioning failed (%s); using the backup from the last run", exc.message)
                    self._publish(identity=Phase.READY, identity_detail=f"restored from backup: {fallback.device_id}")
                    return fallback
                delay = backoff.next_delay()
                self._log.warning("Provisioning attempt %d failed: %s; retrying in %.2f s", attempt, exc.message, delay)
                self._publish(identity=Phase.RETRYING, identity_detail=f"attempt {attempt} failed: {exc.message}")
                await asyncio.sleep(delay)
                continue
            self._log.info(
                "Provisioned: device %s assigned to hub %s (%s)",
                identity.device_id,
                identity.hub,
                identity.substatus or identity.source,
            )
            self._publish(identity=Phase.READY, identity_detail=f"provisioned: {identity.device_id}")
            return identity

    # -- hub ---------------------------------------------------------------------------------------------
    async def _serve(self, identity: Identity) -> NoReturn:
        backoff = Backoff(self._backoff)
        while True:
            try:
                agent = await self._module_identities(identity, backoff)
                await self._hold_session(identity, agent, backoff)
            except (IdentityRejected, _SessionRejected) as exc:
                trigger = Trigger.SESSION_CREDENTIALS if isinstance(exc, _SessionRejected) else Trigger.IDENTITY_ERROR
                delay = backoff.next_delay()
                dps = isinstance(self._config.provisioning, DpsProvisioning)
                if dps and should_reprovision(self._config.auto_reprovisioning_mode, trigger):
                    self._log.warning("%s; provisioning again in %.2f s", exc.message, delay)
                    await asyncio.sleep(delay)
                    identity = await self._provision(fallback=None)
                    continue
                self._log.warning("%s; retrying in %.2f s", exc.message, delay)
                await asyncio.sleep(delay)

    async def _module_identities(self, identity: Identity, backoff: Backoff) -> ModuleIdentity:
        """``$edgeAgent``'s identity, once every module identity is in the hub with the device's keys."""
        while True:
            try:
                created = await self._modules.ensure(identity, self._config.provisioning.key, EDGE_MODULES)
            except ServiceUnreachable as exc:
                delay = backoff.next_delay()
                self._log.warning("Hub %s: %s; retrying in %.2f s", identity.hub, exc.message, delay)
                self._publish(modules=Phase.RETRYING, modules_detail=exc.message)
                await asyncio.sleep(delay)
                continue
            except IdentityRejected as exc:
                self._publish(modules=Phase.RETRYING, modules_detail=exc.message)
                raise
            write_json(self._state.modules, {m.module_id: {"generationId": m.generation_id} for m in created})
            if self.status.modules is not Phase.READY:
                self._log.info("Module identities ready in hub %s: %s", identity.hub, ", ".join(EDGE_MODULES))
            self._publish(modules=Phase.READY, modules_detail=", ".join(EDGE_MODULES))
            return next(module for module in created if module.module_id == EDGE_AGENT)

    async def _hold_session(self, identity: Identity, agent: ModuleIdentity, backoff: Backoff) -> NoReturn:
        """Keep the hub session up; a drop waits and reconnects, a refusal goes back to the caller."""

        def connected(detail: str) -> None:
            backoff.reset()
            self._log.info("Hub session: %s", detail)
            self._publish(hub=Phase.READY, hub_detail=detail)

        link = SessionLink(lambda: self.status, connected)
        while True:
            try:
                await self._session.run(identity, self._config.provisioning.key, agent, link)
            except ServiceUnreachable as exc:
                delay = backoff.next_delay()
                self._log.warning("Hub %s: %s; reconnecting in %.2f s", identity.hub, exc.message, delay)
                self._publish(hub=Phase.RETRYING, hub_detail=exc.message)
                await asyncio.sleep(delay)
            except IdentityRejected as exc:
                self._publish(hub=Phase.RETRYING, hub_detail=exc.message)
                raise _SessionRejected(exc) from None

    def _publish(self, **fields: Any) -> None:
        self.status = replace(self.status, **fields)
        save_status(self._state, self.status)


async def serve_until_signalled(agent: Agent) -> None:
    """Run the agent; SIGTERM or SIGINT cancels it cleanly."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await agent.run()
    except asyncio.CancelledError:
        return
