"""The provisioning service's management API (spec/dps-protocol.md §5) and edgeprov's additions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgeprov.api import auth
from edgeprov.api.http import json_object, json_response, json_value, no_content, page_size, paged
from edgeprov.api.services import Services
from edgeprov.dps.model import EnrollmentKind
from edgeprov.errors import BadRequest
from edgeprov.store.base import AttemptFilter


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _authorize(request: Request, right: str) -> Services:
    services = _services(request)
    await services.auth.provisioning(request.headers.get("authorization"), right)
    return services


def _kind(request: Request) -> EnrollmentKind:
    return (
        EnrollmentKind.GROUP if request.url.path.lower().startswith("/enrollmentgroups") else EnrollmentKind.INDIVIDUAL
    )


async def enrollment(request: Request) -> Response:
    kind, enrollment_id = _kind(request), request.path_params["id"]
    if_match = request.headers.get("if-match")
    if request.method == "GET":
        services = await _authorize(request, auth.ENROLLMENT_READ)
        found = await services.enrollments.get(kind, enrollment_id)
        return json_response(found.to_json(include_keys=False))
    services = await _authorize(request, auth.ENROLLMENT_WRITE)
    if request.method == "DELETE":
        await services.enrollments.delete(kind, enrollment_id, if_match)
        return no_content()
    saved = await services.enrollments.put(kind, enrollment_id, await json_object(request), if_match)
    return json_response(saved.to_json(include_keys=True))


async def attestation(request: Request) -> Response:
    services = await _authorize(request, auth.ENROLLMENT_WRITE)
    return json_response(await services.enrollments.attestation(_kind(request), request.path_params["id"]))


async def bulk(request: Request) -> Response:
    services = await _authorize(request, auth.ENROLLMENT_WRITE)
    kind = _kind(request)
    errors = await services.enrollments.bulk(kind, await json_object(request))
    id_field = "registrationId" if kind is EnrollmentKind.INDIVIDUAL else "enrollmentGroupId"
    return json_response(
        {
            "isSuccessful": not errors,
            "errors": [{id_field: e.id, "errorCode": e.error.code, "errorStatus": e.error.message} for e in errors],
        }
    )


async def query(request: Request) -> Response:
    services = await _authorize(request, auth.ENROLLMENT_READ)
    kind = _kind(request)
    spec = await json_value(request) or {}
    if not isinstance(spec, dict):
        raise BadRequest('a query body is {"query": "SELECT *"}')
    found = await services.enrollments.query(kind, spec, request.headers.get("x-ms-continuation"), page_size(request))
    item_type = "Enrollment" if kind is EnrollmentKind.INDIVIDUAL else "EnrollmentGroup"
    return paged([e.to_json(include_keys=False) for e in found.items], found.continuation, item_type)


async def registration(request: Request) -> Response:
    registration_id = request.path_params["id"]
    if request.method == "GET":
        services = await _authorize(request, auth.REGISTRATION_READ)
        return json_response((await services.registrations.get(registration_id)).to_json())
    services = await _authorize(request, auth.REGISTRATION_WRITE)
    await services.registrations.delete(registration_id, request.headers.get("if-match"))
    return no_content()


async def group_registrations(request: Request) -> Response:
    services = await _authorize(request, auth.REGISTRATION_READ)
    found = await services.registrations.of_group(
        request.path_params["id"], request.headers.get("x-ms-continuation"), page_size(request)
    )
    return paged([r.to_json() for r in found.items], found.continuation, "DeviceRegistration")


# -- edgeprov's additions ---------------------------------------------------------------------------
async def show(request: Request) -> Response:
    services = await _authorize(request, auth.SERVICE_CONFIG)
    endpoints = services.endpoints
    linked = await services.linked_hubs.list()
    hubs = await services.store.read(lambda tx: tx.list_hubs())
    return json_response(
        {
            "idScope": services.provisioning.settings.id_scope,
            "deviceProvisioningHostName": endpoints.hostname,
            "serviceOperationsHostName": endpoints.hostname,
            "httpsPort": endpoints.https_port,
            "mqttPort": endpoints.mqtt_port,
            "allocationPolicy": str(services.provisioning.settings.default_policy),
            "hostedHubs": hubs,
            "iotHubs": [hub.to_json() for hub in linked],
        }
    )


async def linked_hubs(request: Request) -> Response:
    if request.method == "GET":
        services = await _authorize(request, auth.SERVICE_CONFIG)
        return json_response([hub.to_json() for hub in await services.linked_hubs.list()])
    services = await _authorize(request, auth.SERVICE_CONFIG)
    name = request.path_params["name"]
    if request.method == "DELETE":
        await services.linked_hubs.delete(name)
        return no_content()
    body = await json_object(request)
    weight = body.get("allocationWeight", 1)
    apply_policy = body.get("applyAllocationPolicy", True)
    if not isinstance(weight, int) or isinstance(weight, bool) or not isinstance(apply_policy, bool):
        raise BadRequest("'allocationWeight' is a whole number and 'applyAllocationPolicy' true or false")
    return json_response((await services.linked_hubs.put(name, weight, apply_policy)).to_json())


async def attempts(request: Request) -> Response:
    services = await _authorize(request, auth.REGISTRATION_READ)
    params = request.query_params
    query = AttemptFilter(
        registration_id=params.get("registrationId"),
        enrollment=params.get("enrollment"),
        failed_only=params.get("failed", "").lower() in ("1", "true"),
        limit=max(1, min(page_size(request) or 100, 10_000)),
    )
    return json_response([a.to_json() for a in await services.registrations.attempts(query)])


async def all_registrations(request: Request) -> Response:
    services = await _authorize(request, auth.REGISTRATION_READ)
    enrollment = request.query_params.get("enrollment")
    found = await services.registrations.of_enrollment(
        enrollment, request.headers.get("x-ms-continuation"), page_size(request)
    )
    return paged([r.to_json() for r in found.items], found.continuation, "DeviceRegistration")


async def simulate(request: Request) -> Response:
    services = await _authorize(request, auth.REGISTRATION_READ)
    body = await json_object(request)
    registration_id = body.get("registrationId")
    enrollment_id = body.get("enrollmentGroupId") or body.get("enrollmentId")
    if not isinstance(registration_id, str):
        raise BadRequest("a simulation needs 'registrationId'")
    if enrollment_id is not None and not isinstance(enrollment_id, str):
        raise BadRequest("'enrollmentGroupId' must be a string")
    result = await services.provisioning.simulate(registration_id, enrollment_id)
    return json_response(result.to_json())


ROUTES = [
    Route("/enrollments/{id}", enrollment, methods=["GET", "PUT", "DELETE"]),
    Route("/enrollments/{id}/attestationmechanism", attestation, methods=["POST"]),
    Route("/enrollments", bulk, methods=["POST"]),
    Route("/enrollments/query", query, methods=["POST"]),
    Route("/enrollmentgroups/{id}", enrollment, methods=["GET", "PUT", "DELETE"]),
    Route("/enrollmentgroups/{id}/attestationmechanism", attestation, methods=["POST"]),
    Route("/enrollmentgroups", bulk, methods=["POST"]),
    Route("/enrollmentgroups/query", query, methods=["POST"]),
    Route("/registrations/{id}", registration, methods=["GET", "DELETE"]),
    Route("/registrations/{id}/query", group_registrations, methods=["POST"]),
    Route("/edgeprov/dps", show, methods=["GET"]),
    Route("/edgeprov/dps/linkedhubs", linked_hubs, methods=["GET"]),
    Route("/edgeprov/dps/linkedhubs/{name}", linked_hubs, methods=["PUT", "DELETE"]),
    Route("/edgeprov/dps/attempts", attempts, methods=["GET"]),
    Route("/edgeprov/dps/registrations", all_registrations, methods=["GET"]),
    Route("/edgeprov/dps/simulate", simulate, methods=["POST"]),
]
