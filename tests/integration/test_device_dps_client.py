"""The runtime's provisioning client against the real service: Retry-After honoured, refusals typed."""

from __future__ import annotations

import asyncio
import base64

import pytest

from edgeprov.device.dps_client import DpsClient
from edgeprov.device.settings import DeviceKey, DpsProvisioning, Endpoint
from edgeprov.device.transport import HttpSettings
from edgeprov.errors import ProvisioningRefused, ServiceUnreachable
from tests.support import Server, free_port, unique


def _settings(server: Server, registration_id: str, key_b64: str, port: int | None = None) -> DpsProvisioning:
    endpoint = Endpoint("localhost", port or server.https_port)
    return DpsProvisioning(endpoint, server.id_scope, registration_id, DeviceKey(base64.b64decode(key_b64)))


@pytest.mark.spec("dps-protocol.md §1.4 (Retry-After)")
def test_waits_as_long_as_retry_after_says(server: Server) -> None:
    registration_id = unique("edge-client")
    created = server.cli_ok("dps", "enrollment", "create", "--enrollment-id", registration_id, "--show-keys").json()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = DpsClient(HttpSettings(server.ca, 70), sleep)
    assignment = asyncio.run(
        client.register(_settings(server, registration_id, created["attestation"]["symmetricKey"]["primaryKey"]))
    )

    assert (assignment.hub, assignment.device_id, assignment.substatus) == (
        "localhost",
        registration_id,
        "initialAssignment",
    )
    assert waits == [1.0]  # the server's Retry-After, not the identity service's fixed 5 s


def test_refusal_and_unreachable_are_told_apart(server: Server) -> None:
    client = DpsClient(HttpSettings(server.ca, 70))
    unknown = _settings(server, unique("edge-unknown"), base64.b64encode(bytes(32)).decode())
    with pytest.raises(ProvisioningRefused) as refused:
        asyncio.run(client.register(unknown))
    assert refused.value.http_status == 401
    with pytest.raises(ServiceUnreachable, match="cannot reach https://localhost:"):
        asyncio.run(client.register(_settings(server, "r", base64.b64encode(bytes(32)).decode(), free_port())))
    untrusted = DpsClient(HttpSettings(None, 70))
    with pytest.raises(ServiceUnreachable, match="set trust_bundle_cert to the service's CA"):
        asyncio.run(untrusted.register(unknown))
