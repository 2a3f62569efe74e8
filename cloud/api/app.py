"""FastAPI application: health, Prometheus metrics and the device, command and statistics routers.

``create_app`` builds the app around the device registry; :class:`cloud.service.CloudService`
adds the catalogue, accounts, orders ... and their routers and puts its parts on ``app.state``
(``cloud``, ``catalog``, ``provisioning``, ``publish_desired``, ``accounts``, ``orders`` ...).
/healthz and /metrics are open (operations); everything under /api/v1 needs a principal
(docs/api.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.exc import DataError, StatementError

from cloud.api.commands import CommandStore
from cloud.api.commands import router as commands_router
from cloud.api.devices import (
    DesiredAck,
    DeviceList,
    DeviceOut,
    ServiceCall,
    ServiceResult,
)
from cloud.api.devices import router as devices_router
from cloud.api.errors import error_response, validation_error
from cloud.api.stats import router as stats_router
from cloud.metrics import CloudMetrics
from cloud.registry import DeviceRegistry

__all__ = ["DesiredAck", "DeviceList", "DeviceOut", "Health", "ServiceCall", "ServiceResult",
           "create_app"]


class Health(BaseModel):
    """Liveness and broker link."""

    status: str
    mqtt: bool
    worker: str
    sharedSubscriptions: bool  # noqa: N815


def create_app(registry: DeviceRegistry, metrics: CloudMetrics, *,
               health: Any = None, worker_id: str = "cloud-1",
               commands: Any = None) -> FastAPI:
    """Build the app around a registry and metrics.

    ``health()`` -> (mqtt_ok, shared); ``commands`` does the device calls (the consumer:
    ``call``, ``publish_desired``; None: no broker, calls answer 503). The commands table is
    created in the registry's database.
    """
    app = FastAPI(title="voltmesh", version="0.1.0",
                  description="North-bound API of the voltmesh EV-charging platform.")
    app.state.registry = registry
    app.state.device_calls = commands
    app.state.command_store = CommandStore(registry.engine)

    def openapi() -> dict[str, Any]:
        """The document, with 422 declared as what the API sends: ``{"error", "detail"}``."""
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorBody"] = {
            "title": "ErrorBody", "type": "object", "required": ["error", "detail"],
            "properties": {"error": {"type": "string", "description": "a stable error code"},
                           "detail": {"description": "what was wrong, for people"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                response = operation.get("responses", {}).get("422")
                if isinstance(response, dict):
                    response["description"] = "The request is invalid"
                    response["content"] = {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # routes outside an ErrorRoute answer invalid input alike, as the document declares
        return validation_error(exc)

    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError) -> JSONResponse:
        return error_response(400, "bad_request", str(exc))

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # an integer parameter beyond what the database stores (64 bits): the caller's error
        return error_response(400, "bad_request", "a number is out of range (at most 2**63-1)")

    @app.exception_handler(StatementError)
    async def _statement(request: Request, exc: StatementError) -> JSONResponse:
        if isinstance(exc.orig, OverflowError):
            return await _overflow(request, exc.orig)
        if isinstance(exc, DataError):  # PostgreSQL: "integer out of range" and the like
            return error_response(400, "bad_request", "a value is out of range for the database")
        raise exc

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # a bug: the caller still gets the API's error body (the server logs the traceback)
        return error_response(500, "internal", "internal error")

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        mqtt_ok, shared_on = health() if health is not None else (True, False)
        return Health(status="ok", mqtt=mqtt_ok, worker=worker_id,
                      sharedSubscriptions=shared_on)

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        metrics.devices_online.set(registry.online_count())
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(devices_router)
    app.include_router(commands_router)
    app.include_router(stats_router)
    return app
