"""``edgeprov hub …``: a hub's identity registry and twins, shaped like ``az iot hub …``."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from edgeprov.cli.client import HUB_API_VERSION, HUB_ENV, ServiceClient
from edgeprov.cli.common import add_flag, add_login, add_output, command, json_object, login_of, subcommands
from edgeprov.cli.output import Column, emit, field

DEVICE_COLUMNS: list[Column] = [
    ("DEVICE ID", field("deviceId")),
    ("STATUS", field("status")),
    ("EDGE", field("capabilities", "iotEdge")),
    ("AUTH", field("authentication", "type")),
    ("CONNECTION", field("connectionState")),
    ("LAST ACTIVITY", field("lastActivityTime")),
]


def hub_client(args: argparse.Namespace) -> ServiceClient:
    login = login_of(args)
    return ServiceClient(login.connection(HUB_ENV, "hub", args.hub_name), login.verify(), HUB_API_VERSION)


def _device_path(device_id: str) -> str:
    return f"/devices/{quote(device_id, safe='')}"


def _hide_keys(device: dict[str, Any], show_keys: bool) -> dict[str, Any]:
    if not show_keys:
        device.get("authentication", {}).pop("symmetricKey", None)
    return device


def _identity_list(args: argparse.Namespace) -> int:
    devices = hub_client(args).json("GET", "/devices", params={"top": str(args.top)})
    if args.edge_enabled is not None:
        devices = [d for d in devices if d["capabilities"]["iotEdge"] == args.edge_enabled]
    emit([_hide_keys(d, args.show_keys) for d in devices], args.output, DEVICE_COLUMNS)
    return 0


def _identity_show(args: argparse.Namespace) -> int:
    device = hub_client(args).json("GET", _device_path(args.device_id))
    emit(_hide_keys(device, args.show_keys), args.output)
    return 0


def _identity_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "deviceId": args.device_id,
        "status": args.status,
        "capabilities": {"iotEdge": bool(args.edge_enabled)},
        "authentication": {
            "type": "sas",
            "symmetricKey": {"primaryKey": args.primary_key, "secondaryKey": args.secondary_key},
        },
    }
    device = hub_client(args).json("PUT", _device_path(args.device_id), body)
    emit(_hide_keys(device, args.show_keys), args.output)
    return 0


def _identity_update(args: argparse.Namespace) -> int:
    client = hub_client(args)
    device = client.json("GET", _device_path(args.device_id))
    if args.status:
        device["status"] = args.status
    if args.status_reason is not None:
        device["statusReason"] = args.status_reason
    if args.edge_enabled is not None:
        device["capabilities"] = {"iotEdge": args.edge_enabled}
    keys = device["authentication"].setdefault("symmetricKey", {})
    if args.primary_key:
        keys["primaryKey"] = args.primary_key
    if args.secondary_key:
        keys["secondaryKey"] = args.secondary_key
    saved = client.json("PUT", _device_path(args.device_id), device, headers={"If-Match": args.etag or device["etag"]})
    emit(_hide_keys(saved, args.show_keys), args.output)
    return 0


def _identity_delete(args: argparse.Namespace) -> int:
    hub_client(args).call("DELETE", _device_path(args.device_id), headers={"If-Match": args.etag or "*"})
    return 0


def _twin_path(args: argparse.Namespace) -> str:
    path = f"/twins/{quote(args.device_id, safe='')}"
    module = getattr(args, "module_id", None)
    return f"{path}/modules/{quote(module, safe='')}" if module else path


def _twin_show(args: argparse.Namespace) -> int:
    emit(hub_client(args).json("GET", _twin_path(args)), args.output)
    return 0


def _twin_update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    tags = json_object(args.tags, "--tags")
    desired = json_object(args.desired, "--desired")
    if tags is not None:
        body["tags"] = tags
    if desired is not None:
        body["properties"] = {"desired": desired}
    method = "PUT" if args.replace else "PATCH"
    emit(hub_client(args).json(method, _twin_path(args), body, headers={"If-Match": args.etag or "*"}), args.output)
    return 0


def add_hub_login(parser: argparse.ArgumentParser) -> None:
    add_login(parser)
    parser.add_argument("--hub-name", "-n", help="the hub's host name (default: the local service's first hub)")


def register(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse._SubParsersAction[Any]:
    hub = root.add_parser("hub", help="a hub's registry and twins (like az iot hub)")
    groups = subcommands(hub, "hub commands")

    identity = subcommands(groups.add_parser("device-identity", help="device identities"), "device-identity commands")
    listing = command(identity, "list", _identity_list, "devices of the hub")
    listing.add_argument("--top", type=int, default=1000)
    add_flag(listing, "--edge-enabled", "--ee", help="only edge (or, with false, only non-edge) devices")
    add_output(listing, "table")
    show = command(identity, "show", _identity_show, "one device identity")
    create = command(identity, "create", _identity_create, "create a device with symmetric keys")
    add_flag(create, "--edge-enabled", "--ee", help="an IoT Edge device")
    create.add_argument("--status", choices=("enabled", "disabled"), default="enabled")
    update = command(identity, "update", _identity_update, "change a device identity")
    add_flag(update, "--edge-enabled", "--ee", help="an IoT Edge device")
    update.add_argument("--status", choices=("enabled", "disabled"))
    update.add_argument("--status-reason")
    delete = command(identity, "delete", _identity_delete, "delete a device, its modules and twin")
    for parser in (create, update):
        parser.add_argument("--primary-key", "--pk")
        parser.add_argument("--secondary-key", "--sk")
    for parser in (update, delete):
        parser.add_argument("--etag", "-e")
    for parser in (show, create, update, delete):
        parser.add_argument("--device-id", "-d", required=True)
    for parser in (listing, show, create, update):
        parser.add_argument("--show-keys", "--keys", action="store_true", help="include the symmetric keys")
    for parser in (show, create, update):
        add_output(parser, "json")
    for parser in (listing, show, create, update, delete):
        add_hub_login(parser)

    twin = subcommands(groups.add_parser("device-twin", help="device twins"), "device-twin commands")
    twin_show = command(twin, "show", _twin_show, "a device's twin")
    twin_update = command(twin, "update", _twin_update, "merge tags and desired properties into a twin")
    twin_update.set_defaults(replace=False)
    twin_replace = command(twin, "replace", _twin_update, "replace a twin's tags and desired properties")
    twin_replace.set_defaults(replace=True)
    for parser in (twin_update, twin_replace):
        parser.add_argument("--tags", help="tags, a JSON object (null deletes on update)")
        parser.add_argument("--desired", help="desired properties, a JSON object (null deletes on update)")
        parser.add_argument("--etag", "-e")
    for parser in (twin_show, twin_update, twin_replace):
        parser.add_argument("--device-id", "-d", required=True)
        add_output(parser, "json")
        add_hub_login(parser)
    return groups
