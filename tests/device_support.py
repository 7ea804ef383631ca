"""Test support for the device runtime: its CLI in this process, its state, its config files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeprov.device.services import agent_pid
from edgeprov.device.state import AgentStatus, StateDir, load_status
from tests.support import CliResult, run_cli

WAIT = 30.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait for a condition; fails after ``timeout`` (a bound on the wait, not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Device:
    """One device's runtime: a state directory of its own under the test's tmp_path."""

    root: Path

    @property
    def state(self) -> StateDir:
        return StateDir(self.root)

    def cli(self, *args: str) -> CliResult:
        return run_cli("device", *args, env={"EDGEPROV_STATE": str(self.root)})

    def cli_ok(self, *args: str) -> CliResult:
        result = self.cli(*args)
        assert result.code == 0, f"edgeprov device {' '.join(args)} failed ({result.code}): {result.err}{result.out}"
        return result

    def status(self) -> AgentStatus | None:
        return load_status(self.state)

    def log(self) -> str:
        return self.state.log.read_text() if self.state.log.exists() else ""

    def services(self) -> dict[str, str]:
        out = self.cli_ok("system", "status").out
        rows = [line.split(None, 1) for line in out.splitlines() if line.startswith("    ")]
        return {name: state.strip() for name, state in rows}

    def wait_healthy(self) -> None:
        wait_for(lambda: all(s == "Running" for s in self.services().values()), "all services Running")

    def stop(self) -> None:
        self.cli("system", "stop")
        pid = agent_pid(self.state)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def short_backoff_agent(device: Device) -> Iterator[subprocess.Popen[bytes]]:
    """``edgeprov device run`` with retry delays of 0.025 s to 0.4 s; stopped (SIGTERM) when the block ends.

    Tests count and order the retries in the runtime's log; they never time them.
    """
    agent = subprocess.Popen(
        [
            sys.executable, "-m", "edgeprov", "device", "run", "--state-dir", str(device.root),
            "--backoff-initial", "0.05", "--backoff-max", "0.4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield agent
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()


def dps_config(
    endpoint: str,
    id_scope: str,
    registration_id: str,
    key_line: str,
    ca: Path,
    extra_top: str = "",
) -> str:
    """The config.toml of spec/edge-runtime.md §1.2, pointed at our service and trusting its CA."""
    return f"""{extra_top}hostname = "{registration_id}"
trust_bundle_cert = "{ca.resolve().as_uri()}"

[provisioning]
source = "dps"
global_endpoint = "{endpoint}"
id_scope = "{id_scope}"

[provisioning.attestation]
method = "symmetric_key"
registration_id = "{registration_id}"
{key_line}
"""


# spec/dps-protocol.md §2.4's example group key, and a fleet template for `config render`.
EXAMPLE_GROUP_KEY = "yzA0g1aFnPFHZFmviKjl/2VXQ3/BSHEz67ZTi7J+iFijTemU0PTL+XH+XBpPUGiEaE+HaOybHgy5O1vw4PFrUg=="
FLEET_TEMPLATE = """hostname = "{{hostname}}"

[provisioning]
source = "dps"
global_endpoint = "https://dps.example"
id_scope = "0ne00000A0A"

[provisioning.attestation]
method = "symmetric_key"
registration_id = "{{registration_id}}"
symmetric_key = { value = "{{ device_key }}" }
"""
