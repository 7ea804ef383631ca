"""``edgeprov serve``: the provisioning service and its hubs in one command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from edgeprov.server import supervisor
from edgeprov.server.bootstrap import bootstrap, service_file
from edgeprov.server.settings import ServerSettings, default_data_dir
from edgeprov.tls import TlsFiles


def _serve(args: argparse.Namespace) -> int:
    settings = ServerSettings(
        data_dir=Path(args.data) if args.data else default_data_dir(),
        host=args.host,
        https_port=args.https_port,
        mqtt_port=args.mqtt_port,
        hub_hostnames=tuple(dict.fromkeys(name.lower() for name in (args.hub_hostname or ["localhost"]))),
        workers=args.workers,
        database=args.database,
        webhook_timeout=args.webhook_timeout,
        clock_skew=args.clock_skew,
        event_retention=args.event_retention,
    )
    info = bootstrap(settings)
    files = TlsFiles.in_dir(settings.data_dir)
    announce = _announcer()
    announce(("created" if info.created else "using") + f" data directory {settings.data_dir.resolve()}")
    announce(f"ID scope: {info.id_scope}")
    announce(f"connection strings (provisioning service and hubs): {service_file(settings.data_dir).resolve()}")
    announce(f"devices must trust this CA: {files.ca_cert.resolve()}")
    announce(f"hubs: {', '.join(settings.hub_hostnames)}")
    return supervisor.serve(settings, announce)


def _announcer() -> Callable[[str], None]:
    def announce(line: str) -> None:
        sys.stderr.write(f"edgeprov[{os.getpid()}]: {line}\n")
        sys.stderr.flush()

    return announce


def register(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = root.add_parser("serve", help="run the provisioning service and its hubs")
    parser.add_argument("--data", help="data directory (default: $EDGEPROV_DATA or ./edgeprov-data)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--https-port", type=int, default=443, help="HTTPS port (default 443, the cloud's)")
    parser.add_argument("--mqtt-port", type=int, default=8883, help="MQTT over TLS port (default 8883)")
    parser.add_argument(
        "--hub-hostname",
        action="append",
        help="host name of a hub to host (repeatable; "
        "default localhost); the first is also the provisioning service's name",
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the listeners")
    parser.add_argument("--database", help="database URL (default: SQLite in the data directory)")
    parser.add_argument("--webhook-timeout", type=float, default=10.0, help="custom allocation webhook timeout, s")
    parser.add_argument("--clock-skew", type=float, default=300.0, help="seconds a device clock may be off")
    parser.add_argument(
        "--event-retention", type=int, default=100_000, help="telemetry messages kept per hub (default 100,000)"
    )
    parser.set_defaults(handler=_serve)
