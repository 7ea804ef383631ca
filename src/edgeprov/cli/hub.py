"""``edgeprov hub …``: a hub's identity registry, shaped like ``az iot hub …``.

Device and module identities share their handlers: a command of ``module-identity`` has a
``--module-id`` and reaches ``/devices/{d}/modules/{m}`` where ``device-identity`` reaches
``/devices/{d}``.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from edgeprov.cli import hub_configurations, hub_messages, hub_twins
from edgeprov.cli.client import CliError
from edgeprov.cli.common import add_flag, add_output, command, subcommands
from edgeprov.cli.hub_access import add_hub_login, hub_client, hub_login
from edgeprov.cli.output import Column, emit, field

DEVICE_COLUMNS: list[Column] = [
    ("DEVICE ID", field("deviceId")),
    ("STATUS", field("status")),
    ("EDGE", field("capabilities", "iotEdge")),
    ("AUTH", field("authentication", "type")),
    ("CONNECTION", field("connectionState")),
    ("LAST ACTIVITY", field("lastActivityTime")),
]
MODULE_COLUMNS: list[Column] = [
    ("MODULE ID", field("moduleId")),
    ("DEVICE ID", field("deviceId")),
    ("MANAGED BY", field("managedBy")),
    ("GENERATION ID", field("generationId")),
    ("AUTH", field("authentication", "type")),
    ("CONNECTION", field("connectionState")),
    ("LAST ACTIVITY", field("lastActivityTime")),
]
CONNECTION_STRING_COLUMNS: list[Column] = [("CONNECTION STRING", field("connectionString"))]


def identity_path(args: argparse.Namespace) -> str:
    """``/devices/{d}``, or ``/devices/{d}/modules/{m}`` when the command names a module."""
    path = f"/devices/{quote(args.device_id, safe='')}"
    module = getattr(args, "module_id", None)
    return f"{path}/modules/{quote(module, safe='')}" if module else path


def _hide_keys(identity: dict[str, Any], show_keys: bool) -> dict[str, Any]:
    if not show_keys:
        identity.get("authentication", {}).pop("symmetricKey", None)
    return identity


def _columns(args: argparse.Namespace) -> list[Column]:
    return MODULE_COLUMNS if hasattr(args, "module_id") else DEVICE_COLUMNS


def _identity_list(args: argparse.Namespace) -> int:
    client = hub_client(args)
    if hasattr(args, "module_id"):
        found = client.json("GET", f"/devices/{quote(args.device_id, safe='')}/modules")
    else:
        found = client.json("GET", "/devices", params={"top": str(args.top)})
        if args.edge_enabled is not None:
            found = [d for d in found if d["capabilities"]["iotEdge"] == args.edge_enabled]
    emit([_hide_keys(i, args.show_keys) for i in found], args.output, _columns(args))
    return 0


def _identity_show(args: argparse.Namespace) -> int:
    emit(_hide_keys(hub_client(args).json("GET", identity_path(args)), args.show_keys), args.output, _columns(args))
    return 0


def _identity_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "deviceId": args.device_id,
        "authentication": {
            "type": "sas",
            "symmetricKey": {"primaryKey": args.primary_key, "secondaryKey": args.secondary_key},
        },
    }
    if hasattr(args, "module_id"):
        body["moduleId"] = args.module_id
    else:
        body |= {"status": args.status, "capabilities": {"iotEdge": bool(args.edge_enabled)}}
    created = hub_client(args).json("PUT", identity_path(args), body)
    emit(_hide_keys(created, args.show_keys), args.output, _columns(args))
    return 0


def _identity_update(args: argparse.Namespace) -> int:
    client = hub_client(args)
    identity = client.json("GET", identity_path(args))
    if getattr(args, "status", None):
        identity["status"] = args.status
    if getattr(args, "status_reason", None) is not None:
        identity["statusReason"] = args.status_reason
    if getattr(args, "edge_enabled", None) is not None:
        identity["capabilities"] = {"iotEdge": args.edge_enabled}
    keys = identity["authentication"].setdefault("symmetricKey", {})
    if args.primary_key:
        keys["primaryKey"] = args.primary_key
    if args.secondary_key:
        keys["secondaryKey"] = args.secondary_key
    headers = {"If-Match": args.etag or identity["etag"]}
    saved = client.json("PUT", identity_path(args), identity, headers=headers)
    emit(_hide_keys(saved, args.show_keys), args.output, _columns(args))
    return 0


def _identity_delete(args: argparse.Namespace) -> int:
    hub_client(args).call("DELETE", identity_path(args), headers={"If-Match": args.etag or "*"})
    return 0


def _connection_string(args: argparse.Namespace) -> int:
    """The hub's own connection string, or a device's (or module's) built from its key."""
    login = hub_login(args)
    if args.device_id is None:
        if args.module_id is not None:
            raise CliError("--module-id needs --device-id")
        text = f"HostName={login.host};SharedAccessKeyName={login.key_name};SharedAccessKey={login.key}"
    else:
        identity = hub_client(args).json("GET", identity_path(args))
        auth = identity["authentication"]
        if auth["type"] != "sas":
            raise CliError(f"{args.device_id} authenticates with {auth['type']}, not a symmetric key")
        key = auth["symmetricKey"][f"{args.key_type}Key"]
        # Devices dial the hub by name on the MQTT port: the service port has no place here.
        host = login.host.rsplit(":", 1)[0] if login.host.count(":") == 1 else login.host
        module = f";ModuleId={args.module_id}" if args.module_id else ""
        text = f"HostName={host};DeviceId={args.device_id}{module};SharedAccessKey={key}"
    emit({"connectionString": text}, args.output, CONNECTION_STRING_COLUMNS)
    return 0


def _register_identities(groups: argparse._SubParsersAction[argparse.ArgumentParser], modules: bool) -> None:
    noun = "module" if modules else "device"
    group = groups.add_parser(f"{noun}-identity", help=f"{noun} identities")
    identity = subcommands(group, f"{noun}-identity commands")
    listing = command(identity, "list", _identity_list, f"{noun}s of the hub" if not modules else "a device's modules")
    show = command(identity, "show", _identity_show, f"one {noun} identity")
    create = command(identity, "create", _identity_create, f"create a {noun} with symmetric keys")
    update = command(identity, "update", _identity_update, f"change a {noun} identity")
    delete = command(
        identity, "delete", _identity_delete, f"delete a {noun}" + ("" if modules else " with its modules")
    )
    if not modules:
        listing.add_argument("--top", type=int, default=1000)
        add_flag(listing, "--edge-enabled", "--ee", help="only edge (or, with false, only non-edge) devices")
        add_flag(create, "--edge-enabled", "--ee", help="an IoT Edge device")
        create.add_argument("--status", choices=("enabled", "disabled"), default="enabled")
        add_flag(update, "--edge-enabled", "--ee", help="an IoT Edge device")
        update.add_argument("--status", choices=("enabled", "disabled"))
        update.add_argument("--status-reason")
    for parser in (create, update):
        parser.add_argument("--primary-key", "--pk")
        parser.add_argument("--secondary-key", "--sk")
    for parser in (update, delete):
        parser.add_argument("--etag", "-e")
    for parser in (listing, show, create, update, delete):
        if modules or parser is not listing:
            parser.add_argument("--device-id", "-d", required=True)
        if modules and parser is not listing:
            parser.add_argument("--module-id", "-m", required=True)
        add_hub_login(parser)
    for parser in (listing, show, create, update):
        parser.add_argument("--show-keys", "--keys", action="store_true", help="include the symmetric keys")
        add_output(parser, "table" if parser is listing else "json")
    if modules:
        listing.set_defaults(module_id=None)


def register(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse._SubParsersAction[Any]:
    hub = root.add_parser("hub", help="a hub's registry, twins and configurations (like az iot hub)")
    groups = subcommands(hub, "hub commands")
    _register_identities(groups, modules=False)
    _register_identities(groups, modules=True)
    hub_twins.register(groups)
    hub_configurations.register(groups)
    hub_messages.register(groups)
    strings = subcommands(groups.add_parser("connection-string", help="connection strings"), "connection-string")
    show = command(strings, "show", _connection_string, "the hub's connection string, or a device's or module's")
    show.add_argument("--device-id", "-d", help="a device's connection string (with its key)")
    show.add_argument("--module-id", "-m", help="with --device-id: a module's connection string")
    show.add_argument("--key-type", "--kt", choices=("primary", "secondary"), default="primary")
    add_output(show, "json")
    add_hub_login(show)
    return groups
