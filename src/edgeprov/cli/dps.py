"""``edgeprov dps …``: the provisioning service, shaped like ``az iot dps …``."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from edgeprov import sas
from edgeprov.cli.client import API_VERSION, DPS_ENV, CliError, ServiceClient
from edgeprov.cli.common import (
    add_flag,
    add_login,
    add_output,
    command,
    json_object,
    login_of,
    subcommands,
)
from edgeprov.cli.output import Column, emit, field
from edgeprov.errors import BadRequest

REPROVISION_POLICIES = {
    "reprovisionandmigratedata": {"updateHubAssignment": True, "migrateDeviceData": True},
    "reprovisionandresetdata": {"updateHubAssignment": True, "migrateDeviceData": False},
    "never": {"updateHubAssignment": False, "migrateDeviceData": False},
}
ALLOCATION_POLICIES = {"hashed": "hashed", "geolatency": "geoLatency", "static": "static", "custom": "custom"}

ENROLLMENT_COLUMNS: list[Column] = [
    ("ID", lambda e: e.get("registrationId") or e.get("enrollmentGroupId")),
    ("DEVICE ID", field("deviceId")),
    ("EDGE", field("capabilities", "iotEdge")),
    ("STATUS", field("provisioningStatus")),
    ("ALLOCATION", field("allocationPolicy")),
    ("HUBS", lambda e: " ".join(e.get("iotHubs") or [])),
    ("REPROVISION", lambda e: _reprovision_name(e.get("reprovisionPolicy") or {})),
    ("CREATED", field("createdDateTimeUtc")),
]
REGISTRATION_COLUMNS: list[Column] = [
    ("REGISTRATION ID", field("registrationId")),
    ("STATUS", field("status")),
    ("SUBSTATUS", field("substatus")),
    ("DEVICE ID", field("deviceId")),
    ("HUB", field("assignedHub")),
    ("UPDATED", field("lastUpdatedDateTimeUtc")),
]
ATTEMPT_COLUMNS: list[Column] = [
    ("TIME", field("time")),
    ("SOURCE", field("source")),
    ("REGISTRATION ID", field("registrationId")),
    ("ENROLLMENT", field("enrollment")),
    ("OUTCOME", field("outcome")),
    ("REASON", field("reason")),
    ("CODE", field("errorCode")),
    ("HUB", field("assignedHub")),
    ("MESSAGE", field("message")),
]
LINKED_HUB_COLUMNS: list[Column] = [
    ("HUB", field("name")),
    ("WEIGHT", field("allocationWeight")),
    ("APPLY ALLOCATION POLICY", field("applyAllocationPolicy")),
]


def _reprovision_name(policy: dict[str, Any]) -> str:
    """The ``--reprovision-policy`` name of a policy object, as listings show it."""
    flags = {"updateHubAssignment": True, "migrateDeviceData": True} | policy
    return next((name for name, known in REPROVISION_POLICIES.items() if known == flags), "never")


def _client(args: argparse.Namespace) -> ServiceClient:
    login = login_of(args)
    return ServiceClient(login.connection(DPS_ENV, "dps"), login.verify(), getattr(args, "api_version", API_VERSION))


def _path(kind: str, enrollment_id: str, suffix: str = "") -> str:
    return f"/{kind}/{quote(enrollment_id, safe='')}{suffix}"


# -- enrollments and groups -------------------------------------------------------------------------
def _body(args: argparse.Namespace, kind: str, base: dict[str, Any]) -> dict[str, Any]:
    body = dict(base)
    id_field = "registrationId" if kind == "enrollments" else "enrollmentGroupId"
    body[id_field] = args.enrollment_id
    if args.attestation_type and args.attestation_type.lower() != "symmetrickey":
        raise CliError("--attestation-type: edgeprov attests with symmetrickey only")
    if args.primary_key or args.secondary_key or "attestation" not in body:
        keys = {"primaryKey": args.primary_key, "secondaryKey": args.secondary_key}
        body["attestation"] = {"type": "symmetricKey", "symmetricKey": {k: v for k, v in keys.items() if v}}
    else:
        body.pop("attestation", None)
    if kind == "enrollments" and args.device_id:
        body["deviceId"] = args.device_id
    if args.edge_enabled is not None:
        body["capabilities"] = {"iotEdge": args.edge_enabled}
    _initial_twin(args, body)
    if args.provisioning_status:
        body["provisioningStatus"] = args.provisioning_status
    if args.reprovision_policy:
        body["reprovisionPolicy"] = REPROVISION_POLICIES[args.reprovision_policy]
    if args.allocation_policy:
        body["allocationPolicy"] = ALLOCATION_POLICIES[args.allocation_policy]
    if args.iot_hubs is not None:
        body["iotHubs"] = [hub for item in args.iot_hubs for hub in item.split()]
        body.pop("iotHubHostName", None)
    if args.webhook_url:
        body["customAllocationDefinition"] = {"webhookUrl": args.webhook_url, "apiVersion": args.webhook_api_version}
    if body.get("allocationPolicy") == "custom" and "customAllocationDefinition" not in body:
        raise CliError("--allocation-policy custom needs --webhook-url")
    return body


def _initial_twin(args: argparse.Namespace, body: dict[str, Any]) -> None:
    tags = json_object(args.initial_twin_tags, "--initial-twin-tags")
    desired = json_object(args.initial_twin_properties, "--initial-twin-properties")
    if tags is None and desired is None:
        return
    twin = body.get("initialTwin") or {}
    if tags is not None:
        twin["tags"] = tags
    if desired is not None:
        twin["properties"] = {"desired": desired}
    body["initialTwin"] = twin


def _show(client: ServiceClient, kind: str, enrollment_id: str, show_keys: bool) -> dict[str, Any]:
    found: dict[str, Any] = client.json("GET", _path(kind, enrollment_id))
    if show_keys:
        found["attestation"] = client.json("POST", _path(kind, enrollment_id, "/attestationMechanism"))
    return found


def _create(args: argparse.Namespace, kind: str) -> int:
    client = _client(args)
    body = _body(args, kind, {})
    saved = client.json("PUT", _path(kind, args.enrollment_id), body)
    emit(_mask(saved, args.show_keys), args.output)
    return 0


def _update(args: argparse.Namespace, kind: str) -> int:
    client = _client(args)
    current = client.json("GET", _path(kind, args.enrollment_id))
    body = _body(args, kind, current)
    saved = client.json(
        "PUT", _path(kind, args.enrollment_id), body, headers={"If-Match": args.etag or current["etag"]}
    )
    emit(_mask(saved, args.show_keys), args.output)
    return 0


def _mask(enrollment: dict[str, Any], show_keys: bool) -> dict[str, Any]:
    if not show_keys:
        enrollment.get("attestation", {}).pop("symmetricKey", None)
    return enrollment


def _list(args: argparse.Namespace, kind: str) -> int:
    items = list(_client(args).pages(f"/{kind}/query", {"query": "SELECT *"}))
    emit(items[: args.top] if args.top else items, args.output, ENROLLMENT_COLUMNS)
    return 0


def _show_cmd(args: argparse.Namespace, kind: str) -> int:
    emit(_show(_client(args), kind, args.enrollment_id, args.show_keys), args.output)
    return 0


def _delete(args: argparse.Namespace, kind: str) -> int:
    headers = {"If-Match": args.etag} if args.etag else None
    _client(args).call("DELETE", _path(kind, args.enrollment_id), headers=headers)
    return 0


def _group_device_key(args: argparse.Namespace) -> int:
    attestation = _client(args).json("POST", _path("enrollmentGroups", args.enrollment_id, "/attestationMechanism"))
    key = attestation["symmetricKey"]["secondaryKey" if args.secondary else "primaryKey"]
    print(sas.derive_device_key_b64(key, args.registration_id))
    return 0


def _offline_device_key(args: argparse.Namespace) -> int:
    try:
        print(sas.derive_device_key_b64(args.key, args.registration_id))
    except BadRequest as exc:
        raise CliError(f"--key: {exc.message}") from None
    return 0


def _add_enrollment_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], kind: str, noun: str) -> None:
    def make(name: str, handler: Any, help: str, output: str = "json") -> argparse.ArgumentParser:
        parser = command(sub, name, lambda args: handler(args, kind), help)
        add_login(parser)
        add_output(parser, output)
        return parser

    for name, handler in (("create", _create), ("update", _update)):
        parser = make(name, handler, f"{name} {noun}")
        _enrollment_arguments(parser, kind, creating=name == "create")
    show = make("show", _show_cmd, f"show {noun} (keys with --show-keys)")
    _id_argument(show)
    show.add_argument("--show-keys", "--keys", action="store_true", help="include the symmetric keys")
    listing = make("list", _list, f"list {noun}s", output="table")
    listing.add_argument("--top", type=int, default=0, help="at most this many")
    delete = make("delete", _delete, f"delete {noun}")
    _id_argument(delete)
    delete.add_argument("--etag", "-e", help="only if the etag still matches")


def _id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enrollment-id", "--eid", "--gid", required=True, help="enrollment or group id")


def _enrollment_arguments(parser: argparse.ArgumentParser, kind: str, *, creating: bool) -> None:
    _id_argument(parser)
    parser.add_argument(
        "--attestation-type", "--at", default=None, help="symmetrickey (the only type edgeprov attests)"
    )
    parser.add_argument("--primary-key", "--pk", help="base64 key (generated when left out on create)")
    parser.add_argument("--secondary-key", "--sk", help="base64 key (generated when left out on create)")
    if kind == "enrollments":
        parser.add_argument("--device-id", "--did", help="device id in the hub (default: the registration id)")
    add_flag(parser, "--edge-enabled", "--ee", help="the devices are IoT Edge devices")
    parser.add_argument("--initial-twin-tags", "--tags", help="initial twin tags, a JSON object")
    parser.add_argument("--initial-twin-properties", "--props", help="initial desired properties, a JSON object")
    parser.add_argument("--provisioning-status", "--ps", choices=("enabled", "disabled"))
    parser.add_argument("--reprovision-policy", "--rp", choices=tuple(REPROVISION_POLICIES))
    parser.add_argument("--allocation-policy", "--ap", choices=tuple(ALLOCATION_POLICIES), type=str.lower)
    parser.add_argument("--iot-hubs", "--hubs", nargs="+", help="host names of the hubs to allocate among")
    parser.add_argument("--webhook-url", "--wh", help="custom allocation webhook URL")
    parser.add_argument(
        "--webhook-api-version",
        "--api-version",
        dest="webhook_api_version",
        default="2021-10-01",
        help="API version of the custom allocation request",
    )
    parser.add_argument("--show-keys", "--keys", action="store_true", help="print the symmetric keys")
    if not creating:
        parser.add_argument("--etag", "-e", help="only if the etag still matches (default: the etag just read)")
    else:
        parser.set_defaults(etag=None)


# -- registrations, attempts, linked hubs, show -------------------------------------------------------
def _registration_list(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.enrollment_id:
        items = list(client.pages(f"/registrations/{quote(args.enrollment_id, safe='')}/query", {"query": "*"}))
    else:
        items = client.json("GET", "/edgeprov/dps/registrations", params={"top": str(args.top or 1000)})
    emit(items, args.output, REGISTRATION_COLUMNS)
    return 0


def _registration_show(args: argparse.Namespace) -> int:
    emit(_client(args).json("GET", f"/registrations/{quote(args.registration_id, safe='')}"), args.output)
    return 0


def _registration_delete(args: argparse.Namespace) -> int:
    headers = {"If-Match": args.etag} if args.etag else None
    _client(args).call("DELETE", f"/registrations/{quote(args.registration_id, safe='')}", headers=headers)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    body = {"registrationId": args.registration_id, "enrollmentGroupId": args.enrollment_id}
    result = _client(args).json("POST", "/edgeprov/dps/simulate", body)
    emit(result, args.output)
    return 0 if result.get("outcome") in ("assigned", "assigned-by-webhook") else 1


def _attempts(args: argparse.Namespace) -> int:
    params = {"top": str(args.top)}
    if args.registration_id:
        params["registrationId"] = args.registration_id
    if args.enrollment_id:
        params["enrollment"] = _enrollment_label(_client(args), args.enrollment_id)
    if args.failed:
        params["failed"] = "true"
    emit(_client(args).json("GET", "/edgeprov/dps/attempts", params=params), args.output, ATTEMPT_COLUMNS)
    return 0


def _enrollment_label(client: ServiceClient, enrollment_id: str) -> str:
    """Attempts name their enrollment ``group:G`` or ``individual:R``; find which ``G`` is."""
    try:
        client.call("GET", _path("enrollmentGroups", enrollment_id))
        return f"group:{enrollment_id}"
    except CliError:
        return f"individual:{enrollment_id}"


def _linked_list(args: argparse.Namespace) -> int:
    emit(_client(args).json("GET", "/edgeprov/dps/linkedHubs"), args.output, LINKED_HUB_COLUMNS)
    return 0


def _linked_create(args: argparse.Namespace) -> int:
    body = {"allocationWeight": args.allocation_weight, "applyAllocationPolicy": args.apply_allocation_policy}
    emit(_client(args).json("PUT", f"/edgeprov/dps/linkedHubs/{quote(args.hub_name, safe='')}", body), args.output)
    return 0


def _linked_delete(args: argparse.Namespace) -> int:
    _client(args).call("DELETE", f"/edgeprov/dps/linkedHubs/{quote(args.hub_name, safe='')}")
    return 0


def _dps_show(args: argparse.Namespace) -> int:
    emit(_client(args).json("GET", "/edgeprov/dps"), args.output)
    return 0


def register(root: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dps = root.add_parser("dps", help="the provisioning service (like az iot dps)")
    groups = subcommands(dps, "dps commands")

    show = command(groups, "show", _dps_show, "ID scope, endpoints and linked hubs")
    add_login(show)
    add_output(show, "json")

    for kind, name, noun in (
        ("enrollments", "enrollment", "individual enrollment"),
        ("enrollmentGroups", "enrollment-group", "enrollment group"),
    ):
        parser = groups.add_parser(name, help=f"{noun}s")
        enrollment_commands = subcommands(parser, f"{name} commands")
        _add_enrollment_commands(enrollment_commands, kind, noun)
        if kind == "enrollmentGroups":
            key = command(
                enrollment_commands,
                "compute-device-key",
                _group_device_key,
                "a device's derived key, from the group's key on the service",
            )
            add_login(key)
            _id_argument(key)
            key.add_argument("--registration-id", "--rid", required=True)
            key.add_argument("--secondary", action="store_true", help="derive from the secondary key")

    offline = command(
        groups, "compute-device-key", _offline_device_key, "derive a device key from a group key (offline)"
    )
    offline.add_argument("--key", required=True, help="the enrollment group's base64 key")
    offline.add_argument("--registration-id", "--rid", required=True)

    _register_registrations(groups)
    _register_attempts(groups)
    _register_linked_hubs(groups)


def _register_registrations(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registration = groups.add_parser("registration", help="registration records")
    reg = subcommands(registration, "registration commands")
    listing = command(reg, "list", _registration_list, "registration records (of one group with --enrollment-id)")
    listing.add_argument("--enrollment-id", "--eid", "--gid", help="the enrollment group")
    listing.add_argument("--top", type=int, default=0)
    add_output(listing, "table")
    show_reg = command(reg, "show", _registration_show, "one registration record")
    add_output(show_reg, "json")
    delete_reg = command(reg, "delete", _registration_delete, "delete a record: the device registers afresh next time")
    delete_reg.add_argument("--etag", "-e")
    simulate = command(reg, "simulate", _simulate, "dry run: what registering would do, changing nothing")
    simulate.add_argument("--enrollment-id", "--eid", "--gid", help="the group the device would sign for")
    add_output(simulate, "json")
    for parser in (listing, show_reg, delete_reg, simulate):
        add_login(parser)
    for parser in (show_reg, delete_reg, simulate):
        parser.add_argument("--registration-id", "--rid", required=True)


def _register_attempts(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    attempts = groups.add_parser("attempts", help="the registration attempt log")
    attempts_list = command(
        subcommands(attempts, "attempts commands"), "list", _attempts, "registration attempts, newest first"
    )
    attempts_list.add_argument("--registration-id", "--rid")
    attempts_list.add_argument("--enrollment-id", "--eid", "--gid")
    attempts_list.add_argument("--failed", action="store_true", help="only attempts that did not end assigned")
    attempts_list.add_argument("--top", type=int, default=100)
    add_login(attempts_list)
    add_output(attempts_list, "table")


def _register_linked_hubs(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    linked = groups.add_parser("linked-hub", help="hubs the service allocates devices to")
    linked_sub = subcommands(linked, "linked-hub commands")
    linked_list = command(linked_sub, "list", _linked_list, "linked hubs")
    add_output(linked_list, "table")
    linked_create = command(linked_sub, "create", _linked_create, "link a hub hosted by this service")
    linked_create.add_argument("--allocation-weight", "--aw", type=int, default=1)
    add_flag(linked_create, "--apply-allocation-policy", "--aap", help="take part in allocation (default true)")
    linked_create.set_defaults(apply_allocation_policy=True)
    add_output(linked_create, "json")
    linked_delete = command(linked_sub, "delete", _linked_delete, "unlink a hub")
    for parser in (linked_create, linked_delete):
        parser.add_argument("--hub-name", "--hub-host-name", "-n", required=True, help="the hub's host name")
    for parser in (linked_list, linked_create, linked_delete):
        add_login(parser)
