"""``$edgeAgent``'s reported properties, module keys, and the twin exchange with a hub a test plays."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import platform
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from edgeprov import __version__
from edgeprov.device.agent_twin import AgentTwin
from edgeprov.device.module_keys import derive_module_keys, load_master_key
from edgeprov.device.reported import CONFIG_EMPTY, NOT_APPLIED, desired_status, edge_agent_reported
from edgeprov.device.settings import AgentSettings
from edgeprov.device.state import AgentStatus, StateDir
from edgeprov.errors import IdentityRejected
from edgeprov.jsonutil import dumps, loads
from edgeprov.mqtt import codec, topics
from edgeprov.mqtt.packets import Publish
from tests.mqtt_peer import BOUND, Peer, connected, run

STATUS = AgentStatus(1, "running", 1_700_000_000.0)
AGENT = AgentSettings(image="example.azurecr.io/agent:1.5")


@pytest.mark.spec("hub-protocol.md §5.3")
def test_reported_properties_say_what_runs() -> None:
    assert edge_agent_reported(STATUS, AGENT, 7, {}) == {
        "schemaVersion": "1.0",
        "lastDesiredVersion": 7,
        "lastDesiredStatus": {
            "code": 417,
            "description": "ConfigEmptyError: the desired properties hold no deployment",
        },
        "version": {"version": __version__},
        "runtime": {
            "type": "docker",
            "platform": {"os": platform.system().lower(), "architecture": platform.machine(), "version": __version__},
        },
        "systemModules": {
            "edgeAgent": {
                "type": "docker",
                "runtimeStatus": "running",
                "statusDescription": "running",
                "lastStartTimeUtc": "2023-11-14T22:13:20.000Z",
                "imagePullPolicy": "on-create",
                "settings": {"image": "example.azurecr.io/agent:1.5"},
            }
        },
        "modules": {},
    }


@pytest.mark.spec("hub-protocol.md §5.2, §5.3 (lastDesiredStatus codes)")
@pytest.mark.parametrize(
    ("desired", "code"),
    [
        ({}, 417),
        ({"note": "no deployment keys"}, 417),
        ({"schemaVersion": "2.0", "modules": {}}, 412),
        ({"modules": {}}, 412),
        ({"schemaVersion": "1.1", "modules": {"m": {}}}, 500),
    ],
)
def test_desired_status_never_claims_a_deployment_applied(desired: dict[str, Any], code: int) -> None:
    assert desired_status(desired).code == code
    assert CONFIG_EMPTY.code == 417
    assert "does not apply deployments" in NOT_APPLIED.description


@pytest.mark.spec("edge-runtime.md §3.3 (module keys)")
def test_module_keys_are_derived_from_the_master_key_and_generation(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    master = load_master_key(state.master_key)
    assert load_master_key(state.master_key) == master, "made once, then kept"
    assert state.master_key.stat().st_mode & 0o777 == 0o600
    keys = derive_module_keys(master, "$edgeAgent", "637000000000000001")
    expected = hmac.new(master, b"$edgeAgent:637000000000000001:secondary", hashlib.sha256).digest()
    assert keys.secondary.raw == expected
    assert keys.to_json()["secondaryKey"] == base64.b64encode(expected).decode()
    assert keys.primary != keys.secondary
    assert derive_module_keys(master, "$edgeAgent", "637000000000000002").primary != keys.primary


async def _request(peer: Peer) -> tuple[Publish, str]:
    """The client's next twin request, acknowledged; and its ``$rid``."""
    message = await peer.expect(Publish)
    assert message.packet_id is not None
    peer.send(codec.encode_puback(message.packet_id))
    return message, message.topic.rsplit("$rid=", 1)[1]


@contextlib.asynccontextmanager
async def _following() -> AsyncIterator[tuple[asyncio.Task[NoReturn], Peer]]:
    """``$edgeAgent``'s twin following a client the peer accepted; cancelled when the block ends."""
    async with connected() as (client, peer):
        twin = AgentTwin(AGENT, lambda: STATUS, logging.getLogger("tests.agent_twin"), BOUND)
        following = asyncio.create_task(twin.follow(client))
        try:
            yield following, peer
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)


def _twin(desired: dict[str, Any], reported: dict[str, Any]) -> bytes:
    return dumps({"desired": desired, "reported": reported})


@pytest.mark.spec("hub-protocol.md §1.2")
def test_the_twin_is_read_reported_by_difference_and_read_again_after_a_missed_push() -> None:
    async def scenario() -> None:
        async with _following() as (_, peer):
            get, rid = await _request(peer)
            assert (get.topic, get.payload) == (topics.twin_get(rid), b" ")
            peer.send(codec.encode_publish(topics.twin_response(200, rid), _twin({"$version": 1}, {"old": 1})))

            report, rid = await _request(peer)
            assert report.topic == topics.reported_patch(rid)
            assert loads(report.payload) == {**edge_agent_reported(STATUS, AGENT, 1, {}), "old": None}
            peer.send(codec.encode_publish(topics.twin_response(204, rid, 2), b""))

            peer.send(codec.encode_publish(topics.desired_topic(2), dumps({"note": "x", "$version": 2})))
            report, rid = await _request(peer)
            assert loads(report.payload) == {"lastDesiredVersion": 2}, "only what changed"
            peer.send(codec.encode_publish(topics.twin_response(204, rid, 3), b""))

            deployment = {"schemaVersion": "1.1", "modules": {}}
            peer.send(codec.encode_publish(topics.desired_topic(2), dumps({"stale": True, "$version": 2})))
            peer.send(codec.encode_publish(topics.desired_topic(4), dumps({**deployment, "$version": 4})))
            get, rid = await _request(peer)
            assert get.topic == topics.twin_get(rid), "version 3 was missed: the twin is read whole"
            full = {"note": "x", **deployment, "$version": 4}
            held = {**edge_agent_reported(STATUS, AGENT, 2, {}), "$version": 3}
            peer.send(codec.encode_publish(topics.twin_response(200, rid), _twin(full, held)))
            report, rid = await _request(peer)
            assert loads(report.payload) == {"lastDesiredVersion": 4, "lastDesiredStatus": NOT_APPLIED.to_json()}

    run(scenario)


def test_a_twin_the_hub_no_longer_serves_is_a_rejected_identity() -> None:
    async def scenario() -> None:
        async with _following() as (following, peer):
            _, rid = await _request(peer)
            body = dumps({"errorCode": 404010, "message": "module not found"})
            peer.send(codec.encode_publish(topics.twin_response(404, rid), body))
            with pytest.raises(IdentityRejected, match="status 404"):
                await following

    run(scenario)


def test_a_read_older_than_a_push_that_overtook_it_is_read_again() -> None:
    async def scenario() -> None:
        async with _following() as (_, peer):
            _, rid = await _request(peer)
            peer.send(codec.encode_publish(topics.desired_topic(1), dumps({"a": 1, "$version": 1})))
            peer.send(codec.encode_publish(topics.twin_response(200, rid), _twin({"$version": 0}, {})))
            get, rid = await _request(peer)
            assert get.topic == topics.twin_get(rid), "the answer predates the push: the twin is read again"
            peer.send(codec.encode_publish(topics.twin_response(200, rid), _twin({"a": 1, "$version": 1}, {})))
            report, _ = await _request(peer)
            assert loads(report.payload)["lastDesiredVersion"] == 1

    run(scenario)
