"""The server's settings: one frozen value, built by the CLI and passed to every part."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("edgeprov-data")


def default_data_dir() -> Path:
    return Path(os.environ.get("EDGEPROV_DATA") or DEFAULT_DATA_DIR)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    https_port: int = 443
    mqtt_port: int = 8883
    hub_hostnames: tuple[str, ...] = ("localhost",)
    workers: int = 1
    database: str | None = None
    webhook_timeout: float = 10.0
    clock_skew: float = 300.0
    attempt_retention: int = 100_000
    event_retention: int = 100_000
    retry_after: int = 1

    @property
    def hostname(self) -> str:
        """The name clients use for this service: its first hub host name."""
        return self.hub_hostnames[0]

    def public_host(self, port: int, default_port: int) -> str:
        return self.hostname if port == default_port else f"{self.hostname}:{port}"
