"""How the admin CLI reaches a service: a connection string, a CA to trust, signed HTTPS calls.

The connection string comes from ``--login``, else the environment, else the local data
directory's ``service.json`` that ``edgeprov serve`` writes; the CA likewise from ``--ca``,
``$EDGEPROV_CA`` or the data directory.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgeprov import sas
from edgeprov.errors import EdgeprovError
from edgeprov.server.bootstrap import service_file
from edgeprov.server.settings import default_data_dir

DPS_ENV = "EDGEPROV_DPS_CONNECTION_STRING"
HUB_ENV = "EDGEPROV_HUB_CONNECTION_STRING"
CA_ENV = "EDGEPROV_CA"
API_VERSION = "2021-10-01"
HUB_API_VERSION = "2021-04-12"
TIMEOUT = 30.0


class CliError(EdgeprovError):
    """A failure to report on stderr with a non-zero exit code."""

    status, code, name = 1, 1, "CliError"


@dataclass(frozen=True, slots=True)
class ConnectionString:
    host: str
    key_name: str
    key: str

    @classmethod
    def parse(cls, text: str) -> ConnectionString:
        fields: dict[str, str] = {}
        for part in text.strip().split(";"):
            name, sep, value = part.partition("=")
            if sep:
                fields[name.strip().lower()] = value.strip()
        missing = [n for n in ("HostName", "SharedAccessKeyName", "SharedAccessKey") if n.lower() not in fields]
        if missing:
            raise CliError(f"the connection string lacks {', '.join(missing)}")
        return cls(fields["hostname"], fields["sharedaccesskeyname"], fields["sharedaccesskey"])


@dataclass(frozen=True, slots=True)
class Login:
    """Where ``--login``, ``--ca`` and ``--data`` point; resolved lazily so offline commands need none."""

    login: str | None
    ca: str | None
    data_dir: Path | None

    def local_service(self) -> dict[str, Any]:
        path = service_file(self.data_dir or default_data_dir())
        try:
            value: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise CliError(
                f"no --login given and no local service at {path}; start `edgeprov serve`, pass --data DIR, "
                f"or set --login / ${DPS_ENV} / ${HUB_ENV}"
            ) from None
        return value

    def connection(self, env: str, section: str, hub: str | None = None) -> ConnectionString:
        text = self.login or os.environ.get(env)
        if not text:
            service = self.local_service()
            if section == "dps":
                text = service["dps"]["connectionString"]
            else:
                hubs: dict[str, Any] = service["hubs"]
                name = (hub or next(iter(hubs))).lower()
                if name not in hubs:
                    raise CliError(f"hub {name!r} is not hosted by the local service ({', '.join(hubs)})")
                text = hubs[name]["connectionString"]
        assert text is not None
        return ConnectionString.parse(text)

    def verify(self) -> ssl.SSLContext:
        """The system's trust store plus the CA named by --ca, $EDGEPROV_CA or the local service."""
        ca = self.ca or os.environ.get(CA_ENV)
        if not ca:
            try:
                ca = str(self.local_service()["caCertificate"])
            except CliError:
                ca = None
        context = ssl.create_default_context()
        if ca:
            try:
                context.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise CliError(f"cannot load the CA certificate {ca}: {exc}") from None
        return context


class ServiceClient:
    """Signed calls to one service (the provisioning service or a hub)."""

    def __init__(self, connection: ConnectionString, verify: ssl.SSLContext, api_version: str) -> None:
        self._connection = connection
        self._api_version = api_version
        self._verify = verify

    def _token(self) -> str:
        return sas.token_for(self._connection.host, self._connection.key, 3600, self._connection.key_name)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> httpx.Response:
        all_headers = {"Authorization": self._token(), **(headers or {})}
        query = {"api-version": self._api_version, **(params or {})}
        # One connection per call: a CLI run makes a handful, and nothing is left open on exit.
        try:
            with httpx.Client(
                base_url=f"https://{self._connection.host}", verify=self._verify, timeout=timeout
            ) as http:
                response = http.request(method, path, json=body, headers=all_headers, params=query)
        except httpx.ConnectError as exc:
            raise CliError(f"cannot reach https://{self._connection.host}: {exc}") from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to https://{self._connection.host} failed: {exc}") from None
        if response.status_code >= 400:
            raise CliError(_error_text(response))
        return response

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.call(method, path, body, **kwargs)
        return response.json() if response.content else None

    def pages(self, path: str, body: Any, page_size: int = 1000) -> Iterator[Any]:
        """Every item of a paged query, following ``x-ms-continuation``."""
        continuation: str | None = None
        while True:
            headers = {"x-ms-max-item-count": str(page_size)}
            if continuation:
                headers["x-ms-continuation"] = continuation
            response = self.call("POST", path, body, headers=headers)
            yield from response.json()
            continuation = response.headers.get("x-ms-continuation")
            if not continuation:
                return


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    if isinstance(body, dict):
        message = body.get("message") or body.get("Message") or response.text
        code = body.get("errorCode")
        return f"{message} (HTTP {response.status_code}" + (f", errorCode {code})" if code else ")")
    return f"HTTP {response.status_code}: {response.text[:500]}"
