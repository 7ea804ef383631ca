"""SAS tokens and derived keys against the published and project vectors (spec/dps-protocol.md §2.4)."""

from __future__ import annotations

import base64

import pytest

from edgeprov import sas
from edgeprov.errors import BadRequest, Unauthorized

GROUP_KEY = "yzA0g1aFnPFHZFmviKjl/2VXQ3/BSHEz67ZTi7J+iFijTemU0PTL+XH+XBpPUGiEaE+HaOybHgy5O1vw4PFrUg=="
DEVICE_KEY = "XlwwwrwfbFMP0llNubFk6ng0al6BvRBalhLQmzK1BPg="
SE = 1893456000

# The five encodings of `sr` the official clients send, each as transmitted (§2.3/§2.4).
CLIENT_TOKENS = {
    "python": "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fedge-device-01&sig=7i3ot4YalPU2E2%2Ff2xWfiEmvZu8jPSNvA8b%2FaV8snOQ%3D&se=1893456000",
    "docs": "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fedge-device-01&sig=7i3ot4YalPU2E2%2Ff2xWfiEmvZu8jPSNvA8b%2FaV8snOQ%3D&se=1893456000&skn=registration",
    "c": "SharedAccessSignature sr=0ne00000A0A%2fregistrations%2fedge-device-01&sig=Cvf8mnbTqdmD7V0qIyiSQovhyXk6q%2Bk2%2FLhES2ouvHI%3D&se=1893456000&skn=registration",
    "node": "SharedAccessSignature sr=0ne00000A0A/registrations/edge-device-01&sig=1KDEQ4F1S5yeXdQ%2B5vflVbisYeQXKvVjyRq3yBRGX0Q%3D&skn=registration&se=1893456000",
    "aziot": "SharedAccessSignature sr=0ne00000a0a/registrations/edge-device-01&sig=EmwUtjYCO1a9gQVg6LPtK7RvdfC%2B0I29YmmpMoZI9nQ%3D&se=1893456000&skn=registration",
}  # fmt: skip


@pytest.mark.spec("dps-protocol.md §2.4")
def test_published_group_key_derivation() -> None:
    group = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
    derived = sas.derive_device_key_b64(group, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
    assert derived == "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="


@pytest.mark.spec("dps-protocol.md §2.4")
def test_project_derivation_vector() -> None:
    assert sas.derive_device_key_b64(GROUP_KEY, "edge-device-01") == DEVICE_KEY


@pytest.mark.spec("dps-protocol.md §2.4")
def test_published_hub_sas_vector() -> None:
    key = base64.b64decode("18RQk/hOPJR9EbsJlk2j8WA6vWaj/yi+oaYg7zmxfQNdOyMSu+SJ8O7TSlZhDJCYmn4rzEiVKIzNiVAWjLxrGA==")
    signature = sas.sign(key, "MyExampleHub.azure-devices.net%2Fdevices%2Fmy-symkey-device", 1663119026)
    assert base64.b64encode(signature).decode() == "f+wW8XOKeJOtiPc9Iwjc4OpExvPM7NlhM9qxN2a1aAM="


@pytest.mark.spec("dps-protocol.md §2.3")
@pytest.mark.parametrize("client", sorted(CLIENT_TOKENS))
def test_every_client_encoding_verifies_over_sr_as_sent(client: str) -> None:
    token = sas.SasToken.parse(CLIENT_TOKENS[client])
    assert token.signed_with(base64.b64decode(DEVICE_KEY))
    assert token.audience.lower() == "0ne00000a0a/registrations/edge-device-01"
    assert token.expiry == SE


@pytest.mark.spec("dps-protocol.md §2.4")
def test_group_key_itself_does_not_verify() -> None:
    token = sas.SasToken.parse(CLIENT_TOKENS["python"])
    assert not token.signed_with(base64.b64decode(GROUP_KEY))


def test_skn_is_optional_and_read_when_present() -> None:
    assert sas.SasToken.parse(CLIENT_TOKENS["python"]).key_name is None
    assert sas.SasToken.parse(CLIENT_TOKENS["node"]).key_name == "registration"


@pytest.mark.parametrize(
    "text",
    [
        "Bearer abc",
        "SharedAccessSignature sr=a&sig=b",
        "SharedAccessSignature sr=a&sig=%%%&se=1",
        "SharedAccessSignature sr=a&sig=AAAA&se=soon",
        "SharedAccessSignature sr=a&junk&se=1&sig=AAAA",
    ],
)
def test_malformed_tokens_are_refused(text: str) -> None:
    with pytest.raises(Unauthorized):
        sas.SasToken.parse(text)


def test_built_tokens_round_trip() -> None:
    token = sas.SasToken.parse(sas.build_token("scope/registrations/x", base64.b64decode(DEVICE_KEY), SE, "k"))
    assert token.signed_with(base64.b64decode(DEVICE_KEY))
    assert token.resource == "scope%2Fregistrations%2Fx"
    assert token.key_name == "k"


@pytest.mark.parametrize(
    "key", ["not base64!", base64.b64encode(b"short").decode(), base64.b64encode(b"x" * 65).decode()]
)
def test_keys_outside_the_published_rules_are_refused(key: str) -> None:
    with pytest.raises(BadRequest):
        sas.decode_key(key)


def test_generated_keys_are_64_random_bytes() -> None:
    first, second = sas.generate_key(), sas.generate_key()
    assert len(base64.b64decode(first)) == 64
    assert first != second


@pytest.mark.spec("dps-protocol.md §2.4")
def test_deriver_matches_the_one_shot_derivation() -> None:
    group = base64.b64decode("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")
    deriver = sas.DeviceKeyDeriver(group)
    for registration_id in ("sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", "edge-device-01", "Ünïcode-device"):
        assert deriver.derive(registration_id) == sas.derive_device_key(group, registration_id)
    assert base64.b64encode(deriver.derive("sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")).decode() == (
        "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
    )


def test_same_token_compares_whole_tokens() -> None:
    token = CLIENT_TOKENS["node"]
    assert sas.same_token(token, token)
    assert not sas.same_token(token, token[:-1])
    assert not sas.same_token(token[:-1] + "1", token)
