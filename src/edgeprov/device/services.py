"""Starting and stopping the agent: through systemd where its unit is installed, else as a process.

Either way the agent writes ``run/agent.pid``, and liveness is read from it, so ``system status``
says the same under systemd, in a container or in a test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Protocol

from edgeprov.device.state import DEFAULT_STATE_DIR, StateDir
from edgeprov.errors import DeviceRuntimeError

SERVICE = "edgeprov-device"
UNIT = f"{SERVICE}.service"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
POLL = 0.05


def agent_pid(state: StateDir) -> int | None:
    """The pid of a live agent of this state directory, or None."""
    try:
        pid = int(state.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_agent(pid) else None


def _is_agent(pid: int) -> bool:
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    # A zombie has exited; a recycled pid runs something else.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and b"edgeprov" in cmdline


class ServiceManager(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class ProcessManager:
    """The agent as a detached process of its own session, for hosts without systemd and for tests."""

    def __init__(self, state: StateDir) -> None:
        self._state = state

    def start(self) -> None:
        self._state.create()
        command = [sys.executable, "-m", "edgeprov", "device", "run", "--state-dir", str(self._state.root)]
        with self._state.log.open("ab") as log:
            _spawn(command, log)
        deadline = time.monotonic() + START_TIMEOUT
        while agent_pid(self._state) is None:
            if time.monotonic() > deadline:
                raise DeviceRuntimeError("the runtime did not start; see `edgeprov device system logs`")
            time.sleep(POLL)

    def stop(self) -> None:
        pid = agent_pid(self._state)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, STOP_TIMEOUT)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_agent(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def _spawn(command: list[str], log: IO[bytes]) -> None:
    """Start through a shell that exits at once, so the agent is nobody's child left to reap."""
    subprocess.run(
        ["/bin/sh", "-c", '"$@" &', "sh", *command],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        check=True,
    )


class SystemdManager:
    def start(self) -> None:
        _systemctl("restart")

    def stop(self) -> None:
        _systemctl("stop")


def _systemctl(action: str) -> None:
    result = subprocess.run(["systemctl", action, UNIT], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DeviceRuntimeError(
            f"systemctl exited with non-zero status code.\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )


def service_manager(state: StateDir) -> ServiceManager:
    """systemd when it runs this host, the unit is installed and the state directory is the unit's."""
    systemd = Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None
    if systemd and state.root == DEFAULT_STATE_DIR.resolve():
        installed = subprocess.run(["systemctl", "cat", UNIT], capture_output=True, check=False).returncode == 0
        if installed:
            return SystemdManager()
    return ProcessManager(state)
