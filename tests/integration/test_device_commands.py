"""The runtime's other commands: fleet rendering, following the log, version."""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
from pathlib import Path
from typing import IO

from edgeprov import sas
from edgeprov.device.log import runtime_log
from tests.device_support import EXAMPLE_GROUP_KEY, FLEET_TEMPLATE, Device


def test_render_writes_a_ready_config_for_one_device(device: Device, tmp_path: Path) -> None:
    template, group_key, output = tmp_path / "config.toml.tmpl", tmp_path / "group.key", tmp_path / "config.toml"
    template.write_text(FLEET_TEMPLATE)
    group_key.write_text(EXAMPLE_GROUP_KEY + "\n")
    args = ("config", "render", "--template", str(template), "--registration-id", "edge-0042")

    result = device.cli_ok(*args, "--group-key-file", str(group_key), "-o", str(output))

    assert result.out == f"Wrote {output} for registration ID edge-0042.\n"
    text = output.read_text()
    assert sas.derive_device_key_b64(EXAMPLE_GROUP_KEY, "edge-0042") in text
    assert EXAMPLE_GROUP_KEY not in text
    assert 'hostname = "edge-0042"' in text
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    refused = device.cli(*args, "--group-key-file", str(group_key), "-o", str(output))
    assert refused.code == 1
    assert "already exists" in refused.err


def _readline(stream: IO[bytes], timeout: float = 20.0) -> str:
    """One line from a pipe, failing instead of hanging if none comes."""
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([stream], [], [], timeout)
        assert ready, f"no line within {timeout} s (got {line!r})"
        chunk = os.read(stream.fileno(), 1)
        assert chunk, f"the stream ended (got {line!r})"
        line += chunk
    return line.decode()


def test_system_logs_follow(device: Device) -> None:
    device.state.create()
    with runtime_log(device.state.log) as log:
        log.info("first line")
    follower = subprocess.Popen(
        [sys.executable, "-m", "edgeprov", "device", "system", "logs", "--", "-f", "-n", "1"],
        stdout=subprocess.PIPE,
        bufsize=0,
        env={**os.environ, "EDGEPROV_STATE": str(device.root)},
    )
    try:
        assert follower.stdout is not None
        assert _readline(follower.stdout).endswith("[INFO] - first line\n")
        with runtime_log(device.state.log) as log:
            log.warning("second line")
        assert _readline(follower.stdout).endswith("[WARNING] - second line\n")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        if follower.stdout is not None:
            follower.stdout.close()
    assert device.cli_ok("system", "logs").out.count("line\n") == 2


def test_version(device: Device) -> None:
    assert device.cli_ok("version").out == "edgeprov device 0.1.0\n"
