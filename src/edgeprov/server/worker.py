"""One server process: the HTTPS application on uvicorn (and, later, the MQTT gateway) on shared sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from functools import partial

import uvicorn
import uvloop

from edgeprov.api.app import build_app
from edgeprov.api.auth import ServiceAuthenticator
from edgeprov.api.services import Endpoints, Services
from edgeprov.clock import SystemClock
from edgeprov.dps.model import AllocationPolicy
from edgeprov.dps.registration import DpsSettings, Provisioning
from edgeprov.dps.service import EnrollmentService, LinkedHubService, RegistrationService
from edgeprov.hub.configurations import ConfigurationService
from edgeprov.hub.queries import TwinQueries
from edgeprov.hub.service import HubService
from edgeprov.server.bootstrap import open_store
from edgeprov.server.settings import ServerSettings
from edgeprov.server.webhook import HttpWebhookCaller
from edgeprov.store.base import Store, Tx
from edgeprov.tls import TlsFiles, server_context

log = logging.getLogger("edgeprov")

MAINTENANCE_SECONDS = 60.0
OPERATION_LIFETIME = 3600.0


class _Server(uvicorn.Server):
    """uvicorn's server, minus its habit of re-raising SIGTERM after a graceful shutdown.

    Re-raising would kill the process before the worker closes its store and webhook client;
    a SIGTERM here means "stop cleanly", and the process then exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def build_services(settings: ServerSettings, store: Store, webhooks: HttpWebhookCaller) -> Services:
    clock = SystemClock()
    id_scope = store.write_blocking(lambda tx: tx.get_meta("id_scope"))
    assert id_scope is not None, "bootstrap creates the ID scope before any worker starts"
    dps_settings = DpsSettings(id_scope, AllocationPolicy.HASHED, settings.clock_skew, settings.retry_after)
    queries = TwinQueries(store)
    return Services(
        store=store,
        clock=clock,
        provisioning=Provisioning(store, clock, webhooks, dps_settings),
        enrollments=EnrollmentService(store, clock),
        registrations=RegistrationService(store),
        linked_hubs=LinkedHubService(store),
        hubs=HubService(store, clock),
        queries=queries,
        configurations=ConfigurationService(store, clock, queries),
        auth=ServiceAuthenticator(store, clock, settings.clock_skew),
        endpoints=Endpoints(settings.hostname, settings.https_port, settings.mqtt_port),
    )


async def serve(settings: ServerSettings, https_socket: socket.socket) -> None:
    store = open_store(settings)
    webhooks = HttpWebhookCaller(settings.webhook_timeout)
    services = build_services(settings, store, webhooks)
    config = uvicorn.Config(
        build_app(services),
        lifespan="off",
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="none",
        timeout_keep_alive=60,
    )
    config.load()
    files = TlsFiles.in_dir(settings.data_dir)
    config.ssl = server_context(files.server_cert, files.server_key)
    server = _Server(config)
    maintenance = asyncio.create_task(_maintain(services, settings))
    try:
        await server.serve(sockets=[https_socket])
    finally:
        maintenance.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintenance
        await webhooks.close()
        store.close()


async def _maintain(services: Services, settings: ServerSettings) -> None:
    """Keep the operation table and the attempt log bounded."""
    while True:
        await asyncio.sleep(MAINTENANCE_SECONDS)
        try:
            await services.store.write(partial(_prune, services.clock.now() - OPERATION_LIFETIME, settings))
        except Exception:
            log.exception("maintenance failed; retrying in %.0f s", MAINTENANCE_SECONDS)


def _prune(created_before: float, settings: ServerSettings, tx: Tx) -> None:
    tx.prune_operations(created_before)
    tx.prune_attempts(settings.attempt_retention)


def run(settings: ServerSettings, https_socket: socket.socket) -> None:
    uvloop.run(serve(settings, https_socket))
