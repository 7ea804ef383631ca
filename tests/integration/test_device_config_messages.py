"""Every configuration mistake gets a message naming the file, the line and what to write instead.

Each test runs ``edgeprov device config apply`` on a config.toml with one mistake. Where the mistake
is only a warning (upstream silently ignores it), the endpoint is a closed local port, so the
command goes on to a quick "cannot reach" note.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from edgeprov.device.services import agent_pid
from tests.device_support import Device
from tests.support import CliResult, free_port

KEY = base64.b64encode(os.urandom(32)).decode()
BODY = """[provisioning]
source = "dps"
global_endpoint = "https://localhost:{port}"
id_scope = "0ne00000A0A"

[provisioning.attestation]
method = "symmetric_key"
registration_id = "my-device"
symmetric_key = {{ value = "{key}" }}
"""


def _apply(device: Device, tmp_path: Path, text: str) -> tuple[CliResult, Path]:
    config = tmp_path / "config.toml"
    config.write_text(text)
    result = device.cli("config", "apply", "-c", str(config), "--no-restart")
    assert KEY not in result.out + result.err, "a key was printed"
    assert agent_pid(device.state) is None
    return result, config


def _good() -> str:
    return BODY.format(port=free_port(), key=KEY)


def _failed(result: CliResult, config: Path, line: int, *fragments: str) -> None:
    assert result.code == 1, result.out
    assert result.err.startswith(f"error: {config}, line {line}: "), result.err
    for fragment in fragments:
        assert fragment in result.err


@pytest.mark.spec("edge-runtime.md §2.1 (bad TOML syntax)")
def test_toml_syntax_error(device: Device, tmp_path: Path) -> None:
    text = _good().replace('id_scope = "0ne00000A0A"', 'id_scope = "0ne00000A0A')
    result, config = _apply(device, tmp_path, text)
    _failed(result, config, 4, "TOML syntax error")


@pytest.mark.spec("edge-runtime.md §1 (top-level keys before tables; Azure/iotedge#7422)")
def test_top_level_key_after_a_table_is_warned_about(device: Device, tmp_path: Path) -> None:
    result, config = _apply(device, tmp_path, _good() + 'auto_reprovisioning_mode = "AlwaysOnStartup"\n')
    assert result.code == 0, result.err
    assert (
        f"warning: {config}, line 10: `auto_reprovisioning_mode` is a top-level setting, but written after the table "
        "header [provisioning.attestation] it belongs to that table and is ignored\n"
        "  write instead: move the line `auto_reprovisioning_mode = …` above the first table header "
        "([provisioning] on line 1)"
    ) in result.err


@pytest.mark.spec("edge-runtime.md §6 (MicrosoftDocs/azure-docs#119866)")
def test_scope_id_where_id_scope_belongs(device: Device, tmp_path: Path) -> None:
    result, config = _apply(device, tmp_path, _good().replace("id_scope", "scope_id"))
    _failed(result, config, 4, "`scope_id` is the name", 'write instead: id_scope = "0ne00000A0A"')


@pytest.mark.spec("edge-runtime.md §1.1 (auto_reprovisioning_mode unquoted in template.toml)")
def test_unquoted_enum_value(device: Device, tmp_path: Path) -> None:
    result, config = _apply(device, tmp_path, "auto_reprovisioning_mode = dynamic\n\n" + _good())
    _failed(result, config, 1, "is not quoted", 'write instead: auto_reprovisioning_mode = "Dynamic"')


@pytest.mark.spec("edge-runtime.md §2.1 (both symmetric_key lines)")
@pytest.mark.parametrize(
    ("key_lines", "message"),
    [
        (f'symmetric_key = {{ value = "{KEY}" }}\nsymmetric_key = {{ uri = "file:///k" }}\n', "is set twice"),
        (f'symmetric_key = {{ value = "{KEY}", uri = "file:///k" }}\n', "has both `value` and `uri`"),
    ],
    ids=["two-lines", "one-table"],
)
def test_both_symmetric_key_forms(device: Device, tmp_path: Path, key_lines: str, message: str) -> None:
    text = _good().replace(f'symmetric_key = {{ value = "{KEY}" }}\n', key_lines)
    result, config = _apply(device, tmp_path, text)
    line = 10 if "twice" in message else 9
    _failed(result, config, line, message, 'symmetric_key = { value = "<base64 key>" }')


@pytest.mark.spec("edge-runtime.md §2.1 (yaml-style plain string key)")
def test_plain_string_symmetric_key(device: Device, tmp_path: Path) -> None:
    text = _good().replace(f'{{ value = "{KEY}" }}', f'"{KEY}"')
    result, config = _apply(device, tmp_path, text)
    _failed(result, config, 9, "plain string", 'write instead: symmetric_key = { value = "<the same base64 key>" }')


def test_invalid_base64_key(device: Device, tmp_path: Path) -> None:
    result, config = _apply(device, tmp_path, _good().replace(KEY, KEY[:20] + "!*" + KEY[22:]))
    _failed(result, config, 9, "`symmetric_key`: the key is not valid base64")


def test_unknown_key_is_warned_about_with_a_suggestion(device: Device, tmp_path: Path) -> None:
    result, config = _apply(device, tmp_path, 'hostnme = "edge-01"\n\n' + _good())
    assert result.code == 0, result.err
    assert (
        f"warning: {config}, line 1: unknown key `hostnme` in the top level is ignored\n  write instead: hostname = …"
    ) in result.err


def test_pkcs11_key_is_not_supported_yet(device: Device, tmp_path: Path) -> None:
    text = _good().replace(f'{{ value = "{KEY}" }}', '{ uri = "pkcs11:slot-id=0;object=device-id" }')
    result, config = _apply(device, tmp_path, text)
    _failed(result, config, 9, "PKCS#11 keys are not supported yet", 'symmetric_key = { uri = "file:///')


@pytest.mark.spec("edge-runtime.md §1.1 (cloud_timeout_sec >= 70)")
def test_cloud_timeout_below_70(device: Device, tmp_path: Path) -> None:
    result, config = _apply(device, tmp_path, "cloud_timeout_sec = 10\n" + _good())
    _failed(result, config, 1, "cloud_timeout_sec must be at least 70 seconds", "write instead: cloud_timeout_sec = 70")
