"""``edgeprov hub …`` for live devices: direct methods, cloud-to-device messages, the event monitor."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from typing import Any
from urllib.parse import quote

from edgeprov.cli.client import TIMEOUT, CliError
from edgeprov.cli.common import command, subcommands
from edgeprov.cli.hub_access import add_hub_login, hub_client
from edgeprov.cli.output import emit


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


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
