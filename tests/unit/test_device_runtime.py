"""The runtime's small rules: tokens, backoff, reprovisioning triggers, change reports, import, render."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from urllib.parse import unquote

import pytest

from edgeprov import sas
from edgeprov.device.backoff import Backoff, BackoffSettings
from edgeprov.device.dps_client import registration_token
from edgeprov.device.identity import Trigger, changes, should_reprovision
from edgeprov.device.legacy import import_legacy
from edgeprov.device.render import check_rendered, render
from edgeprov.device.settings import DeviceKey, DpsProvisioning, Endpoint, ReprovisioningMode
from edgeprov.errors import ConfigInvalid
from tests.device_support import EXAMPLE_GROUP_KEY, FLEET_TEMPLATE

# spec/dps-protocol.md §2.4: the project example's derived key.
DERIVED = "XlwwwrwfbFMP0llNubFk6ng0al6BvRBalhLQmzK1BPg="


@pytest.mark.spec("edge-runtime.md §3.1 (SAS token construction)")
def test_registration_token_as_the_identity_service_builds_it() -> None:
    settings = DpsProvisioning(
        Endpoint("localhost"), "0ne00000A0A", "Edge-Device-01", DeviceKey(base64.b64decode(DERIVED))
    )
    token = sas.SasToken.parse(registration_token(settings, 1_000_000.0))
    assert token.audience == "0ne00000a0a/registrations/edge-device-01"
    assert token.expiry == 1_000_030
    assert token.key_name == "registration"
    assert token.signed_with(base64.b64decode(DERIVED))
    assert unquote(token.resource) == token.audience


def test_backoff_grows_is_bounded_and_never_spins() -> None:
    backoff = Backoff(BackoffSettings(1.0, 30.0), random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(30.0, 2.0**n) for n in range(12)]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))
    assert max(delays) <= 30.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_backoff_jitter_spreads_a_fleet() -> None:
    first = {round(Backoff(BackoffSettings(10.0, 60.0), random.Random(seed)).next_delay(), 3) for seed in range(20)}
    assert len(first) > 10


@pytest.mark.spec("edge-runtime.md §3.5")
@pytest.mark.parametrize(
    ("mode", "trigger", "expected"),
    [
        (ReprovisioningMode.DYNAMIC, Trigger.SESSION_CREDENTIALS, True),
        (ReprovisioningMode.DYNAMIC, Trigger.IDENTITY_ERROR, True),
        (ReprovisioningMode.ON_ERROR_ONLY, Trigger.SESSION_CREDENTIALS, False),
        (ReprovisioningMode.ON_ERROR_ONLY, Trigger.IDENTITY_ERROR, True),
        (ReprovisioningMode.ALWAYS_ON_STARTUP, Trigger.SESSION_CREDENTIALS, False),
        (ReprovisioningMode.ALWAYS_ON_STARTUP, Trigger.IDENTITY_ERROR, True),
    ],
)
def test_when_to_provision_again(mode: ReprovisioningMode, trigger: Trigger, expected: bool) -> None:
    assert should_reprovision(mode, trigger) is expected


def test_changes_tell_what_changed_but_never_the_key() -> None:
    before = {"endpoint": "https://a", "id_scope": "0ne1", "registration_id": "r", "key": "f1"}
    after = {"endpoint": "https://a", "id_scope": "0ne2", "registration_id": "r", "key": "f2"}
    assert changes(before, after) == ["ID scope 0ne1 -> 0ne2", "key changed"]
    assert changes(before, before) == []


@pytest.mark.spec("edge-runtime.md §1.5")
@pytest.mark.parametrize(
    ("flags", "mode"),
    [
        ("dynamic_reprovisioning: true\n  always_reprovision_on_startup: true", "Dynamic"),
        ("always_reprovision_on_startup: true", "AlwaysOnStartup"),
        ("dynamic_reprovisioning: false", "OnErrorOnly"),
    ],
)
def test_legacy_reprovisioning_flags(tmp_path: Path, flags: str, mode: str) -> None:
    legacy = tmp_path / "config.yaml"
    legacy.write_text(
        f"""provisioning:
  source: "dps"
  global_endpoint: "https://global.azure-devices-provisioning.net"
  scope_id: "0ne00000A0A"
  attestation:
    method: "symmetric_key"
    registration_id: "my-device"
    symmetric_key: "{DERIVED}"
  {flags}
"""
    )
    document = import_legacy(legacy)
    assert document["auto_reprovisioning_mode"] == mode
    assert document["provisioning"]["id_scope"] == "0ne00000A0A"
    assert document["provisioning"]["attestation"]["symmetric_key"] == {"value": DERIVED}


@pytest.mark.spec("edge-runtime.md §1.6")
def test_legacy_rules_with_their_lines(tmp_path: Path) -> None:
    legacy = tmp_path / "config.yaml"
    legacy.write_text('provisioning:\n  source: "dps"\n  scope_id: "x"\n  registration_id: "r"\n  attestation: {}\n')
    with pytest.raises(ConfigInvalid) as caught:
        import_legacy(legacy)
    assert caught.value.line == 4
    assert "Provisioning registration_id has to be set only in attestation" in caught.value.message
    legacy.write_text(' provisioning:\nsource: "dps"\n')
    with pytest.raises(ConfigInvalid) as caught:
        import_legacy(legacy)
    assert caught.value.line is not None
    legacy.write_text('provisioning:\n  source: "external"\n')
    with pytest.raises(ConfigInvalid, match="external provisioning is not supported"):
        import_legacy(legacy)


def test_render_derives_the_device_key_and_leaves_out_the_group_key() -> None:
    text = render(FLEET_TEMPLATE, "t", "edge-device-01", EXAMPLE_GROUP_KEY, "edge-device-01.local")
    assert EXAMPLE_GROUP_KEY not in text
    loaded = check_rendered(text, EXAMPLE_GROUP_KEY, "out")
    provisioning = loaded.config.provisioning
    assert isinstance(provisioning, DpsProvisioning)
    assert provisioning.key.raw == base64.b64decode(DERIVED)
    assert loaded.config.hostname == "edge-device-01.local"


def test_render_refuses_a_template_without_device_key() -> None:
    with pytest.raises(ConfigInvalid, match="no \\{\\{device_key\\}\\} placeholder"):
        render(FLEET_TEMPLATE.replace("{{ device_key }}", "x"), "t", "r", EXAMPLE_GROUP_KEY, "h")
