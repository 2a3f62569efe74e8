"""The devices API (``router``, under ``/api/v1``): devices, gateways, service calls, desired state.

Also holds what the API modules of :mod:`cloud.api` share: the gateway visibility of a
principal and the consumer doing device calls. Failures are ``{"error": code, "detail": text}``
(:mod:`cloud.api.errors`).

The app provides ``app.state.registry`` (:class:`~cloud.registry.DeviceRegistry`),
``app.state.device_calls`` (the :class:`~cloud.consumer.Consumer`: ``call`` and
``publish_desired``; None without a broker) and ``app.state.catalog`` (a gateway is visible to a
principal when it serves a charger of one of the principal's tenants; the platform admin sees
every gateway).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from cloud.api.errors import ApiError, ErrorRoute
from cloud.auth.principal import Principal, require
from cloud.errors import CommandError, CommandTimeout
from thingmodels.errors import ThingModelError


async def visible_gateways(request: Request, principal: Principal) -> set[str] | None:
    """The gateways ``principal`` may see (None: all, for the platform admin)."""
    if principal.visible_tenants is None:
        return None
    catalog = getattr(request.app.state, "catalog", None)
    if catalog is None:
        return set()
    return set(await asyncio.to_thread(catalog.gateways_of_tenants,
                                       sorted(principal.visible_tenants)))


async def check_gateway(request: Request, principal: Principal, gateway: str) -> None:
    """404 unless ``principal`` sees ``gateway``."""
    visible = await visible_gateways(request, principal)
    if visible is not None and gateway not in visible:
        raise ApiError(404, "not_found", f"no gateway {gateway!r}")


def device_calls(request: Request) -> Any:
    """The consumer doing device calls (503 without a broker)."""
    calls = getattr(request.app.state, "device_calls", None)
    if calls is None:
        cloud = getattr(request.app.state, "cloud", None)
        calls = getattr(cloud, "consumer", None)
    if calls is None:
        raise ApiError(503, "no_broker", "no MQTT broker: device calls are not possible")
    return calls


router = APIRouter(prefix="/api/v1", route_class=ErrorRoute)

DevicesRead = Annotated[Principal, Depends(require("devices:read"))]
DevicesWrite = Annotated[Principal, Depends(require("devices:write"))]
CommandsWrite = Annotated[Principal, Depends(require("commands:write"))]


class DeviceOut(BaseModel):
    """A device as the API shows it."""

    gateway: str
    product: str
    device: str
    online: bool
    session: int
    lastSeen: int | None  # noqa: N815 - JSON field names are camelCase
    firstSeen: int | None  # noqa: N815
    properties: dict[str, Any]


class DeviceList(BaseModel):
    """A page of devices."""

    items: list[DeviceOut]
    count: int


class GatewayOut(BaseModel):
    """A gateway as the API shows it."""

    gateway: str
    online: bool
    session: int
    lastSeen: int | None  # noqa: N815


class GatewayList(BaseModel):
    """The gateways."""

    items: list[GatewayOut]
    count: int


class ServiceCall(BaseModel):
    """A device service call through the API."""

    params: dict[str, Any] = {}
    timeout: float = Field(default=10.0, gt=0, le=120)


class ServiceResult(BaseModel):
    """The device's reply."""

    id: str
    code: int
    msg: str | None = None
    output: dict[str, Any] | None = None


class DesiredAck(BaseModel):
    """A desired-state document accepted for publishing."""

    version: int


@router.get("/devices", response_model=DeviceList, tags=["devices"])
async def list_devices(
    request: Request, principal: DevicesRead,
    gateway: Annotated[str | None, Query(max_length=128)] = None,
    product: Annotated[str | None, Query(max_length=32)] = None,
    online: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeviceList:
    """Devices of the gateways the caller sees (``online``: the device's and its gateway's)."""
    registry = request.app.state.registry
    visible = await visible_gateways(request, principal)
    if visible is None:
        items = await asyncio.to_thread(registry.list_devices, gateway=gateway,
                                        product=product, online=online, limit=limit,
                                        offset=offset)
    elif gateway is not None and gateway not in visible:
        items = []
    else:
        every = await asyncio.to_thread(registry.list_devices, gateway=gateway,
                                        product=product, online=online, limit=10**9, offset=0)
        items = [i for i in every if i["gateway"] in visible][offset: offset + limit]
    return DeviceList(items=[DeviceOut(**i) for i in items], count=len(items))


@router.get("/gateways", response_model=GatewayList, tags=["devices"])
async def list_gateways(request: Request, principal: DevicesRead) -> GatewayList:
    """Gateways the caller sees."""
    visible = await visible_gateways(request, principal)
    items = await asyncio.to_thread(request.app.state.registry.list_gateways)
    if visible is not None:
        items = [i for i in items if i["gateway"] in visible]
    return GatewayList(items=[GatewayOut(**i) for i in items], count=len(items))


@router.post("/devices/{gateway}/{product}/{device}/services/{service}",
             response_model=ServiceResult, tags=["commands"])
async def call_service(request: Request, principal: CommandsWrite, gateway: str, product: str,
                       device: str, service: str, body: ServiceCall) -> ServiceResult:
    """Call any service of a device of a visible gateway and wait for the reply."""
    await check_gateway(request, principal, gateway)
    calls = device_calls(request)
    try:
        reply = await calls.call(gateway, product, device, service, body.params,
                                 timeout=body.timeout)
    except ThingModelError as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    except CommandTimeout as exc:
        raise ApiError(504, "timeout", str(exc)) from exc
    except CommandError as exc:
        raise ApiError(503, "unavailable", str(exc)) from exc
    return ServiceResult(id=reply.cid or "", code=reply.code or 0, msg=reply.msg,
                         output=reply.p)


@router.put("/gateways/{gateway}/desired/{product}/{device}", response_model=DesiredAck,
            status_code=202, tags=["devices"])
async def put_desired(request: Request, principal: DevicesWrite, gateway: str, product: str,
                      device: str, doc: dict[str, Any]) -> DesiredAck:
    """Publish a desired-state document (retained) for a device of a visible gateway."""
    await check_gateway(request, principal, gateway)
    calls = device_calls(request)
    try:
        version = await calls.publish_desired(gateway, product, device, doc)
    except ThingModelError as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    except CommandError as exc:
        raise ApiError(503, "unavailable", str(exc)) from exc
    return DesiredAck(version=version)
