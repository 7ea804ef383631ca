"""Where each key of a TOML document is written.

``tomllib`` hands back values without positions, but every configuration message names the line
to fix. This scans the text for table headers and ``key =`` lines, which is all a message needs;
a key inside an inline table is placed on the line of the table's own key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KeyPath = tuple[str, ...]

_PART = r'(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_PARTS = re.compile(_PART)


def split_dotted(text: str) -> KeyPath:
    return tuple(part.strip("\"'") for part in _PARTS.findall(text))


@dataclass(frozen=True, slots=True)
class KeyLines:
    """Line numbers (from 1) of the keys and table headers of one TOML text."""

    lines: dict[KeyPath, int]
    first_table: tuple[KeyPath, int] | None
    text: tuple[str, ...]

    @classmethod
    def scan(cls, text: str) -> KeyLines:
        lines: dict[KeyPath, int] = {}
        first_table: tuple[KeyPath, int] | None = None
        table: KeyPath = ()
        in_multiline = False
        for number, line in enumerate(text.splitlines(), start=1):
            # A multi-line string's body holds no keys: skip it.
            quotes = line.count('"""') + line.count("'''")
            if in_multiline:
                in_multiline = quotes % 2 == 0
                continue
            in_multiline = quotes % 2 == 1
            if header := _HEADER.match(line):
                table = split_dotted(header.group(1))
                lines.setdefault(table, number)
                first_table = first_table or (table, number)
            elif key := _KEY.match(line):
                lines.setdefault(table + split_dotted(key.group(1)), number)
        return cls(lines, first_table, tuple(text.splitlines()))

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest written ancestor (an inline table's key)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def line_text(self, number: int) -> str:
        return self.text[number - 1] if 0 < number <= len(self.text) else ""
