"""Every refusal gets its status, errorCode and a message that says why, and changes no stored state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from edgeprov import sas
from tests.integration.dps_helpers import Group, create_group, create_individual, poll, register, token
from tests.support import Server, attempts, dump_state, unique


@pytest.fixture
def unchanged(server: Server) -> Callable[[], None]:
    """Snapshot the database; the test calls the returned check after its refused request."""
    before = dump_state(server)
    logged = attempts(server)

    def check() -> None:
        assert dump_state(server) == before
        assert attempts(server) == logged + 1, "the refused attempt is in the attempt log"

    return check


@pytest.fixture(scope="module")
def group(server: Server) -> Group:
    return create_group(server.dps(), initialTwin={"tags": {"environment": "test"}})


def _last_attempt(server: Server, registration_id: str) -> dict[str, Any]:
    listed = server.cli_ok("dps", "attempts", "list", "--registration-id", registration_id, "-o", "json").json()
    assert listed, f"no attempt logged for {registration_id}"
    latest: dict[str, Any] = listed[0]
    return latest


def _refused(response: httpx.Response, status: int, code: int, *secrets: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorCode"] == code
    assert body["trackingId"] == response.headers["x-ms-request-id"]
    assert body["timestampUtc"].endswith("Z")
    message: str = body["message"]
    for secret in secrets:
        assert secret not in message and secret not in response.text
    return message


@pytest.mark.spec("dps-protocol.md §4.2")
def test_wrong_key_on_an_individual_enrollment(server: Server) -> None:
    registration_id, key = create_individual(server.dps())
    before = dump_state(server)
    wrong = sas.generate_key()
    message = _refused(
        register(server, registration_id, token(server, registration_id, wrong)), 401, 401002, key, wrong
    )
    assert "neither the primary nor the secondary key" in message
    assert dump_state(server) == before
    assert _last_attempt(server, registration_id)["reason"] == "wrong-key"


@pytest.mark.spec("dps-protocol.md §2.2")
def test_group_key_used_where_the_derived_key_belongs(
    server: Server, group: Group, unchanged: Callable[[], None]
) -> None:
    registration_id = unique("dev")
    message = _refused(
        register(server, registration_id, token(server, registration_id, group.primary)), 401, 401002, group.primary
    )
    assert "key of enrollment group" in message and "derived" in message
    unchanged()
    attempt = _last_attempt(server, registration_id)
    assert attempt["reason"] == "group-key-used"
    assert attempt["enrollment"] == f"group:{group.id}"


def test_registration_id_in_another_case_than_the_key_was_derived_from(
    server: Server, group: Group, unchanged: Callable[[], None]
) -> None:
    registration_id = unique("Dev")
    derived_from_lowercase = group.device_key(registration_id.lower())
    response = register(server, registration_id, token(server, registration_id, derived_from_lowercase))
    message = _refused(response, 401, 401002, derived_from_lowercase)
    assert registration_id.lower() in message and "exactly as the device sends it" in message
    unchanged()
    assert _last_attempt(server, registration_id)["reason"] == "case-mismatch"


def test_expired_token_reports_the_clock_difference(
    server: Server, group: Group, unchanged: Callable[[], None]
) -> None:
    registration_id = unique("dev")
    stale = token(server, registration_id, group.device_key(registration_id), ttl=-3600)
    message = _refused(register(server, registration_id, stale), 401, 401002)
    late = int(message.split("expired ")[1].split(" s")[0])
    assert 3590 <= late <= 3700
    assert "clock" in message
    unchanged()
    assert _last_attempt(server, registration_id)["reason"] == "token-expired"


def test_token_within_the_clock_skew_is_accepted(server: Server, group: Group) -> None:
    registration_id = unique("dev")
    slightly_stale = token(server, registration_id, group.device_key(registration_id), ttl=-60)
    assert register(server, registration_id, slightly_stale).status_code == 202


def test_unknown_registration_id(server: Server, unchanged: Callable[[], None]) -> None:
    registration_id = unique("nobody")
    message = _refused(
        register(server, registration_id, token(server, registration_id, sas.generate_key())), 401, 401002
    )
    assert f"no individual enrollment for {registration_id!r}" in message
    unchanged()
    assert _last_attempt(server, registration_id)["reason"] == "unknown-registration"


def test_an_individual_enrollment_takes_precedence_over_a_group(server: Server, group: Group) -> None:
    registration_id, _ = create_individual(server.dps())
    before = dump_state(server)
    response = register(server, registration_id, token(server, registration_id, group.device_key(registration_id)))
    message = _refused(response, 401, 401002)
    assert "takes precedence" in message
    assert dump_state(server) == before
    assert _last_attempt(server, registration_id)["reason"] == "individual-takes-precedence"


def test_token_for_another_id_scope(server: Server, group: Group, unchanged: Callable[[], None]) -> None:
    registration_id = unique("dev")
    foreign = sas.token_for(f"0ne00000000/registrations/{registration_id}", group.device_key(registration_id))
    message = _refused(register(server, registration_id, foreign), 401, 401002)
    assert "0ne00000000" in message and server.id_scope in message
    unchanged()
    assert _last_attempt(server, registration_id)["reason"] == "wrong-scope"


@pytest.mark.parametrize("authorization", ["", "Bearer xyz", "SharedAccessSignature sr=a&se=1"])
def test_missing_or_malformed_token(server: Server, authorization: str, unchanged: Callable[[], None]) -> None:
    _refused(register(server, unique("dev"), authorization), 401, 401002)
    unchanged()


@pytest.mark.spec("dps-protocol.md §5.3")
@pytest.mark.parametrize("registration_id", ["-leading-dash", "trailing.", "x" * 129, "under_score_"])
def test_invalid_registration_id(
    server: Server, group: Group, registration_id: str, unchanged: Callable[[], None]
) -> None:
    response = register(server, registration_id, token(server, registration_id, group.primary))
    message = _refused(response, 400, 400004)
    assert "registration id" in message
    unchanged()


def test_body_naming_another_registration(server: Server, group: Group, unchanged: Callable[[], None]) -> None:
    registration_id = unique("dev")
    with server.http() as client:
        response = client.put(
            f"/{server.id_scope}/registrations/{registration_id}/register?api-version=2021-06-01",
            json={"registrationId": "someone-else"},
            headers={"Authorization": token(server, registration_id, group.device_key(registration_id))},
        )
    assert "differs from the path" in _refused(response, 400, 400004)
    unchanged()


def test_missing_api_version_is_a_clear_400(server: Server, group: Group) -> None:
    registration_id = unique("dev")
    before = dump_state(server)
    with server.http() as client:
        response = client.put(
            f"/{server.id_scope}/registrations/{registration_id}/register",
            json={"registrationId": registration_id},
            headers={"Authorization": token(server, registration_id, group.device_key(registration_id))},
        )
    assert "api-version" in _refused(response, 400, 400004)
    assert dump_state(server) == before


def test_oversized_body(server: Server, group: Group) -> None:
    registration_id = unique("dev")
    before = dump_state(server)
    response = register(
        server,
        registration_id,
        token(server, registration_id, group.device_key(registration_id)),
        payload={"blob": "x" * 100_000},
    )
    _refused(response, 413, 413001)
    assert dump_state(server) == before


@pytest.mark.spec("dps-protocol.md §7.2")
def test_disabled_group_answers_disabled_and_changes_nothing(server: Server) -> None:
    group = create_group(server.dps(), provisioningStatus="disabled")
    registration_id = unique("dev")
    before = dump_state(server)
    authorization = token(server, registration_id, group.device_key(registration_id))
    accepted = register(server, registration_id, authorization)
    assert accepted.status_code == 202
    answer = poll(server, registration_id, accepted.json()["operationId"], authorization)
    assert answer.status_code == 200
    state = answer.json()
    assert state["status"] == "disabled"
    assert state["registrationState"]["status"] == "disabled"
    assert "is disabled" in state["registrationState"]["errorMessage"]
    assert dump_state(server) == before
    assert _last_attempt(server, registration_id)["outcome"] == "disabled"


def test_a_disabled_individual_enrollment_blocks_one_device_of_a_group(server: Server, group: Group) -> None:
    registration_id = unique("dev")
    _, individual_key = create_individual(server.dps(), registration_id, provisioningStatus="disabled")
    authorization = token(server, registration_id, individual_key)
    accepted = register(server, registration_id, authorization)
    answer = poll(server, registration_id, accepted.json()["operationId"], authorization)
    assert answer.json()["status"] == "disabled"


def test_poll_needs_the_device_token(server: Server, group: Group) -> None:
    registration_id = unique("dev")
    authorization = token(server, registration_id, group.device_key(registration_id))
    operation = register(server, registration_id, authorization).json()["operationId"]
    other = token(server, registration_id, sas.generate_key())
    _refused(poll(server, registration_id, operation, other), 401, 401002)
    missing = poll(server, registration_id, "5.0000000000000000.unknown", authorization)
    _refused(missing, 404, 404204)


def test_failed_allocation_is_reported_in_the_operation(server: Server) -> None:
    group = create_group(server.dps(), iotHubs=["not-linked.example.test"])
    registration_id = unique("dev")
    before = dump_state(server)
    authorization = token(server, registration_id, group.device_key(registration_id))
    accepted = register(server, registration_id, authorization)
    answer = poll(server, registration_id, accepted.json()["operationId"], authorization).json()
    assert answer["status"] == "failed"
    assert answer["registrationState"]["errorCode"] == 400208
    assert "not-linked.example.test" in answer["registrationState"]["errorMessage"]
    assert dump_state(server) == before
    assert _last_attempt(server, registration_id)["outcome"] == "failed"
