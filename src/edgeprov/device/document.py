"""A parsed TOML document that remembers what was read from it, to locate and report mistakes.

Every value the reader asks for is marked as known; what is left afterwards is an unknown key
(a typo, an old name) or a top-level key written after a table header, which TOML silently moves
into that table. Both are warned about with their line, unlike upstream, which ignores them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeprov.device.toml_lines import KeyLines, KeyPath
from edgeprov.errors import ConfigInvalid, located


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    path: str
    line: int | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return located(self.message, self.path, self.line, self.hint)


def dotted(path: KeyPath) -> str:
    return ".".join(path)


class Document:
    def __init__(self, data: dict[str, Any], lines: KeyLines, path: str, top_level_keys: frozenset[str]) -> None:
        self.data = data
        self.lines = lines
        self.path = path
        self._top_level = top_level_keys
        self._known: dict[KeyPath, set[str]] = {}
        self._read: set[KeyPath] = set()
        self._opened: set[KeyPath] = set()

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, path: KeyPath) -> Any:
        """The value at ``path`` (None if absent); a value read whole, tables included."""
        self._known.setdefault(path[:-1], set()).add(path[-1])
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        self._read.add(path)
        return node

    def table(self, path: KeyPath) -> dict[str, Any]:
        """The table at ``path`` ({} if absent), whose keys are then read one by one."""
        value = self.get(path)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"`{dotted(path)}` must be a table", f"[{dotted(path)}] with its keys below it")
        self._read.discard(path)
        self._opened.add(path)
        return value

    def has(self, path: KeyPath) -> bool:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    # -- reporting -------------------------------------------------------------------------------------
    def line(self, path: KeyPath) -> int | None:
        return self.lines.line_of(path)

    def error(self, path: KeyPath, message: str, hint: str | None = None) -> ConfigInvalid:
        return ConfigInvalid(message, path=self.path, line=self.line(path), hint=hint)

    def leftovers(self) -> list[ConfigWarning]:
        """A warning for every key nobody read."""
        return [self._leftover(path) for path in self._unread(self.data, ())]

    def _unread(self, node: dict[str, Any], path: KeyPath) -> Iterator[KeyPath]:
        for key, value in node.items():
            here = (*path, key)
            if here in self._read:
                continue
            if isinstance(value, dict) and here in self._opened:
                yield from self._unread(value, here)
            else:
                yield here

    def _leftover(self, path: KeyPath) -> ConfigWarning:
        key, table = path[-1], path[:-1]
        line = self.line(path)
        if table and key in self._top_level:
            first = self.lines.first_table
            where = f" ([{dotted(first[0])}] on line {first[1]})" if first else ""
            return ConfigWarning(
                self.path,
                line,
                f"`{key}` is a top-level setting, but written after the table header [{dotted(table)}] it "
                f"belongs to that table and is ignored",
                f"move the line `{key} = …` above the first table header{where}",
            )
        known = sorted(self._known.get(table, set()))
        close = difflib.get_close_matches(key, known, n=1)
        place = f"[{dotted(table)}]" if table else "the top level"
        return ConfigWarning(
            self.path,
            line,
            f"unknown key `{key}` in {place} is ignored",
            f"{close[0]} = …" if close else None,
        )
