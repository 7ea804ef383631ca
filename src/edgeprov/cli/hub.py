"""``edgeprov hub …``: a hub's identity registry and twins, shaped like ``az iot hub …``."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from typing import Any
from urllib.parse import quote

from edgeprov.cli.client import HUB_API_VERSION, HUB_ENV, TIMEOUT, CliError, ServiceClient
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


def _invoke_method(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.method_payload)
    except json.JSONDecodeError as exc:
        raise CliError(f"--method-payload is not valid JSON ({exc.msg}): {args.method_payload[:80]}") from None
    body = {
        "methodName": args.method_name,
        "payload": payload,
        "responseTimeoutInSeconds": args.timeout,
        "connectTimeoutInSeconds": args.connect_timeout,
    }
    path = f"/twins/{quote(args.device_id, safe='')}"
    if getattr(args, "module_id", None):
        path += f"/modules/{quote(args.module_id, safe='')}"
    patience = args.timeout + args.connect_timeout + TIMEOUT
    emit(hub_client(args).json("POST", f"{path}/methods", body, timeout=patience), "json")
    return 0


def _c2d_send(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"data": args.message_data, "properties": _props(args.props)}
    for name in ("message_id", "correlation_id", "content_type", "content_encoding", "ack", "user_id"):
        value = getattr(args, name)
        if value is not None:
            body[_camel(name)] = value
    path = f"/edgeprov/hub/devices/{quote(args.device_id, safe='')}/messages"
    emit(hub_client(args).json("POST", path, body), "json")
    return 0


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


def _props(text: str | None) -> dict[str, str]:
    """``k=v;k2=v2``, as ``az iot device c2d-message send --props`` takes them."""
    props: dict[str, str] = {}
    for part in filter(None, (text or "").split(";")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CliError(f"--props takes key=value pairs separated by ';', not {part!r}")
        props[key.strip()] = value
    return props


def _monitor_events(args: argparse.Namespace) -> int:
    """Print telemetry as ``az iot hub monitor-events`` does, until --timeout seconds pass without any."""
    client = hub_client(args)
    since = args.enqueued_time if args.enqueued_time is not None else int(time.time() * 1000)
    shown = set(args.properties or [])
    if "all" in shown:
        shown = {"sys", "app", "anno"}
    target = f"filtering on device: {args.device_id}, " if args.device_id else ""
    sys.stderr.write(f"Starting event monitor, {target}use ctrl-c to stop...\n")
    after, idle_since = 0, time.monotonic()
    while not args.timeout or time.monotonic() - idle_since < args.timeout:
        wait = min(10.0, args.timeout - (time.monotonic() - idle_since)) if args.timeout else 10.0
        params = {"after": str(after), "since": str(since), "wait": f"{max(wait, 0):.1f}"}
        if args.device_id:
            params["deviceId"] = args.device_id
        page = client.json("GET", "/edgeprov/hub/events", params=params, timeout=TIMEOUT + wait)
        after = page["next"]
        for event in page["events"]:
            sys.stdout.write(json.dumps(_event_view(event, shown), indent=4, ensure_ascii=False) + "\n")
            idle_since = time.monotonic()
        sys.stdout.flush()
    return 0


def _event_view(event: dict[str, Any], shown: set[str]) -> dict[str, Any]:
    system = event["systemProperties"]
    view: dict[str, Any] = {
        "origin": event["deviceId"],
        "module": event["moduleId"],
        "interface": system.get("dt-dataschema", ""),
        "component": system.get("dt-subject", ""),
        "payload": _payload(base64.b64decode(event["body"]), system.get("content-type", "")),
    }
    if "anno" in shown:
        view["annotations"] = {
            "iothub-connection-device-id": event["deviceId"],
            "iothub-connection-module-id": event["moduleId"] or None,
            "iothub-enqueuedtime": event["enqueuedTimeMs"],
            "iothub-message-source": "Telemetry",
            "x-opt-sequence-number": event["sequenceNumber"],
            "x-opt-enqueued-time": event["enqueuedTimeMs"],
        }
    properties: dict[str, Any] = {}
    if "sys" in shown:
        properties["system"] = system
    if "app" in shown:
        properties["application"] = event["properties"]
    if properties:
        view["properties"] = properties
    return {"event": view}


def _payload(body: bytes, content_type: str) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return repr(body)
    if "json" in content_type or text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def _register_messaging(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    monitor = command(groups, "monitor-events", _monitor_events, "print telemetry as devices send it")
    monitor.add_argument("--device-id", "-d")
    monitor.add_argument(
        "--properties", "--props", "-p", nargs="*", choices=("sys", "app", "anno", "all"), help="what to show"
    )
    monitor.add_argument(
        "--timeout", "-t", type=float, default=300, help="stop after this many seconds without a message (0: never)"
    )
    monitor.add_argument(
        "--enqueued-time", "--et", "-e", type=int, help="start at this time, in ms since the epoch (default: now)"
    )
    c2d = subcommands(groups.add_parser("c2d-message", help="cloud-to-device messages"), "c2d-message commands")
    send = command(c2d, "send", _c2d_send, "queue a message for a device (kept until it connects)")
    send.add_argument("--device-id", "-d", required=True)
    send.add_argument("--data", "--da", dest="message_data", default="Ping from edgeprov", help="message body")
    send.add_argument("--props", help="application properties, 'k=v;k2=v2'")
    send.add_argument("--message-id", "--mid")
    send.add_argument("--correlation-id", "--cid")
    send.add_argument("--user-id", "--uid")
    send.add_argument("--content-type", "--ct")
    send.add_argument("--content-encoding", "--ce")
    send.add_argument("--ack", choices=("positive", "negative", "full"))
    device_method = command(groups, "invoke-device-method", _invoke_method, "call a direct method on a device")
    module_method = command(groups, "invoke-module-method", _invoke_method, "call a direct method on a module")
    module_method.add_argument("--module-id", "-m", required=True)
    for parser in (device_method, module_method):
        parser.add_argument("--device-id", "-d", required=True)
        parser.add_argument("--method-name", "--mn", required=True)
        parser.add_argument("--method-payload", "--mp", default="{}", help="JSON payload")
        parser.add_argument("--timeout", "--to", type=int, default=30, help="seconds to wait for the answer")
        parser.add_argument("--connect-timeout", "--cto", type=int, default=0, help="seconds to wait for a connection")
    for parser in (monitor, device_method, module_method):
        add_hub_login(parser)
    add_hub_login(send, data_flag="--data-dir")


def add_hub_login(parser: argparse.ArgumentParser, data_flag: str = "--data") -> None:
    add_login(parser, data_flag)
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
    _register_messaging(groups)
    return groups
