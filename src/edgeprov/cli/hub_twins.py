"""``edgeprov hub device-twin|module-twin …`` and ``edgeprov hub query``."""

from __future__ import annotations

import argparse
from itertools import islice
from typing import Any
from urllib.parse import quote

from edgeprov.cli.common import add_output, command, json_object, subcommands
from edgeprov.cli.hub_access import add_hub_login, hub_client
from edgeprov.cli.output import Column, emit, field

TWIN_COLUMNS: list[Column] = [
    ("DEVICE ID", field("deviceId")),
    ("MODULE ID", field("moduleId")),
    ("STATUS", field("status")),
    ("CONNECTION", field("connectionState")),
    ("VERSION", field("version")),
    ("TAGS", field("tags")),
]


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


def _query(args: argparse.Namespace) -> int:
    """Every result of the query, following continuation tokens (``--top`` stops early)."""
    pages = hub_client(args).pages("/devices/query", {"query": args.query_command}, args.page_size)
    items = list(islice(pages, args.top) if args.top else pages)
    emit(items, args.output, _result_columns(items))
    return 0


def _result_columns(items: list[Any]) -> list[Column]:
    """Twins get the twin columns; projections one column per name, in the order first seen."""
    if items and all(isinstance(i, dict) and "etag" in i and "properties" in i for i in items):
        modules = any("moduleId" in item for item in items)
        return [column for column in TWIN_COLUMNS if modules or column[0] != "MODULE ID"]
    names: dict[str, None] = {}
    for item in items:
        names |= dict.fromkeys(item if isinstance(item, dict) else ())
    return [(name, field(name)) for name in names]


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for noun in ("device", "module"):
        twin = subcommands(groups.add_parser(f"{noun}-twin", help=f"{noun} twins"), f"{noun}-twin commands")
        show = command(twin, "show", _twin_show, f"a {noun}'s twin")
        update = command(twin, "update", _twin_update, "merge tags and desired properties into a twin (null deletes)")
        update.set_defaults(replace=False)
        replace = command(twin, "replace", _twin_update, "replace a twin's tags and desired properties")
        replace.set_defaults(replace=True)
        for parser in (update, replace):
            parser.add_argument("--tags", help="tags, a JSON object")
            parser.add_argument("--desired", help="desired properties, a JSON object")
            parser.add_argument("--etag", "-e", help="change the twin only if its etag is still this")
        for parser in (show, update, replace):
            parser.add_argument("--device-id", "-d", required=True)
            if noun == "module":
                parser.add_argument("--module-id", "-m", required=True)
            add_output(parser, "json")
            add_hub_login(parser)
    query = command(groups, "query", _query, "query twins: SELECT ... FROM devices | devices.modules [WHERE ...]")
    query.add_argument("--query-command", "-q", required=True, help='the query, e.g. "SELECT * FROM devices"')
    query.add_argument("--top", type=int, help="at most this many results")
    query.add_argument("--page-size", type=int, default=1000, help="results asked for per request")
    add_output(query, "table")
    add_hub_login(query)
