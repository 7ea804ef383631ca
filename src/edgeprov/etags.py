"""Entity tags and If-Match, shared by the provisioning service and the hub."""

from __future__ import annotations

from edgeprov.errors import EdgeprovError, PreconditionFailed

UNCONDITIONAL = ("", "*", '"*"')


def etag_matches(if_match: str | None, etag: str) -> bool:
    """RFC 7232 If-Match, lenient about quoting: the SDKs send etags quoted, unquoted and weak."""
    if if_match is None or if_match.strip() in UNCONDITIONAL:
        return True
    return _bare(if_match) == _bare(etag)


def check_if_match(if_match: str | None, etag: str, what: str) -> None:
    if not etag_matches(if_match, etag):
        raise PreconditionFailed(f"{what} has changed: its etag is {etag}")


def is_conditional(if_match: str | None) -> bool:
    return if_match is not None and if_match.strip() not in UNCONDITIONAL


def _bare(tag: str) -> str:
    return tag.strip().removeprefix("W/").strip('"')


def check_create_or_update(
    current: str | None,
    if_match: str | None,
    what: str,
    where: str,
    *,
    missing: type[EdgeprovError],
    exists: type[EdgeprovError],
) -> None:
    """The hub's PUT: without If-Match it creates (and the thing must not exist), with it it updates.

    ``current`` is the etag of what exists now, or None.
    """
    if current is None:
        if if_match:
            raise missing(f"{what} does not exist {where}")
    elif not if_match:
        raise exists(f"{what} already exists {where}")
    else:
        check_if_match(if_match, current, what)
