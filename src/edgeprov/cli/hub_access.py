"""How every ``edgeprov hub …`` command reaches its hub: the login, the client, the shared flags."""

from __future__ import annotations

import argparse

from edgeprov.cli.client import HUB_API_VERSION, HUB_ENV, ConnectionString, ServiceClient
from edgeprov.cli.common import add_login, login_of


def hub_login(args: argparse.Namespace) -> ConnectionString:
    return login_of(args).connection(HUB_ENV, "hub", args.hub_name)


def hub_client(args: argparse.Namespace) -> ServiceClient:
    return ServiceClient(hub_login(args), login_of(args).verify(), HUB_API_VERSION)


def add_hub_login(parser: argparse.ArgumentParser, data_flag: str = "--data") -> None:
    add_login(parser, data_flag)
    parser.add_argument("--hub-name", "-n", help="the hub's host name (default: the local service's first hub)")
