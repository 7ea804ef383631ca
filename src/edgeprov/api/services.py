"""Everything a request handler may use, assembled once per worker by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from edgeprov.api.auth import ServiceAuthenticator
from edgeprov.clock import Clock
from edgeprov.dps.registration import Provisioning
from edgeprov.dps.service import EnrollmentService, LinkedHubService, RegistrationService
from edgeprov.hub.configurations import ConfigurationService
from edgeprov.hub.messaging import Messaging
from edgeprov.hub.queries import TwinQueries
from edgeprov.hub.service import HubService
from edgeprov.store.base import Store


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where this service is reachable, as ``edgeprov dps show`` reports it."""

    hostname: str
    https_port: int
    mqtt_port: int


@dataclass(frozen=True, slots=True)
class Services:
    store: Store
    clock: Clock
    provisioning: Provisioning
    enrollments: EnrollmentService
    registrations: RegistrationService
    linked_hubs: LinkedHubService
    hubs: HubService
    queries: TwinQueries
    configurations: ConfigurationService
    messaging: Messaging
    auth: ServiceAuthenticator
    endpoints: Endpoints
