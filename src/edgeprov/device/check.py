"""``edgeprov device check``: the checks of ``iotedge check`` that apply to this runtime (§4.1)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import platform
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from edgeprov import __version__
from edgeprov.clock import iso
from edgeprov.device.applied import applied_record
from edgeprov.device.config import LoadedConfig, load_config
from edgeprov.device.hub_session import MQTT_PORT
from edgeprov.device.mqtt_client import open_tls
from edgeprov.device.services import agent_pid
from edgeprov.device.settings import DpsProvisioning
from edgeprov.device.state import Phase, StateDir, load_identity, load_status
from edgeprov.device.transport import HttpSettings
from edgeprov.errors import EdgeprovError

CLOCK_SKEW_WARNING = 10.0
HANDSHAKE_TIMEOUT = 10.0
CONFIGURATION = "Configuration checks"
CONNECTIVITY = "Connectivity checks"


class Outcome(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    FATAL = "fatal"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CheckResult:
    id: str
    section: str
    description: str
    outcome: Outcome
    details: tuple[str, ...] = ()


@dataclass
class _Context:
    config_path: Path
    state: StateDir
    loaded: LoadedConfig | None = None
    server_date: float | None = None
    failed: set[str] = field(default_factory=set)


Check = Callable[[_Context], Awaitable[tuple[Outcome, list[str]]]]


class _Skip(Exception):
    pass


async def _well_formed(ctx: _Context) -> tuple[Outcome, list[str]]:
    try:
        ctx.loaded = load_config(ctx.config_path)
    except EdgeprovError as exc:
        return Outcome.FATAL, exc.message.splitlines()
    warnings = [str(w) for w in ctx.loaded.warnings]
    return (Outcome.WARNING if warnings else Outcome.OK), warnings


async def _up_to_date(ctx: _Context) -> tuple[Outcome, list[str]]:
    record = applied_record(ctx.state)
    if record is None:
        return Outcome.WARNING, [
            f"{ctx.state.applied_config} does not exist. Did you run 'edgeprov device config apply'?"
        ]
    assert ctx.loaded is not None
    if record.sha256 != ctx.loaded.sha256:
        return Outcome.WARNING, [
            f"{ctx.config_path} changed since it was applied ({record.applied_at}). "
            f"Run 'edgeprov device config apply -c {ctx.config_path}' for the change to take effect."
        ]
    return Outcome.OK, []


async def _key_file(ctx: _Context) -> tuple[Outcome, list[str]]:
    path = ctx.state.key_file
    try:
        info = path.stat()
    except FileNotFoundError:
        return Outcome.ERROR, [f"{path} does not exist. Run 'edgeprov device config apply'."]
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return Outcome.ERROR, [f"{path} has mode {mode:04o}: others can read the device key. Run: chmod 600 {path}"]
    if info.st_uid != os.geteuid():
        return Outcome.WARNING, [f"{path} is owned by uid {info.st_uid}, not by the runtime's uid {os.geteuid()}"]
    return Outcome.OK, []


async def _provisioned(ctx: _Context) -> tuple[Outcome, list[str]]:
    identity = load_identity(ctx.state)
    if identity is None:
        status = load_status(ctx.state)
        why = f" ({status.identity_detail})" if status and status.identity_detail else ""
        return Outcome.ERROR, [f"the device has not been provisioned yet{why}. See 'edgeprov device system logs'."]
    assert ctx.loaded is not None
    if identity.settings != ctx.loaded.config.provisioning.fingerprint():
        return Outcome.WARNING, [
            f"device {identity.device_id} on {identity.hub} was provisioned with other settings than config.toml's. "
            "Run 'edgeprov device config apply'."
        ]
    return Outcome.OK, [f"device {identity.device_id} on hub {identity.hub}"]


async def _dps_endpoint(ctx: _Context) -> tuple[Outcome, list[str]]:
    assert ctx.loaded is not None
    provisioning = ctx.loaded.config.provisioning
    if not isinstance(provisioning, DpsProvisioning):
        raise _Skip
    response = await _handshake(ctx, provisioning.endpoint.authority)
    date = response.headers.get("date")
    ctx.server_date = email.utils.parsedate_to_datetime(date).timestamp() if date else None
    return Outcome.OK, []


async def _clock(ctx: _Context) -> tuple[Outcome, list[str]]:
    if ctx.server_date is None:
        raise _Skip
    offset = time.time() - ctx.server_date
    if abs(offset) >= CLOCK_SKEW_WARNING:
        return Outcome.WARNING, [
            f"Time on the device is {abs(offset):.0f} s {'ahead of' if offset > 0 else 'behind'} the provisioning "
            "service's. This may cause problems connecting to IoT Hub: tokens are valid for 30 seconds."
        ]
    return Outcome.OK, []


async def _hub(ctx: _Context) -> tuple[Outcome, list[str]]:
    identity = load_identity(ctx.state)
    if identity is None:
        raise _Skip
    await _handshake(ctx, identity.hub)
    return Outcome.OK, []


async def _hub_mqtt(ctx: _Context) -> tuple[Outcome, list[str]]:
    """TLS to the hub's MQTT port, without a CONNECT: one as the device would take over the agent's connection."""
    identity = load_identity(ctx.state)
    if identity is None:
        raise _Skip
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        _, writer = await open_tls(identity.hub, MQTT_PORT, _settings(ctx).context())
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), HANDSHAKE_TIMEOUT)
    return Outcome.OK, []


async def _hub_session(ctx: _Context) -> tuple[Outcome, list[str]]:
    """The running agent's own word on its MQTT session: what the hub connection really is now."""
    status = load_status(ctx.state)
    if agent_pid(ctx.state) is None or status is None:
        return Outcome.WARNING, ["the runtime is not running. Start it with 'edgeprov device system restart'."]
    if status.hub is Phase.READY:
        return Outcome.OK, [status.hub_detail]
    return Outcome.ERROR, [
        f"the runtime is not connected to its hub: {status.hub_detail or 'connecting'}",
        "See 'edgeprov device system logs'.",
    ]


async def _handshake(ctx: _Context, authority: str) -> httpx.Response:
    async with _settings(ctx).client(authority) as client:
        return await client.get("/")


def _settings(ctx: _Context) -> HttpSettings:
    assert ctx.loaded is not None
    return HttpSettings(ctx.loaded.config.trust_bundle_cert, HANDSHAKE_TIMEOUT)


CHECKS: tuple[tuple[str, str, str, Check, tuple[str, ...]], ...] = (
    ("config-well-formed", CONFIGURATION, "config.toml is well-formed", _well_formed, ()),
    ("config-up-to-date", CONFIGURATION, "configuration up-to-date with config.toml", _up_to_date, ()),
    ("key-file", CONFIGURATION, "device key file is present with safe permissions", _key_file, ()),
    ("identity-provisioned", CONFIGURATION, "device identity is provisioned", _provisioned, ()),
    (
        "host-connect-dps-endpoint",
        CONNECTIVITY,
        "host can connect to and perform TLS handshake with DPS endpoint",
        _dps_endpoint,
        (),
    ),
    (
        "host-local-time",
        CONNECTIVITY,
        "host time is close to reference time",
        _clock,
        ("host-connect-dps-endpoint",),
    ),
    (
        "host-connect-iothub-https",
        CONNECTIVITY,
        "host can connect to and perform TLS handshake with iothub HTTPS port",
        _hub,
        ("identity-provisioned",),
    ),
    (
        "host-connect-iothub-mqtt",
        CONNECTIVITY,
        "host can connect to and perform TLS handshake with iothub MQTT port",
        _hub_mqtt,
        ("identity-provisioned",),
    ),
    (
        "hub-session-connected",
        CONNECTIVITY,
        "runtime is connected to its hub over MQTT",
        _hub_session,
        ("identity-provisioned",),
    ),
)


async def run_checks(config_path: Path, state: StateDir) -> list[CheckResult]:
    """Every check in order; a fatal result stops the rest, a failed dependency skips its dependents."""
    ctx = _Context(config_path, state)
    results: list[CheckResult] = []
    fatal = False
    for check_id, section, description, check, needs in CHECKS:
        if fatal or any(need in ctx.failed for need in needs):
            results.append(CheckResult(check_id, section, description, Outcome.SKIPPED))
            continue
        try:
            outcome, details = await check(ctx)
        except _Skip:
            outcome, details = Outcome.SKIPPED, []
        except (httpx.HTTPError, EdgeprovError, OSError) as exc:
            outcome, details = Outcome.ERROR, [getattr(exc, "message", None) or str(exc) or type(exc).__name__]
        if outcome in (Outcome.ERROR, Outcome.FATAL):
            ctx.failed.add(check_id)
        fatal = outcome is Outcome.FATAL
        results.append(CheckResult(check_id, section, description, outcome, tuple(details)))
    return results


def as_json(results: list[CheckResult]) -> dict[str, Any]:
    """The shape of ``iotedge check -o json``."""
    return {
        "additional_info": {
            "now": iso(time.time()),
            "os": {"id": platform.system().lower(), "version_id": platform.release()},
            "system_info": {"arch": platform.machine()},
            "versions": {"edgeprov": __version__},
        },
        "checks": {
            r.id: {"result": {"result": str(r.outcome), "details": list(r.details)}, "additional_info": {}}
            for r in results
        },
    }
