"""TLS as the runtime speaks it (HTTPS and MQTT): the system's trust store plus the ``trust_bundle_cert`` CA."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from edgeprov.errors import ConfigInvalid, ServiceUnreachable


@dataclass(frozen=True, slots=True)
class HttpSettings:
    trust_bundle_cert: Path | None
    timeout: float

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.trust_bundle_cert is not None:
            try:
                context.load_verify_locations(cafile=str(self.trust_bundle_cert))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigInvalid(
                    f"trust_bundle_cert {self.trust_bundle_cert} is not a PEM certificate: {exc}",
                    hint='trust_bundle_cert = "file:///path/to/ca.pem"',
                ) from None
        return context

    def client(self, authority: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"https://{authority}", verify=self.context(), timeout=self.timeout)


def unreachable(url: str, exc: Exception) -> ServiceUnreachable:
    """Name the failure the way a user can act on: TLS trust, refused connection, timeout."""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        text = f"the server's certificate is not trusted ({text}); set trust_bundle_cert to the service's CA"
    return ServiceUnreachable(f"cannot reach {url}: {text}")
