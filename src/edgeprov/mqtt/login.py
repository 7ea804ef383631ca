"""Who a CONNECT claims to be: a device registering with the provisioning service, or a hub client.

One listener serves both; the user name tells them apart (spec/dps-protocol.md §3.1,
spec/hub-protocol.md §1.1): ``{idScope}/registrations/{registrationId}/api-version=…`` versus
``{hubHost}/{deviceId}[/{moduleId}]/?api-version=…``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DpsLogin:
    id_scope: str
    registration_id: str


@dataclass(frozen=True, slots=True)
class HubLogin:
    host: str
    device_id: str
    module_id: str

    @property
    def hub(self) -> str:
        """The hub's host name, without the port some clients put in their user name."""
        return self.host.rsplit(":", 1)[0].lower()

    @property
    def client_id(self) -> str:
        return f"{self.device_id}/{self.module_id}" if self.module_id else self.device_id


class LoginError(ValueError):
    pass


def parse_login(username: str | None) -> DpsLogin | HubLogin:
    if not username:
        raise LoginError("the CONNECT has no user name")
    parts = username.split("/", 3)
    if len(parts) >= 3 and parts[1] == "registrations":
        return DpsLogin(parts[0], parts[2])
    path = username.split("?", 1)[0].rstrip("/").split("/")
    if path and "=" in path[-1]:  # the older form without '?': {host}/{device}/api-version=…
        path.pop()
    if len(path) == 2 and all(path):
        return HubLogin(path[0], path[1], "")
    if len(path) == 3 and all(path):
        return HubLogin(path[0], path[1], path[2])
    raise LoginError(f"user name {username[:200]!r} names neither a registration nor a hub device")
