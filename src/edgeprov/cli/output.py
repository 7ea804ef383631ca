"""Printing results: JSON for scripts, tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

Column = tuple[str, Callable[[Any], Any]]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_table(rows: Sequence[Any], columns: Sequence[Column]) -> None:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for title, _ in columns:
        table.add_column(title, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(pick(row)) for _, pick in columns))
    Console(soft_wrap=True, width=max(Console().width, 160)).print(table)


def emit(value: Any, output: str, columns: Sequence[Column] | None = None) -> None:
    """A listing prints a table unless JSON is asked for; anything else prints JSON."""
    if output == "table" and columns is not None and isinstance(value, list):
        print_table(value, columns)
    elif output == "table" and columns is not None and isinstance(value, dict):
        print_table([value], columns)
    else:
        print_json(value)


def field(*path: str) -> Callable[[Any], Any]:
    def pick(row: Any) -> Any:
        for name in path:
            if not isinstance(row, dict):
                return None
            row = row.get(name)
        return row

    return pick


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
