from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.device_support import Device
from tests.support import SDK_DIR, Server, ServiceCaller, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on the cloud's ports (443, 8883), shared by the tests that need the official SDKs."""
    running = start_server(tmp_path_factory.mktemp("srv") / "data", 443, 8883)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def sdk() -> Path:
    """The official SDK clients, installed by scripts/test (``../shared/clients/setup.sh``)."""
    assert (SDK_DIR / "venv" / "bin" / "python").exists(), f"run scripts/test: no SDK harness in {SDK_DIR}"
    assert (SDK_DIR / "node" / "node_modules").is_dir(), f"run scripts/test: no Node SDKs in {SDK_DIR}"
    return SDK_DIR


@pytest.fixture
def hub(server: Server) -> ServiceCaller:
    """Signed calls to the shared server's hub, as its owner policy (``iothubowner``)."""
    return server.hub()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """Unsigned HTTPS to the shared server, trusting its CA."""
    with server.http() as client:
        yield client


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    """A device runtime with its own state directory; its agent is stopped afterwards."""
    runtime = Device(tmp_path / "state")
    try:
        yield runtime
    finally:
        runtime.stop()
