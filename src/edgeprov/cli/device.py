"""``edgeprov device …``: the device runtime, shaped like ``iotedge …`` (spec/edge-runtime.md §2, §4)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import tomli_w

from edgeprov import __version__
from edgeprov.cli.client import CliError
from edgeprov.cli.common import command, subcommands
from edgeprov.cli.output import print_json
from edgeprov.device.agent import Agent, serve_until_signalled
from edgeprov.device.applied import load_applied, record_applied
from edgeprov.device.backoff import DEFAULT_INITIAL, DEFAULT_MAXIMUM, BackoffSettings
from edgeprov.device.check import CheckResult, Outcome, as_json, run_checks
from edgeprov.device.config import DEFAULT_CONFIG_PATH, load_config
from edgeprov.device.document import ConfigWarning
from edgeprov.device.dps_client import DpsClient
from edgeprov.device.files import PRIVATE_FILE, refuse_overwrite, write_atomic
from edgeprov.device.hub_session import MqttHubSession
from edgeprov.device.identity import Provisioner, changes
from edgeprov.device.legacy import DEFAULT_LEGACY_PATH, import_legacy
from edgeprov.device.log import follow, runtime_log, tail
from edgeprov.device.module_keys import load_master_key
from edgeprov.device.modules import ModuleIdentities
from edgeprov.device.render import check_rendered, render
from edgeprov.device.services import SERVICE, agent_pid, service_manager
from edgeprov.device.settings import DeviceConfig, DpsProvisioning
from edgeprov.device.state import StateDir, default_state_dir, load_identity
from edgeprov.device.status import agent_row, service_states
from edgeprov.device.transport import HttpSettings
from edgeprov.errors import EdgeprovError, ServiceUnreachable

BAD_STATE_LINES = 10
DEFAULT_LOG_LINES = 1000
LIST_MIN_WIDTH = 15


def _state(args: argparse.Namespace) -> StateDir:
    return StateDir(Path(args.state_dir) if args.state_dir else default_state_dir())


def _warn(warnings: tuple[ConfigWarning, ...]) -> None:
    for warning in warnings:
        sys.stderr.write(f"warning: {warning}\n")


def _provisioner(state: StateDir, config: DeviceConfig) -> Provisioner:
    return Provisioner(state, DpsClient(HttpSettings(config.trust_bundle_cert, config.cloud_timeout_sec)))


def _step(doing: str, action: Callable[[], None], done: str) -> None:
    sys.stdout.write(doing)
    sys.stdout.flush()
    action()
    print(done)


def _restart(state: StateDir) -> None:
    manager = service_manager(state)
    _step(f"Stopping {SERVICE}...", manager.stop, "Stopped!")
    _step(f"Starting {SERVICE}...", manager.start, "Started!")


def _provision_now(state: StateDir, config: DeviceConfig, log: logging.Logger) -> None:
    provisioning = config.provisioning
    if isinstance(provisioning, DpsProvisioning):
        print(
            f"Provisioning with {provisioning.endpoint.url} (ID scope {provisioning.id_scope}, "
            f"registration ID {provisioning.registration_id})..."
        )
    try:
        identity = asyncio.run(_provisioner(state, config).provision(provisioning))
    except EdgeprovError as exc:
        log.error("Provisioning failed: %s", exc.message)  # noqa: TRY400 - a reason, not a traceback, for the log
        raise
    log.info("Provisioned: device %s assigned to hub %s", identity.device_id, identity.hub)
    print(f"Provisioned: device {identity.device_id} is assigned to hub {identity.hub}.")


# -- config -------------------------------------------------------------------------------------------------
def _apply(args: argparse.Namespace) -> int:
    state, path = _state(args), Path(args.config)
    loaded = load_config(path)
    _warn(loaded.warnings)
    refused: EdgeprovError | None = None
    state.create()
    with runtime_log(state.log) as log:
        print(f"Note: Symmetric key will be written to {state.key_file}")
        record_applied(state, loaded, path)
        log.info("Configuration applied from %s", path.resolve())
        print("The edgeprov device runtime has been configured successfully!")
        try:
            _provision_if_changed(state, loaded.config, log)
        except ServiceUnreachable as exc:
            print(f"Note: {exc.message}\n  The runtime will keep trying, with backoff, until the service answers.")
        except EdgeprovError as exc:
            refused = exc
    if not args.no_restart:
        print("\nRestarting the runtime for the configuration to take effect...")
        _restart(state)
    print("Done.")
    if refused is not None:
        raise refused
    return 0


def _provision_if_changed(state: StateDir, config: DeviceConfig, log: logging.Logger) -> None:
    provisioning = config.provisioning
    backup = _provisioner(state, config).backup_for(provisioning)
    if backup is not None:
        print(
            f"Provisioning settings unchanged since the last successful run: device {backup.device_id} stays on "
            f"hub {backup.hub} (not provisioning again)."
        )
        return
    previous = load_identity(state)
    if previous is not None:
        described = "; ".join(changes(previous.settings, provisioning.fingerprint()))
        print(f"Provisioning settings changed since the last successful run: {described}. Provisioning again.")
        log.info("Provisioning settings changed since the last successful run: %s", described)
    _provision_now(state, config, log)


def _import(args: argparse.Namespace) -> int:
    source = Path(args.config or DEFAULT_LEGACY_PATH)
    target = Path(args.output or DEFAULT_CONFIG_PATH)
    refuse_overwrite(
        target,
        args.force,
        f"File {target} already exists. Azure IoT Edge has already been configured.\n\n"
        f"To have the configuration take effect, run:\n\n    sudo edgeprov device config apply -c '{target}'\n\n"
        "To replace it with the imported configuration, run this command again with --force.",
    )
    document = import_legacy(source)
    text = f"# Imported from {source} by `edgeprov device config import`.\n\n" + tomli_w.dumps(document)
    write_atomic(target, text.encode(), PRIVATE_FILE)
    _warn(load_config(target).warnings)
    print("The edgeprov device runtime has been configured successfully!")
    print(f"The configuration has been written to {target}")
    print(f"To apply the new configuration to services, run:\n\n    sudo edgeprov device config apply -c '{target}'")
    return 0


def _render(args: argparse.Namespace) -> int:
    template_path = Path(args.template)
    try:
        template = template_path.read_text()
        group_key = Path(args.group_key_file).read_text().strip()
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}") from None
    text = render(template, str(template_path), args.registration_id, group_key, args.hostname or args.registration_id)
    check_rendered(text, group_key, args.output or "<output>")
    if not args.output:
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    message = f"File {target} already exists; run this command again with --force to replace it."
    refuse_overwrite(target, args.force, message)
    write_atomic(target, text.encode(), PRIVATE_FILE)
    print(f"Wrote {target} for registration ID {args.registration_id}.")
    return 0


# -- system ---------------------------------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    state = _state(args)
    services = service_states(state)
    print("System services:")
    for service in services:
        print(f"    {service.name:<24}{service.state}")
    print()
    down = [service.name for service in services if not service.healthy]
    if down:
        # One log for the whole runtime: its last lines are shown once, for all that is down.
        print(f"{', '.join(down)} {'is' if len(down) == 1 else 'are'} in a bad state because:")
        lines = tail(state.log, BAD_STATE_LINES)
        sys.stdout.writelines(lines or ["(nothing logged yet: has 'edgeprov device config apply' been run?)\n"])
        print()
    print("Use 'edgeprov device system logs' to check for non-fatal errors.")
    print("Use 'edgeprov device check' to diagnose connectivity and configuration issues.")
    return 0


def _logs(args: argparse.Namespace) -> int:
    options = argparse.ArgumentParser(prog="edgeprov device system logs --", add_help=False, exit_on_error=False)
    options.add_argument("-f", "--follow", action="store_true")
    options.add_argument("-n", "--lines", type=int, default=DEFAULT_LOG_LINES)
    options.add_argument("-e", "--pager-end", action="store_true")
    options.add_argument("--no-pager", action="store_true")
    extra = [a for a in args.log_args if a != "--"]
    try:
        parsed, unknown = options.parse_known_args(extra)
    except argparse.ArgumentError as exc:
        raise CliError(f"system logs: {exc}") from None
    if unknown:
        raise CliError(f"system logs: unsupported option {unknown[0]!r} (supported: -f, -n N)")
    state = _state(args)

    def write(line: str) -> None:
        sys.stdout.write(line)
        sys.stdout.flush()

    if parsed.follow:
        follow(state.log, write, parsed.lines, lambda: True)
    else:
        sys.stdout.writelines(tail(state.log, parsed.lines))
    return 0


def _system_restart(args: argparse.Namespace) -> int:
    state = _state(args)
    load_applied(state)
    _restart(state)
    return 0


def _system_stop(args: argparse.Namespace) -> int:
    _step(f"Stopping {SERVICE}...", service_manager(_state(args)).stop, "Stopped!")
    return 0


def _reprovision(args: argparse.Namespace) -> int:
    state = _state(args)
    config = load_applied(state).config
    with runtime_log(state.log) as log:
        log.info("Reprovisioning requested by `edgeprov device system reprovision`")
        _provision_now(state, config, log)
    print("Successfully reprovisioned with IoT Hub.")
    if agent_pid(state) is not None:
        _restart(state)
    return 0


# -- list, check, version, run ----------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    state = _state(args)
    agent = load_applied(state).config.agent
    row = agent_row(state, agent.name, agent.image)
    table = [("NAME", "STATUS", "DESCRIPTION", "Config"), (row.name, row.status, row.description, row.config)]
    widths = [max(LIST_MIN_WIDTH, *(len(r[i]) + 1 for r in table)) for i in range(3)]
    for line in table:
        print("".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + line[3])
    return 0


def _check(args: argparse.Namespace) -> int:
    results = asyncio.run(run_checks(Path(args.config), _state(args)))
    if args.output == "json":
        print_json(as_json(results))
    else:
        _print_checks(results, args.verbose)
    failing = {Outcome.ERROR, Outcome.FATAL} | ({Outcome.WARNING} if args.warnings_as_errors else set())
    return 1 if any(r.outcome in failing for r in results) else 0


def _print_checks(results: list[CheckResult], verbose: bool) -> None:
    # The symbols iotedge check prints.
    symbols = {Outcome.OK: "√", Outcome.WARNING: "‼", Outcome.ERROR: "×", Outcome.FATAL: "×"}  # noqa: RUF001
    words = {Outcome.OK: "OK", Outcome.WARNING: "Warning", Outcome.ERROR: "Error", Outcome.FATAL: "Error"}
    section = None
    for result in results:
        if result.outcome is Outcome.SKIPPED and not verbose:
            continue
        if result.section != section:
            section = result.section
            print(f"{'' if result is results[0] else chr(10)}{section}\n{'-' * len(section)}")
        if result.outcome is Outcome.SKIPPED:
            print(f"  {result.description} - skipped")
            continue
        print(f"{symbols[result.outcome]} {result.description} - {words[result.outcome]}")
        for detail in result.details if result.outcome is not Outcome.OK or verbose else ():
            print(f"    {detail}")
    counts = {outcome: sum(r.outcome is outcome for r in results) for outcome in Outcome}
    print(f"\n{counts[Outcome.OK]} check(s) succeeded.")
    if counts[Outcome.WARNING]:
        print(f"{counts[Outcome.WARNING]} check(s) raised warnings. Re-run with --verbose for more details.")
    if counts[Outcome.ERROR] + counts[Outcome.FATAL]:
        errors = counts[Outcome.ERROR] + counts[Outcome.FATAL]
        print(f"{errors} check(s) raised errors. Re-run with --verbose for more details.")
    if counts[Outcome.SKIPPED]:
        print(
            f"{counts[Outcome.SKIPPED]} check(s) were skipped due to errors from other checks. "
            "Re-run with --verbose for more details."
        )


def _version(args: argparse.Namespace) -> int:
    print(f"edgeprov device {__version__}")
    return 0


def _run(args: argparse.Namespace) -> int:
    state = _state(args)
    loaded = load_applied(state)
    config = loaded.config
    http = HttpSettings(config.trust_bundle_cert, config.cloud_timeout_sec)
    backoff = BackoffSettings(args.backoff_initial, args.backoff_max)
    with runtime_log(state.log) as log:
        for warning in loaded.warnings:
            log.warning("%s", warning)
        modules = ModuleIdentities(http, load_master_key(state.master_key))
        session = MqttHubSession(http, config.agent, log)
        agent = Agent(state, config, Provisioner(state, DpsClient(http)), modules, session, backoff, log)
        asyncio.run(serve_until_signalled(agent))
    return 0


# -- the parser ---------------------------------------------------------------------------------------------
def _leaf(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help: str,
) -> argparse.ArgumentParser:
    parser = command(sub, name, _file_errors(handler), help)
    parser.add_argument(
        "--state-dir", help="the runtime's state directory (default: $EDGEPROV_STATE or /var/lib/edgeprov)"
    )
    return parser


def _file_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A file the runtime cannot read or write is a message, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except PermissionError as exc:
            raise CliError(
                f"permission denied: {exc.filename}. Run as root, or give a directory of your own with --state-dir "
                "(or $EDGEPROV_STATE)"
            ) from None
        except OSError as exc:
            raise CliError(f"{exc.filename or 'file'}: {exc.strerror or exc}") from None

    return run


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=str(DEFAULT_CONFIG_PATH), help=f"default {DEFAULT_CONFIG_PATH}")


def register(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    device = root.add_parser("device", help="the device runtime (like iotedge)", description="the device runtime")
    commands = subcommands(device, "device commands")

    config = subcommands(commands.add_parser("config", help="configure the runtime"), "config commands")
    apply = _leaf(config, "apply", _apply, "validate config.toml, store the key, provision, restart the runtime")
    _config_flag(apply)
    apply.add_argument("--no-restart", action="store_true", help="configure and provision, but do not (re)start")
    imported = _leaf(config, "import", _import, "convert an IoT Edge 1.1 config.yaml to config.toml")
    imported.add_argument("-c", "--config", help=f"the old file (default {DEFAULT_LEGACY_PATH})")
    imported.add_argument("-o", "--output", help=f"the new file (default {DEFAULT_CONFIG_PATH})")
    imported.add_argument("-f", "--force", action="store_true", help="overwrite an existing config.toml")
    rendered = _leaf(config, "render", _render, "write a device's config.toml from a template and a group key")
    rendered.add_argument("--template", required=True, help="config.toml with {{registration_id}}, {{device_key}}")
    rendered.add_argument("--registration-id", required=True)
    rendered.add_argument("--group-key-file", required=True, help="file holding the enrollment group's key")
    rendered.add_argument("--hostname", help="value of {{hostname}} (default: the registration id)")
    rendered.add_argument("-o", "--output", help="file to write (default: standard output)")
    rendered.add_argument("-f", "--force", action="store_true", help="overwrite an existing file")

    system = subcommands(commands.add_parser("system", help="the runtime's service"), "system commands")
    _leaf(system, "status", _status, "the runtime's services and their states")
    logs = _leaf(system, "logs", _logs, "the runtime's log; after --: -f to follow, -n N lines")
    logs.add_argument("log_args", nargs=argparse.REMAINDER)
    _leaf(system, "restart", _system_restart, "stop and start the runtime")
    _leaf(system, "stop", _system_stop, "stop the runtime")
    _leaf(system, "reprovision", _reprovision, "provision again now, then restart the runtime")

    _leaf(commands, "list", _list, "the modules the runtime runs")
    check = _leaf(commands, "check", _check, "check the configuration and connectivity")
    _config_flag(check)
    check.add_argument("-o", "--output", choices=("text", "json"), default="text")
    check.add_argument("--verbose", action="store_true", help="show details of passing and skipped checks")
    check.add_argument("--warnings-as-errors", action="store_true")
    _leaf(commands, "version", _version, "the runtime's version")
    run = _leaf(commands, "run", _run, "run the agent (what the systemd unit starts)")
    run.add_argument("--backoff-initial", type=float, default=DEFAULT_INITIAL, help="first retry delay, seconds")
    run.add_argument("--backoff-max", type=float, default=DEFAULT_MAXIMUM, help="longest retry delay, seconds")
