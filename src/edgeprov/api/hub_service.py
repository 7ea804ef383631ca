"""The hub's service API as ``azure-iot-hub`` and aziot-identityd call it (spec/hub-protocol.md §3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgeprov.api import auth, hub_messages
from edgeprov.api.http import json_object, json_response, json_value, no_content, page_size, paged
from edgeprov.api.services import Services
from edgeprov.errors import BadRequest
from edgeprov.hub.configurations import check_queries

MAX_DEVICE_LIST = 1000


async def _authorize(request: Request, right: str, *, own_device: bool = False) -> tuple[Services, str]:
    """The services and the hub the caller's token is for."""
    services: Services = request.app.state.services
    device = request.path_params.get("device") if own_device else None
    caller = await services.auth.hub(request.headers.get("authorization"), right, own_device=device)
    return services, caller.service


async def device(request: Request) -> Response:
    device_id = request.path_params["device"]
    if request.method == "GET":
        services, hub = await _authorize(request, auth.REGISTRY_READ)
        return json_response((await services.hubs.get_device(hub, device_id)).to_json())
    services, hub = await _authorize(request, auth.REGISTRY_WRITE)
    if_match = request.headers.get("if-match")
    if request.method == "DELETE":
        await services.hubs.delete_device(hub, device_id, if_match)
        return no_content()
    saved = await services.hubs.put_device(hub, device_id, await json_object(request), if_match)
    return json_response(saved.to_json())


async def devices(request: Request) -> Response:
    if request.method == "POST":
        services, hub = await _authorize(request, auth.REGISTRY_WRITE)
        result = await services.hubs.bulk(hub, await json_value(request))
        return json_response(result.to_json(), 200 if not result.errors else 400)
    services, hub = await _authorize(request, auth.REGISTRY_READ)
    top = page_size(request) or MAX_DEVICE_LIST
    found = await services.hubs.list_devices(hub, min(top, MAX_DEVICE_LIST), request.query_params.get("after", ""))
    return json_response([d.to_json() for d in found])


async def query(request: Request) -> Response:
    services, hub = await _authorize(request, auth.REGISTRY_READ)
    spec = await json_value(request)
    if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
        raise BadRequest('a query body is {"query": "SELECT * FROM devices"}')
    continuation = request.headers.get("x-ms-continuation")
    page = await services.queries.page(hub, spec["query"], continuation, page_size(request))
    return paged(page.items, page.continuation, page.item_type)


async def module(request: Request) -> Response:
    device_id, module_id = request.path_params["device"], request.path_params["module"]
    if request.method == "GET":
        services, hub = await _authorize(request, auth.REGISTRY_READ, own_device=True)
        return json_response((await services.hubs.get_module(hub, device_id, module_id)).to_json())
    services, hub = await _authorize(request, auth.REGISTRY_WRITE, own_device=True)
    if_match = request.headers.get("if-match")
    if request.method == "DELETE":
        await services.hubs.delete_module(hub, device_id, module_id, if_match)
        return no_content()
    saved = await services.hubs.put_module(hub, device_id, module_id, await json_object(request), if_match)
    return json_response(saved.to_json())


async def modules(request: Request) -> Response:
    services, hub = await _authorize(request, auth.REGISTRY_READ, own_device=True)
    found = await services.hubs.list_modules(hub, request.path_params["device"])
    return json_response([m.to_json() for m in found])


async def twin(request: Request) -> Response:
    device_id = request.path_params["device"]
    module_id = request.path_params.get("module", "")
    if request.method == "GET":
        services, hub = await _authorize(request, auth.REGISTRY_READ)
        return json_response(await services.hubs.get_twin(hub, device_id, module_id))
    services, hub = await _authorize(request, auth.SERVICE_CONNECT)
    view = await services.hubs.update_twin(
        hub,
        device_id,
        module_id,
        await json_object(request),
        request.headers.get("if-match"),
        replace_all=request.method == "PUT",
    )
    return json_response(view)


async def apply_configuration_content(request: Request) -> Response:
    services, hub = await _authorize(request, auth.REGISTRY_WRITE)
    await services.hubs.apply_configuration_content(hub, request.path_params["device"], await json_value(request))
    return no_content()


async def configuration(request: Request) -> Response:
    config_id = request.path_params["id"]
    if request.method == "GET":
        services, hub = await _authorize(request, auth.REGISTRY_READ)
        return json_response(await services.configurations.get(hub, config_id))
    services, hub = await _authorize(request, auth.REGISTRY_WRITE)
    if_match = request.headers.get("if-match")
    if request.method == "DELETE":
        await services.configurations.delete(hub, config_id, if_match)
        return no_content()
    return json_response(await services.configurations.put(hub, config_id, await json_object(request), if_match))


async def configurations(request: Request) -> Response:
    services, hub = await _authorize(request, auth.REGISTRY_READ)
    return json_response(await services.configurations.list_configurations(hub, page_size(request)))


async def configuration_queries(request: Request) -> Response:
    await _authorize(request, auth.REGISTRY_READ)
    return json_response(check_queries(await json_value(request)))


async def device_statistics(request: Request) -> Response:
    services, hub = await _authorize(request, auth.REGISTRY_READ)
    return json_response(await services.hubs.statistics(hub))


async def service_statistics(request: Request) -> Response:
    services, hub = await _authorize(request, auth.SERVICE_CONNECT)
    return json_response({"connectedDeviceCount": await services.messaging.connected_devices(hub)})


async def invoke_method(request: Request) -> Response:
    services, hub = await _authorize(request, auth.SERVICE_CONNECT)
    device_id = request.path_params["device"]
    module_id = request.path_params.get("module", "")
    result = await services.messaging.invoke(hub, device_id, module_id, await json_object(request))
    return json_response(result.to_json())


async def purge_c2d(request: Request) -> Response:
    services, hub = await _authorize(request, auth.SERVICE_CONNECT)
    device_id = request.path_params["device"]
    purged = await services.messaging.purge_c2d(hub, device_id)
    return json_response({"totalMessagesPurged": purged, "deviceId": device_id, "moduleId": None})


ROUTES = [
    Route("/devices", devices, methods=["GET", "POST"]),
    Route("/devices/query", query, methods=["POST"]),
    Route("/devices/{device}", device, methods=["GET", "PUT", "DELETE"]),
    Route("/devices/{device}/applyconfigurationcontent", apply_configuration_content, methods=["POST"]),
    Route("/devices/{device}/modules", modules, methods=["GET"]),
    Route("/devices/{device}/modules/{module}", module, methods=["GET", "PUT", "DELETE"]),
    Route("/twins/{device}", twin, methods=["GET", "PATCH", "PUT"]),
    Route("/twins/{device}/modules/{module}", twin, methods=["GET", "PATCH", "PUT"]),
    Route("/statistics/devices", device_statistics, methods=["GET"]),
    Route("/configurations", configurations, methods=["GET"]),
    Route("/configurations/testqueries", configuration_queries, methods=["POST"]),
    Route("/configurations/{id}", configuration, methods=["GET", "PUT", "DELETE"]),
    Route("/statistics/service", service_statistics, methods=["GET"]),
    Route("/twins/{device}/methods", invoke_method, methods=["POST"]),
    Route("/twins/{device}/modules/{module}/methods", invoke_method, methods=["POST"]),
    Route("/devices/{device}/commands", purge_c2d, methods=["DELETE"]),
    *hub_messages.ROUTES,
]
