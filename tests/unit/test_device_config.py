"""config.toml parsing: the forms upstream accepts, the defaults, and the located refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from edgeprov.device.config import parse_config
from edgeprov.device.settings import (
    DEFAULT_AGENT_IMAGE,
    DpsProvisioning,
    Endpoint,
    ManualProvisioning,
    ReprovisioningMode,
)
from edgeprov.device.toml_lines import KeyLines
from edgeprov.errors import ConfigInvalid

KEY_BYTES = bytes(range(32))
KEY = base64.b64encode(KEY_BYTES).decode()
DPS = f"""[provisioning]
source = "dps"
global_endpoint = "https://global.azure-devices-provisioning.net/some/path"
id_scope = "0ne00000A0A"

[provisioning.attestation]
method = "symmetric_key"
registration_id = "my-device"
symmetric_key = {{ value = "{KEY}" }}
"""


def _dps(text: str) -> DpsProvisioning:
    provisioning = parse_config(text, "config.toml").config.provisioning
    assert isinstance(provisioning, DpsProvisioning)
    return provisioning


def _refusal(text: str) -> ConfigInvalid:
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text, "config.toml")
    return caught.value


@pytest.mark.spec("edge-runtime.md §1.1, §1.2")
def test_dps_symmetric_key_and_defaults() -> None:
    loaded = parse_config(DPS, "config.toml")
    config = loaded.config
    assert loaded.warnings == ()
    assert config.auto_reprovisioning_mode is ReprovisioningMode.DYNAMIC
    assert config.cloud_timeout_sec == 70
    assert config.agent.name == "edgeAgent"
    assert config.agent.image == DEFAULT_AGENT_IMAGE
    assert config.moby_runtime.uri == "unix:///var/run/docker.sock"
    assert config.listen.management_uri == "fd://aziot-edged.mgmt.socket"
    provisioning = _dps(DPS)
    # Only scheme, host and port of global_endpoint are used.
    assert provisioning.endpoint == Endpoint("global.azure-devices-provisioning.net", 443)
    assert provisioning.key.raw == KEY_BYTES
    assert KEY not in repr(config)


@pytest.mark.spec("edge-runtime.md §1.2 (unpadded base64 accepted)")
def test_unpadded_base64_key() -> None:
    key = base64.b64encode(bytes(range(16))).decode()
    assert key.endswith("==")
    assert _dps(DPS.replace(KEY, key.rstrip("="))).key.raw == bytes(range(16))


@pytest.mark.spec("edge-runtime.md §1.2 (uri: raw key bytes)")
def test_key_from_file_uri(tmp_path: Path) -> None:
    key_file = tmp_path / "device-id"
    key_file.write_bytes(KEY_BYTES)
    text = DPS.replace(f'{{ value = "{KEY}" }}', f'{{ uri = "{key_file.as_uri()}" }}')
    assert _dps(text).key.raw == KEY_BYTES


def test_key_file_missing_names_the_line(tmp_path: Path) -> None:
    error = _refusal(DPS.replace(f'{{ value = "{KEY}" }}', f'{{ uri = "{(tmp_path / "nope").as_uri()}" }}'))
    assert error.line == 9
    assert "cannot read the key file" in error.message


def test_relative_file_uri_is_refused() -> None:
    error = _refusal(DPS.replace(f'{{ value = "{KEY}" }}', '{ uri = "file://keys/device-id" }'))
    assert "write three slashes" in error.message


@pytest.mark.spec("edge-runtime.md §1.3")
def test_manual_connection_string() -> None:
    text = f'[provisioning]\nsource = "manual"\nconnection_string = "HostName=hub.example;DeviceId=d1;SharedAccessKey={KEY}"\n'
    provisioning = parse_config(text, "c").config.provisioning
    assert provisioning == ManualProvisioning("hub.example", "d1", provisioning.key)
    assert provisioning.key.raw == KEY_BYTES


@pytest.mark.spec("edge-runtime.md §1.3")
def test_manual_connection_string_missing_part() -> None:
    error = _refusal('[provisioning]\nsource = "manual"\nconnection_string = "HostName=hub;SharedAccessKey=abcd"\n')
    assert 'required parameter "DeviceId" is missing' in error.message
    assert error.line == 3


@pytest.mark.spec("edge-runtime.md §1.3")
def test_manual_explicit_sas() -> None:
    text = f"""[provisioning]
source = "manual"
iothub_hostname = "hub.example"
device_id = "d1"

[provisioning.authentication]
method = "sas"
device_id_pk = {{ value = "{KEY}" }}
"""
    provisioning = parse_config(text, "c").config.provisioning
    assert isinstance(provisioning, ManualProvisioning)
    assert (provisioning.iothub_hostname, provisioning.device_id) == ("hub.example", "d1")


def test_manual_with_both_forms_says_which() -> None:
    text = f'[provisioning]\nsource = "manual"\nconnection_string = "HostName=h;DeviceId=d;SharedAccessKey={KEY}"\ndevice_id = "d"\n'
    error = _refusal(text)
    assert "both `connection_string` and `device_id`" in error.message
    assert error.line == 4


@pytest.mark.parametrize("mode", list(ReprovisioningMode))
def test_reprovisioning_modes(mode: ReprovisioningMode) -> None:
    config = parse_config(f'auto_reprovisioning_mode = "{mode.value}"\n' + DPS, "c").config
    assert config.auto_reprovisioning_mode is mode


def test_reprovisioning_mode_is_case_sensitive() -> None:
    error = _refusal('auto_reprovisioning_mode = "alwaysonstartup"\n' + DPS)
    assert error.hint == 'auto_reprovisioning_mode = "AlwaysOnStartup"'
    assert error.line == 1


def test_nested_mode_with_dps_is_refused() -> None:
    error = _refusal('parent_hostname = "gateway"\n' + DPS)
    assert "DPS provisioning is not supported in nested mode" in error.message


def test_agent_and_runtime_tables_validated() -> None:
    error = _refusal(DPS + '\n[agent]\nname = ""\n')
    assert "module name cannot be empty" in error.message
    assert error.line == 12
    error = _refusal(DPS + '\n[moby_runtime]\nuri = "docker.sock"\n')
    assert "container engine URI" in error.message
    assert error.line == 12


def test_agent_settings_kept() -> None:
    text = DPS + '\n[agent]\nname = "edgeAgent"\ntype = "docker"\n\n[agent.config]\nimage = "example/agent:2"\n'
    text += '\n[agent.env]\nUpstreamProtocol = "AmqpWs"\n'
    agent = parse_config(text, "c").config.agent
    assert agent.image == "example/agent:2"
    assert agent.env == {"UpstreamProtocol": "AmqpWs"}


def test_trust_bundle_cert_must_exist(tmp_path: Path) -> None:
    error = _refusal(f'trust_bundle_cert = "{(tmp_path / "ca.pem").as_uri()}"\n' + DPS)
    assert "does not exist" in error.message
    assert error.hint == 'trust_bundle_cert = "file:///path/to/ca.pem"'


def test_missing_required_key_names_its_table() -> None:
    error = _refusal(DPS.replace('registration_id = "my-device"\n', ""))
    assert "[provisioning.attestation] lacks `registration_id`" in error.message
    assert error.line == 6


def test_key_lines_place_inline_table_keys_on_their_line() -> None:
    lines = KeyLines.scan('a = 1\n[t]\nk = { value = "x" }\ns = """\nfake = 1\n"""\n[t.u]\nz = 2\n')
    assert lines.line_of(("t", "k", "value")) == 3
    assert lines.line_of(("t", "u", "z")) == 8
    assert ("t", "fake") not in lines.lines
    assert lines.first_table == (("t",), 2)
