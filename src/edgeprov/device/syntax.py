"""TOML syntax errors turned into messages that say the line and what to write instead.

The message never quotes the offending line: it may hold a key.
"""

from __future__ import annotations

import re
import tomllib

from edgeprov.device.settings import ReprovisioningMode
from edgeprov.device.toml_lines import KeyLines, split_dotted
from edgeprov.errors import ConfigInvalid

KEY_HINT = 'symmetric_key = { value = "<base64 key>" }  or  symmetric_key = { uri = "file:///path/to/key" }'
_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$", re.DOTALL)
_BARE_VALUE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.-]+)\s*=\s*(?P<value>[A-Za-z][A-Za-z0-9_.:/-]*)\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.\"'-]+)\s*=")


def syntax_error(exc: tomllib.TOMLDecodeError, lines: KeyLines, path: str) -> ConfigInvalid:
    match = _POSITION.match(str(exc))
    if not match:
        return ConfigInvalid(f"TOML syntax error: {exc}", path=path)
    what, line = match["what"], int(match["line"])
    text = lines.line_text(line)
    if what == "Invalid value" and (bare := _BARE_VALUE.match(text)):
        return _unquoted(bare["key"], bare["value"], path, line)
    if what == "Cannot overwrite a value" and (key := _KEY.match(text)):
        return _duplicate(split_dotted(key["key"])[-1], lines, path, line)
    if what.startswith("Cannot declare"):
        return ConfigInvalid(
            f"a table is declared twice: {what.removeprefix('Cannot declare ')}",
            path=path,
            line=line,
            hint="one [table] header, with all of its keys below it",
        )
    return ConfigInvalid(f"TOML syntax error: {what} (column {match['column']})", path=path, line=line)


def _unquoted(key: str, value: str, path: str, line: int) -> ConfigInvalid:
    suggestion = value
    if key == "auto_reprovisioning_mode":
        by_case = {mode.value.lower(): mode.value for mode in ReprovisioningMode}
        suggestion = by_case.get(value.lower(), ReprovisioningMode.DYNAMIC.value)
    return ConfigInvalid(
        f"the value of `{key}` is not quoted: TOML strings need double quotes",
        path=path,
        line=line,
        hint=f'{key} = "{suggestion}"',
    )


def _duplicate(key: str, lines: KeyLines, path: str, line: int) -> ConfigInvalid:
    first = next((n for p, n in lines.lines.items() if p[-1] == key and n < line), None)
    earlier = f" (first on line {first})" if first else ""
    hint = f"keep one `{key} = …` line and delete or comment out the other"
    if key == "symmetric_key":
        hint = f"one of {KEY_HINT}"
    return ConfigInvalid(f"`{key}` is set twice{earlier}", path=path, line=line, hint=hint)
