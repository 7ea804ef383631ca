from __future__ import annotations

import pytest

from edgeprov.errors import BadRequest, InvalidRegistrationId
from edgeprov.ids import RegistrationId, check_device_id, is_id_scope, new_id_scope


@pytest.mark.spec("dps-protocol.md §5.3")
@pytest.mark.parametrize("value", ["edge-device-01", "a", "A.b_c:d-", "x" * 128, "Sn-007"])
def test_valid_registration_ids(value: str) -> None:
    assert RegistrationId(value).key == value.lower()


@pytest.mark.spec("dps-protocol.md §5.3")
@pytest.mark.parametrize("value", ["", "x" * 129, "-leading", "trailing.", "trailing_", "sp ace", "slash/x", "ü"])
def test_invalid_registration_ids(value: str) -> None:
    with pytest.raises(InvalidRegistrationId):
        RegistrationId(value)


@pytest.mark.parametrize("value", ["dev1", "$edgeAgent", "a-b.c%d_e*f?g!h(i)j,k:l=m@n$o'p"])
def test_valid_device_ids(value: str) -> None:
    assert check_device_id(value) == value


@pytest.mark.parametrize("value", ["", "a b", "a/b", "x" * 129, "ü"])
def test_invalid_device_ids(value: str) -> None:
    with pytest.raises(BadRequest):
        check_device_id(value)


def test_new_id_scopes_have_the_cloud_shape() -> None:
    assert is_id_scope(new_id_scope())
    assert not is_id_scope("0ne0000")
