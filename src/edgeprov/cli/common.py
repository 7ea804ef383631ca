"""Argument helpers shared by the command groups."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeprov.cli.client import CliError, Login

Handler = Callable[[argparse.Namespace], int]

TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")


def three_state(value: str) -> bool:
    """``--flag`` alone means true; ``--flag false`` says so (like ``az``'s three-state flags)."""
    lowered = value.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")


def add_flag(parser: argparse.ArgumentParser, *names: str, help: str) -> None:
    parser.add_argument(*names, nargs="?", const=True, default=None, type=three_state, help=help)


def json_object(text: str | None, flag: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{flag} is not valid JSON ({exc.msg} at character {exc.pos}): {text[:80]}") from None
    if not isinstance(value, dict):
        raise CliError(f'{flag} must be a JSON object, e.g. \'{{"environment": "test"}}\'')
    return value


def json_object_or_file(text: str | None, flag: str) -> dict[str, Any] | None:
    """A JSON object given inline or as the path of a file holding it (as ``az`` takes them)."""
    if text is not None and not text.lstrip().startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise CliError(
                f"{flag}: {text[:80]} is neither a JSON object nor a readable file ({exc.strerror})"
            ) from None
    return json_object(text, flag)


def add_login(parser: argparse.ArgumentParser, data_flag: str = "--data") -> None:
    """``data_flag`` names the data-directory flag where ``--data`` means something else (a message body)."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--login",
        "-l",
        help="service connection string (default: $EDGEPROV_*_CONNECTION_STRING, then the local data directory)",
    )
    group.add_argument("--ca", help="CA certificate to trust (default: $EDGEPROV_CA, then the data directory's)")
    group.add_argument(
        data_flag,
        dest="data",
        type=str,
        default=None,
        help="local data directory (default: $EDGEPROV_DATA or ./edgeprov-data)",
    )


def add_output(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--output", "-o", choices=("json", "table"), default=default, help="output format")


def login_of(args: argparse.Namespace) -> Login:
    return Login(args.login, args.ca, Path(args.data) if args.data else None)


def subcommands(parser: argparse.ArgumentParser, title: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    sub = parser.add_subparsers(title=title, metavar="COMMAND")
    sub.required = True
    return sub


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler, help: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(handler=handler)
    return parser
