"""Who may call the service APIs: shared access policies, and devices managing their own modules."""

from __future__ import annotations

from dataclasses import dataclass

from edgeprov import sas
from edgeprov.clock import Clock
from edgeprov.errors import Forbidden, Unauthorized
from edgeprov.hub.access import check_identity_token
from edgeprov.store.base import DPS_SERVICE, AccessPolicy, Store

# Rights of the cloud's policies (spec/dps-protocol.md §5.1, spec/hub-protocol.md §3.1).
ENROLLMENT_READ = "EnrollmentRead"
ENROLLMENT_WRITE = "EnrollmentWrite"
REGISTRATION_READ = "RegistrationStatusRead"
REGISTRATION_WRITE = "RegistrationStatusWrite"
SERVICE_CONFIG = "ServiceConfig"
DPS_RIGHTS = (SERVICE_CONFIG, ENROLLMENT_READ, ENROLLMENT_WRITE, REGISTRATION_READ, REGISTRATION_WRITE)

REGISTRY_READ = "RegistryRead"
REGISTRY_WRITE = "RegistryWrite"
SERVICE_CONNECT = "ServiceConnect"
DEVICE_CONNECT = "DeviceConnect"
HUB_POLICIES = {
    "iothubowner": (REGISTRY_READ, REGISTRY_WRITE, SERVICE_CONNECT, DEVICE_CONNECT),
    "service": (SERVICE_CONNECT,),
    "device": (DEVICE_CONNECT,),
    "registryRead": (REGISTRY_READ,),
    "registryReadWrite": (REGISTRY_READ, REGISTRY_WRITE),
}


@dataclass(frozen=True, slots=True)
class Caller:
    """An authorised caller: a policy, or a device acting on its own modules."""

    service: str
    policy: str | None = None
    device_id: str | None = None


def host_of(audience: str) -> str:
    """The host name a service token was issued for: ``sr`` without port or path."""
    return audience.split("/", 1)[0].rsplit(":", 1)[0].lower()


class ServiceAuthenticator:
    def __init__(self, store: Store, clock: Clock, clock_skew: float) -> None:
        self._store = store
        self._clock = clock
        self._skew = clock_skew

    async def provisioning(self, authorization: str | None, right: str) -> Caller:
        token = _parse(authorization)
        policy = await self._policy(DPS_SERVICE, token)
        return self._grant(token, policy, right)

    async def hub(self, authorization: str | None, right: str, *, own_device: str | None = None) -> Caller:
        """Authorise a hub call; ``own_device`` also admits that device's own SAS (module management)."""
        token = _parse(authorization)
        hub = host_of(token.audience)
        hubs = await self._store.read(lambda tx: tx.list_hubs())
        if hub not in hubs:
            raise Unauthorized(f"the token is for {hub!r}, which is not a hub of this service ({', '.join(hubs)})")
        if token.key_name is None and own_device is not None:
            return await self._device(token, hub, own_device)
        policy = await self._policy(hub, token)
        return self._grant(token, policy, right)

    async def _policy(self, service: str, token: sas.SasToken) -> AccessPolicy:
        if not token.key_name:
            raise Unauthorized("the token names no shared access policy (skn)")
        name = token.key_name
        policy = await self._store.read(lambda tx: tx.get_policy(service, name))
        if policy is None:
            raise Unauthorized(f"shared access policy {name!r} does not exist")
        return policy

    def _grant(self, token: sas.SasToken, policy: AccessPolicy, right: str) -> Caller:
        keys = (sas.decode_key(policy.primary_key), sas.decode_key(policy.secondary_key))
        if not any(token.signed_with(key) for key in keys):
            raise Unauthorized(f"the signature matches no key of policy {policy.name!r}")
        self._check_expiry(token)
        if right not in policy.rights:
            raise Forbidden(f"policy {policy.name!r} lacks the {right} permission")
        return Caller(policy.service, policy=policy.name)

    async def _device(self, token: sas.SasToken, hub: str, device_id: str) -> Caller:
        device = await self._store.read(lambda tx: tx.get_device(hub, device_id))
        check_identity_token(token, hub, device, None, "", self._clock.now(), self._skew)
        return Caller(hub, device_id=device_id)

    def _check_expiry(self, token: sas.SasToken) -> None:
        late = token.seconds_past_expiry(self._clock.now())
        if late > self._skew:
            raise Unauthorized(f"the token expired {late:.0f} s ago by this service's clock")


def _parse(authorization: str | None) -> sas.SasToken:
    if not authorization:
        raise Unauthorized("the request carries no Authorization header with a SharedAccessSignature")
    return sas.SasToken.parse(authorization)
