"""``edgeprov hub configuration …``: configurations, with the flags of ``az iot hub configuration``."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from edgeprov.cli.common import add_output, command, json_object, json_object_or_file, subcommands
from edgeprov.cli.hub_access import add_hub_login, hub_client
from edgeprov.cli.output import Column, emit, field

CONFIGURATION_COLUMNS: list[Column] = [
    ("ID", field("id")),
    ("PRIORITY", field("priority")),
    ("TARGET CONDITION", field("targetCondition")),
    ("TARGETED", field("systemMetrics", "results", "targetedCount")),
    ("APPLIED", field("systemMetrics", "results", "appliedCount")),
    ("CREATED", field("createdTimeUtc")),
]


def _path(args: argparse.Namespace) -> str:
    return f"/configurations/{quote(args.config_id, safe='')}"


def _create(args: argparse.Namespace) -> int:
    content = json_object_or_file(args.content, "--content") or {}
    metrics = json_object_or_file(args.metrics, "--metrics")
    body: dict[str, Any] = {
        "id": args.config_id,
        # az takes the content with or without its {"content": ...} wrapper, and metrics likewise.
        "content": content.get("content", content),
        "targetCondition": args.target_condition,
        "priority": args.priority,
        "labels": json_object(args.labels, "--labels") or {},
    }
    if metrics is not None:
        body["metrics"] = metrics.get("metrics", metrics)
    emit(hub_client(args).json("PUT", _path(args), body), args.output, CONFIGURATION_COLUMNS)
    return 0


def _list(args: argparse.Namespace) -> int:
    found = hub_client(args).json("GET", "/configurations", params={"top": str(args.top)})
    emit(found, args.output, CONFIGURATION_COLUMNS)
    return 0


def _show(args: argparse.Namespace) -> int:
    emit(hub_client(args).json("GET", _path(args)), args.output, CONFIGURATION_COLUMNS)
    return 0


def _delete(args: argparse.Namespace) -> int:
    hub_client(args).call("DELETE", _path(args), headers={"If-Match": args.etag or "*"})
    return 0


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("configuration", help="configurations and deployments (like az iot hub configuration)")
    sub = subcommands(group, "configuration commands")
    create = command(sub, "create", _create, "create a configuration")
    create.add_argument(
        "--content",
        "-k",
        required=True,
        help="the content (modulesContent, moduleContent or deviceContent): JSON or a file",
    )
    create.add_argument(
        "--target-condition", "--tc", default="", help="which twins it targets, e.g. \"tags.env='test'\""
    )
    create.add_argument("--priority", "--pri", type=int, default=0, help="higher wins among configurations")
    create.add_argument("--labels", "--lab", help='labels, a JSON object of strings: {"key": "value"}')
    create.add_argument("--metrics", "-m", help='custom metrics {"queries": {"name": "SELECT ..."}}: JSON or a file')
    listing = command(sub, "list", _list, "the hub's configurations")
    listing.add_argument("--top", type=int, default=100)
    show = command(sub, "show", _show, "one configuration with its metrics")
    delete = command(sub, "delete", _delete, "delete a configuration")
    delete.add_argument("--etag", "-e", help="delete only if its etag is still this")
    for parser in (create, listing, show, delete):
        if parser is not listing:
            parser.add_argument("--config-id", "-c", required=True)
        if parser is not delete:
            add_output(parser, "table" if parser is listing else "json")
        add_hub_login(parser)
