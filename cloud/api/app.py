"""FastAPI application: health, devices, Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from cloud.errors import CommandError, CommandTimeout
from cloud.metrics import CloudMetrics
from cloud.registry import DeviceRegistry
from thingmodels.errors import ThingModelError


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


class Health(BaseModel):
    """Liveness and broker link."""

    status: str
    mqtt: bool
    worker: str
    sharedSubscriptions: bool  # noqa: N815


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


def create_app(registry: DeviceRegistry, metrics: CloudMetrics, *,
               health: Any = None, worker_id: str = "cloud-1",
               commands: Any = None) -> FastAPI:
    """Build the app around a registry and metrics (``health()`` -> (mqtt_ok, shared))."""
    app = FastAPI(title="voltmesh", version="0.1.0",
                  description="North-bound API of the voltmesh EV-charging platform.")

    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": "bad_request", "detail": str(exc)})

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        mqtt_ok, shared_on = health() if health is not None else (True, False)
        return Health(status="ok", mqtt=mqtt_ok, worker=worker_id,
                      sharedSubscriptions=shared_on)

    @app.get("/api/v1/devices", response_model=DeviceList, tags=["devices"])
    async def list_devices(
        gateway: Annotated[str | None, Query(max_length=128)] = None,
        product: Annotated[str | None, Query(max_length=32)] = None,
        online: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DeviceList:
        items = registry.list_devices(gateway=gateway, product=product, online=online,
                                      limit=limit, offset=offset)
        return DeviceList(items=[DeviceOut(**i) for i in items], count=len(items))

    @app.get("/api/v1/gateways", tags=["devices"])
    async def list_gateways() -> dict[str, Any]:
        items = registry.list_gateways()
        return {"items": items, "count": len(items)}

    @app.post("/api/v1/devices/{gateway}/{product}/{device}/services/{service}",
              response_model=ServiceResult, tags=["commands"])
    async def call_service(gateway: str, product: str, device: str, service: str,
                           body: ServiceCall) -> ServiceResult | JSONResponse:
        if commands is None:
            return JSONResponse(status_code=503, content={"error": "no_broker"})
        try:
            reply = await commands.call(gateway, product, device, service, body.params,
                                        timeout=body.timeout)
        except ThingModelError as exc:
            return JSONResponse(status_code=400, content={"error": "bad_request",
                                                          "detail": str(exc)})
        except CommandTimeout as exc:
            return JSONResponse(status_code=504, content={"error": "timeout", "detail": str(exc)})
        except CommandError as exc:
            return JSONResponse(status_code=503, content={"error": "unavailable",
                                                          "detail": str(exc)})
        return ServiceResult(id=reply.cid or "", code=reply.code or 0, msg=reply.msg,
                             output=reply.p)

    @app.put("/api/v1/gateways/{gateway}/desired/{product}/{device}", response_model=DesiredAck,
             status_code=202, tags=["devices"])
    async def put_desired(gateway: str, product: str, device: str,
                          doc: dict[str, Any]) -> DesiredAck | JSONResponse:
        if commands is None:
            return JSONResponse(status_code=503, content={"error": "no_broker"})
        try:
            version = await commands.publish_desired(gateway, product, device, doc)
        except ThingModelError as exc:
            return JSONResponse(status_code=400, content={"error": "bad_request",
                                                          "detail": str(exc)})
        except CommandError as exc:
            return JSONResponse(status_code=503, content={"error": "unavailable",
                                                          "detail": str(exc)})
        return DesiredAck(version=version)

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        metrics.devices_online.set(registry.online_count())
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
