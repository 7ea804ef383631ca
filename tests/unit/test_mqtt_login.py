"""Telling provisioning and hub clients apart by their CONNECT user name."""

from __future__ import annotations

import pytest

from edgeprov.mqtt.login import DpsLogin, HubLogin, LoginError, parse_login


@pytest.mark.spec("dps-protocol.md §3.1")
def test_provisioning_user_names() -> None:
    python = "0ne00AAAAAA/registrations/dev-1/api-version=2019-03-31&ClientVersion=azure-iot-device-provisioning-py%2F2"
    assert parse_login(python) == DpsLogin("0ne00AAAAAA", "dev-1")


@pytest.mark.spec("hub-protocol.md §1.1")
def test_hub_user_names_of_devices_and_modules() -> None:
    device = parse_login("localhost/dev1/?api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0")
    assert device == HubLogin("localhost", "dev1", "")
    node = parse_login("Localhost:9883/dev-node-3/?api-version=2021-04-12")
    assert isinstance(node, HubLogin)
    assert (node.hub, node.client_id) == ("localhost", "dev-node-3")
    module = parse_login("hub.example/edge-1/$edgeAgent/?api-version=2021-04-12")
    assert isinstance(module, HubLogin)
    assert module.client_id == "edge-1/$edgeAgent"
    assert parse_login("localhost/dev1/api-version=2016-11-14") == HubLogin("localhost", "dev1", "")


@pytest.mark.parametrize("username", [None, "", "justahost", "a//b/?x", "a/b/c/d/?api-version=1"])
def test_other_user_names_are_refused(username: str | None) -> None:
    with pytest.raises(LoginError):
        parse_login(username)
