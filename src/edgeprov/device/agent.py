"""``edgeprov device run``: the long-running agent.

It gets the device's identity (from the backup without contacting the service, or from the
provisioning service with backoff), makes sure the ``$edgeAgent`` and ``$edgeHub`` module
identities exist in the hub, then hands over to the hub session. Nothing here exits on a network
failure: every failure waits a bounded, jittered, growing delay and tries again.

The hub session — MQTT with the device's key, the ``$edgeAgent`` twin, reconnecting — is one
component behind :class:`HubSession`; it is not built yet (it needs the hub's MQTT endpoint), and
until it is the agent says so in its status instead of pretending to be connected.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from edgeprov import __version__
from edgeprov.device.backoff import Backoff, BackoffSettings
from edgeprov.device.files import write_atomic, write_json
from edgeprov.device.identity import Provisioner, Trigger, changes, should_reprovision
from edgeprov.device.modules import EDGE_MODULES, ModuleIdentities
from edgeprov.device.settings import DeviceConfig, DeviceKey, DpsProvisioning, ReprovisioningMode
from edgeprov.device.state import AgentStatus, Identity, Phase, StateDir, load_identity, save_status
from edgeprov.errors import IdentityRejected, ProvisioningRefused, ServiceUnreachable

NO_HUB_SESSION = "not available in this release: the MQTT hub session is not built yet"


class HubSession(Protocol):
    """The device's live connection to its hub.

    ``run`` connects with the device's identity and key, reports the runtime's state (``status()``
    gives the current one) in the ``$edgeAgent`` twin, and returns only by raising: :class:`ServiceUnreachable` when the
    connection is lost or cannot be made (the agent waits and calls ``run`` again), or
    :class:`IdentityRejected` when the hub refuses the credentials or the device is disabled
    (the agent may provision again, by ``auto_reprovisioning_mode``).
    """

    async def run(self, identity: Identity, key: DeviceKey, status: Callable[[], AgentStatus]) -> None: ...


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
        session: HubSession | None,
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
        self.status = AgentStatus(os.getpid(), "starting", time.time(), hub_session="" if session else NO_HUB_SESSION)

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
    async def _serve(self, identity: Identity) -> None:
        backoff = Backoff(self._backoff)
        while True:
            try:
                await self._connect(identity, backoff)
            except ServiceUnreachable as exc:
                delay = backoff.next_delay()
                self._log.warning("Hub %s: %s; retrying in %.2f s", identity.hub, exc.message, delay)
                self._publish(modules=Phase.RETRYING, modules_detail=exc.message)
            except (IdentityRejected, _SessionRejected) as exc:
                trigger = Trigger.SESSION_CREDENTIALS if isinstance(exc, _SessionRejected) else Trigger.IDENTITY_ERROR
                delay = backoff.next_delay()
                self._publish(modules=Phase.RETRYING, modules_detail=exc.message)
                dps = isinstance(self._config.provisioning, DpsProvisioning)
                if dps and should_reprovision(self._config.auto_reprovisioning_mode, trigger):
                    self._log.warning("%s; provisioning again in %.2f s", exc.message, delay)
                    await asyncio.sleep(delay)
                    identity = await self._provision(fallback=None)
                    continue
                self._log.warning("%s; retrying in %.2f s", exc.message, delay)
            await asyncio.sleep(delay)

    async def _connect(self, identity: Identity, backoff: Backoff) -> None:
        key = self._config.provisioning.key
        created = await self._modules.ensure(identity, key, EDGE_MODULES)
        write_json(self._state.modules, {m.module_id: {"generationId": m.generation_id} for m in created})
        if self.status.modules is not Phase.READY:
            self._log.info("Module identities ready in hub %s: %s", identity.hub, ", ".join(EDGE_MODULES))
        self._publish(modules=Phase.READY, modules_detail=", ".join(EDGE_MODULES))
        backoff.reset()
        if self._session is None:
            self._log.info("Hub session %s", NO_HUB_SESSION)
            await asyncio.Event().wait()  # until cancelled
            return
        try:
            await self._session.run(identity, key, lambda: self.status)
        except IdentityRejected as exc:
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
