"""The catalogue API (``router``, under ``/api/v1``): stations, chargers, connectors, tariffs.

Mount with ``app.include_router(router)``; the app provides

* ``app.state.catalog`` -- the :class:`~cloud.catalog.repo.Catalog`;
* ``app.state.provisioning`` -- optional :class:`~cloud.catalog.provisioning.Provisioning`
  (one over the catalog is made when absent);
* ``app.state.publish_desired`` -- ``Consumer.publish_desired`` or None (then pushes are skipped
  and reported as such in the response; the provisioning loop pushes them later);
* ``app.state.registry`` -- optional :class:`~cloud.registry.DeviceRegistry` for live status.

Every endpoint takes the caller from :mod:`cloud.auth.principal` (``stations:*``,
``chargers:*``, ``tariffs:*`` scopes), every query is narrowed with
``principal.tenant_clause``; a row of a tenant the caller cannot see is "not found", and rows
are only created in visible tenants. Errors (also auth and validation failures) are
``{"error": code, "detail": text}``: 400 bad input, 401/403, 404, 409 conflict, 422 malformed
request, 503 not configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.errors import ApiError, ErrorMap, error_route
from cloud.auth.principal import Principal, require
from cloud.catalog.errors import Conflict, InvalidInput, NotFound
from cloud.catalog.models import (
    DEFAULT_TZ,
    Charger,
    Connector,
    ConnectorRef,
    Kind,
    Protocol,
    Station,
    StationStatus,
    TariffVersion,
)
from cloud.catalog.modes import OperatingMode, start_methods
from cloud.catalog.provisioning import Provisioning, PushResult
from cloud.catalog.repo import Catalog

#: what the catalogue's exceptions are answered with
ERRORS: ErrorMap = {NotFound: (404, "not_found"), Conflict: (409, "conflict"),
                    InvalidInput: (400, "bad_request")}

router = APIRouter(prefix="/api/v1", tags=["catalog"],
                   route_class=error_route(ERRORS, "CatalogRoute"))

StationsRead = Annotated[Principal, Depends(require("stations:read"))]
StationsWrite = Annotated[Principal, Depends(require("stations:write"))]
ChargersRead = Annotated[Principal, Depends(require("chargers:read"))]
ChargersWrite = Annotated[Principal, Depends(require("chargers:write"))]
TariffsRead = Annotated[Principal, Depends(require("tariffs:read"))]
TariffsWrite = Annotated[Principal, Depends(require("tariffs:write"))]


# -- request and response bodies ----------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationIn(_Body):
    """A new station (tenant: the caller's when omitted)."""

    name: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str = Field(default="", max_length=500)
    tz: str = DEFAULT_TZ
    status: StationStatus = StationStatus.ACTIVE
    tenant_id: str | None = Field(default=None, min_length=1, max_length=64)


class StationPatch(_Body):
    """Changes to a station (omitted fields stay)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=500)
    tz: str | None = None
    status: StationStatus | None = None


class StationOut(BaseModel):
    """A station."""

    id: str
    tenant_id: str
    name: str
    address: str
    lat: float
    lon: float
    tz: str
    status: str
    created_ms: int
    distance_km: float | None = None

    @classmethod
    def of(cls, station: Station, distance_km: float | None = None) -> StationOut:
        return cls(id=station.id, tenant_id=station.tenant_id, name=station.name,
                   address=station.address, lat=station.lat, lon=station.lon, tz=station.tz,
                   status=station.status, created_ms=station.created_ms,
                   distance_km=distance_km)


class StationList(BaseModel):
    """A page of stations (nearest first for a ``lat``/``lon`` search)."""

    items: list[StationOut]
    count: int


class ConnectorOut(BaseModel):
    """A connector with its live status (None: unknown or no registry)."""

    id: str
    tenant_id: str
    station_id: str
    charger_id: str
    gateway_id: str
    number: int
    device_id: str
    code: str
    status: str | None = None


class ConnectorList(BaseModel):
    """Connectors."""

    items: list[ConnectorOut]
    count: int


class ChargerIn(_Body):
    """A charger to register (its connectors 1..connector_count are created with it)."""

    station_id: str
    gateway_id: str = Field(min_length=1, max_length=128)
    device_id: str = Field(min_length=1, max_length=128,
                           description="YKC: 14-digit pile code; OCPP: chargePointId")
    protocol: Protocol
    kind: Kind
    rated_kw: Decimal = Field(gt=0, le=2000)
    operating_mode: OperatingMode = OperatingMode.ONLINE_BILLING
    connector_count: int = Field(default=1, ge=1, le=32)
    code: str | None = Field(default=None, description="QR / typed code; generated if omitted")
    password: str | None = Field(default=None, description="OCPP HTTP Basic password")


class ChargerPatch(_Body):
    """Changes to a charger (omitted fields stay; ``password: null`` is not a change)."""

    operating_mode: OperatingMode | None = None
    rated_kw: Decimal | None = Field(default=None, gt=0, le=2000)
    kind: Kind | None = None
    password: str | None = None


class PushOut(BaseModel):
    """What provisioning did for a change: ``published`` to every gateway, ``skipped`` (no
    broker: pushed later by the provisioning loop), ``failed`` (retried later)."""

    status: Literal["published", "skipped", "failed", "none"]
    gateways: list[dict[str, Any]] = []


class ChargerOut(BaseModel):
    """A charger with its connectors and live state."""

    id: str
    tenant_id: str
    station_id: str
    gateway_id: str
    device_id: str
    protocol: str
    kind: str
    rated_kw: Decimal
    operating_mode: str
    start_methods: list[str]
    connector_count: int
    code: str
    has_password: bool
    created_ms: int
    online: bool | None = None
    connectors: list[ConnectorOut]


class ChargerList(BaseModel):
    """Chargers."""

    items: list[ChargerOut]
    count: int


class ChargerChange(BaseModel):
    """A registered / changed / removed charger and the provisioning push."""

    charger: ChargerOut
    push: PushOut


class TariffIn(_Body):
    """A new tariff version: ``doc`` is a tariff document (see docs/billing.md)."""

    doc: dict[str, Any]
    name: str | None = Field(default=None, max_length=200)
    effective_from: int | None = Field(default=None, ge=0, description="ms; default now")
    ykc_rounding: Literal["refuse", "majority"] = "refuse"


class TariffOut(BaseModel):
    """A stored tariff version."""

    id: int
    tenant_id: str
    station_id: str
    name: str
    version: int
    effective_from: int
    ykc_rounding: str
    ykc_model_code: str
    created_ms: int
    doc: dict[str, Any]

    @classmethod
    def of(cls, t: TariffVersion) -> TariffOut:
        return cls(id=t.id, tenant_id=t.tenant_id, station_id=t.station_id, name=t.name,
                   version=t.version, effective_from=t.effective_from_ms,
                   ykc_rounding=t.ykc_rounding, ykc_model_code=f"{t.code:04d}",
                   created_ms=t.created_ms, doc=t.doc)


class TariffList(BaseModel):
    """Tariff versions, newest first."""

    items: list[TariffOut]
    count: int


class TariffChange(BaseModel):
    """A created tariff version and the provisioning push."""

    tariff: TariffOut
    push: PushOut


class CodeOut(BaseModel):
    """What a QR / typed code names."""

    kind: str
    code: str
    connectors: list[dict[str, Any]]


# -- helpers ------------------------------------------------------------------------------------


def _catalog(request: Request) -> Catalog:
    catalog = getattr(request.app.state, "catalog", None)
    if not isinstance(catalog, Catalog):
        raise ApiError(503, "unavailable", "the catalogue is not configured")
    return catalog


Cat = Annotated[Catalog, Depends(_catalog)]


def _provisioning(request: Request, catalog: Catalog) -> Provisioning:
    held = getattr(request.app.state, "provisioning", None)
    if isinstance(held, Provisioning):
        return held
    made = Provisioning(catalog)
    request.app.state.provisioning = made
    return made


def _publish(request: Request) -> Callable[..., Awaitable[int]] | None:
    return getattr(request.app.state, "publish_desired", None)


def _push_out(results: list[PushResult]) -> PushOut:
    if not results:
        return PushOut(status="none")
    statuses = {r.status for r in results}
    status: Literal["published", "skipped", "failed", "none"] = \
        "failed" if "failed" in statuses else "skipped" if "skipped" in statuses \
        else "published"
    return PushOut(status=status, gateways=[r.to_doc() for r in results])


class _Live:
    """Live state from the device registry (SQL; one query per gateway, cached for the
    request). Callable as a :data:`~cloud.catalog.repo.LiveStatus` for connectors."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self._cache: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}

    def _device(self, gw: str, product: str, device: str) -> dict[str, Any] | None:
        if self.registry is None:
            return None
        if gw not in self._cache:
            self._cache[gw] = {(d["product"], d["device"]): d for d in
                               self.registry.list_devices(gateway=gw, limit=1_000_000)}
        return self._cache[gw].get((product, device))

    def __call__(self, gw: str, device: str) -> str | None:
        """A connector's status: its reported ``status``, ``offline``, or None (unknown)."""
        found = self._device(gw, "connector", device)
        if found is None:
            return None
        if not found.get("online"):
            return "offline"
        value = (found.get("properties") or {}).get("status")
        return str(value) if value is not None else None

    def online(self, gw: str, device: str) -> bool | None:
        """Whether a charger is online (None: never seen)."""
        found = self._device(gw, "charger", device)
        return None if found is None else bool(found.get("online"))


def _live(request: Request) -> _Live:
    return _Live(getattr(request.app.state, "registry", None))


def _connector_out(c: Connector | ConnectorRef, status: str | None) -> ConnectorOut:
    if isinstance(c, ConnectorRef):
        return ConnectorOut(id=c.connector_id, tenant_id=c.tenant_id, station_id=c.station_id,
                            charger_id=c.charger_id, gateway_id=c.gateway_id, number=c.number,
                            device_id=c.connector_device_id, code=c.code, status=status)
    return ConnectorOut(id=c.id, tenant_id=c.tenant_id, station_id=c.station_id,
                        charger_id=c.charger_id, gateway_id=c.gateway_id, number=c.number,
                        device_id=c.device_id, code=c.code, status=status)


def _charger_out(c: Charger, live: _Live | None) -> ChargerOut:
    return ChargerOut(
        id=c.id, tenant_id=c.tenant_id, station_id=c.station_id, gateway_id=c.gateway_id,
        device_id=c.device_id, protocol=c.protocol, kind=c.kind, rated_kw=c.rated_kw,
        operating_mode=c.operating_mode,
        start_methods=sorted(m.value for m in start_methods(c.kind, c.operating_mode)),
        connector_count=c.connector_count, code=c.code, has_password=c.has_password,
        created_ms=c.created_ms,
        online=live.online(c.gateway_id, c.device_id) if live is not None else None,
        connectors=[_connector_out(x, live(x.gateway_id, x.device_id) if live else None)
                    for x in c.connectors])


def _visible(principal: Principal, tenant_id: str) -> None:
    if not principal.sees(tenant_id):
        raise ApiError(403, "forbidden", f"tenant {tenant_id!r} is not yours to write to")


# -- stations -------------------------------------------------------------------------------


@router.post("/stations", status_code=201, response_model=StationOut)
async def create_station(body: StationIn, principal: StationsWrite, catalog: Cat) -> StationOut:
    """Create a station in a tenant the caller can see."""
    tenant = body.tenant_id or principal.tenant_id
    _visible(principal, tenant)
    station = await asyncio.to_thread(
        catalog.create_station, tenant_id=tenant, name=body.name, lat=body.lat, lon=body.lon,
        address=body.address, tz=body.tz, status=body.status.value)
    return StationOut.of(station)


@router.get("/stations", response_model=StationList)
async def list_stations(
    principal: StationsRead, catalog: Cat,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float | None, Query(gt=0, le=20_000)] = None,
    status: StationStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> StationList:
    """Stations; with ``lat``, ``lon`` and ``radius_km``: those within the radius, nearest
    first, each with ``distance_km`` (``status`` defaults to active for a search)."""
    given = [x is not None for x in (lat, lon, radius_km)]
    if any(given) and not all(given):
        raise ApiError(400, "bad_request", "a nearby search needs lat, lon and radius_km")
    scope = principal.tenant_clause
    if lat is not None and lon is not None and radius_km is not None:
        found = await asyncio.to_thread(
            catalog.nearby, lat, lon, radius_km, scope=scope,
            status=(status or StationStatus.ACTIVE).value, limit=offset + limit)
        items = [StationOut.of(n.station, n.distance_km) for n in found[offset:]]
    else:
        stations = await asyncio.to_thread(
            catalog.list_stations, scope=scope, status=status.value if status else None,
            limit=limit, offset=offset)
        items = [StationOut.of(s) for s in stations]
    return StationList(items=items, count=len(items))


@router.get("/stations/{station_id}", response_model=StationOut)
async def get_station(station_id: str, principal: StationsRead, catalog: Cat) -> StationOut:
    """A station."""
    return StationOut.of(await asyncio.to_thread(catalog.get_station, station_id,
                                                 scope=principal.tenant_clause))


@router.patch("/stations/{station_id}", response_model=StationOut)
async def update_station(station_id: str, body: StationPatch, principal: StationsWrite,
                         catalog: Cat) -> StationOut:
    """Change a station."""
    changes = body.model_dump(exclude_none=True)
    if "status" in changes:
        changes["status"] = changes["status"].value
    return StationOut.of(await asyncio.to_thread(
        lambda: catalog.update_station(station_id, scope=principal.tenant_clause, **changes)))


@router.delete("/stations/{station_id}", status_code=204)
async def delete_station(station_id: str, principal: StationsWrite, catalog: Cat) -> Response:
    """Delete a station that has no chargers."""
    await asyncio.to_thread(catalog.delete_station, station_id, scope=principal.tenant_clause)
    return Response(status_code=204)


@router.get("/stations/{station_id}/connectors/free", response_model=ConnectorList)
async def free_connectors(station_id: str, request: Request, principal: StationsRead,
                          catalog: Cat) -> ConnectorList:
    """Connectors of the station that are ``available`` now (live status from the registry)."""
    live = _live(request)
    refs = await asyncio.to_thread(catalog.free_connectors, station_id, live,
                                   scope=principal.tenant_clause)
    items = [_connector_out(r, "available") for r in refs]
    return ConnectorList(items=items, count=len(items))


# -- tariffs --------------------------------------------------------------------------------


@router.post("/stations/{station_id}/tariffs", status_code=201, response_model=TariffChange)
async def create_tariff(station_id: str, body: TariffIn, request: Request,
                        principal: TariffsWrite, catalog: Cat) -> TariffChange:
    """Store a new tariff version; when it is in force now, push it to the station's gateways
    (a future version is pushed by the provisioning loop when it comes into force)."""
    version = await asyncio.to_thread(
        catalog.create_tariff, station_id, body.doc, name=body.name,
        effective_from_ms=body.effective_from, ykc_rounding=body.ykc_rounding,
        scope=principal.tenant_clause)
    push = PushOut(status="none")
    if version.effective_from_ms <= catalog.clock():
        provisioning = _provisioning(request, catalog)
        push = _push_out(await provisioning.push_station(station_id, _publish(request)))
    return TariffChange(tariff=TariffOut.of(version), push=push)


@router.get("/stations/{station_id}/tariffs", response_model=TariffList)
async def list_tariffs(station_id: str, principal: TariffsRead, catalog: Cat) -> TariffList:
    """A station's tariff versions, newest first."""
    items = [TariffOut.of(t) for t in await asyncio.to_thread(
        catalog.list_tariffs, station_id, scope=principal.tenant_clause)]
    return TariffList(items=items, count=len(items))


@router.get("/stations/{station_id}/tariff", response_model=TariffOut)
async def tariff_in_force(station_id: str, principal: TariffsRead, catalog: Cat,
                          at: Annotated[int | None, Query(ge=0)] = None) -> TariffOut:
    """The version in force now (or at ``at`` ms)."""
    await asyncio.to_thread(catalog.get_station, station_id, scope=principal.tenant_clause)
    found = await asyncio.to_thread(catalog.tariff_at, station_id,
                                    catalog.clock() if at is None else at,
                                    scope=principal.tenant_clause)
    if found is None:
        raise ApiError(404, "not_found", f"station {station_id!r} has no tariff in force then")
    return TariffOut.of(found.ref)


@router.post("/stations/{station_id}/tariffs/push", response_model=PushOut)
async def push_tariff(station_id: str, request: Request, principal: TariffsWrite,
                      catalog: Cat) -> PushOut:
    """Push the station's tariff in force (and any pending change) to its gateways again."""
    station = await asyncio.to_thread(catalog.get_station, station_id,
                                      scope=principal.tenant_clause)
    gateways = await asyncio.to_thread(catalog.gateways_of_station, station_id)
    await asyncio.to_thread(catalog.mark_changed, gateways, station.tenant_id)
    provisioning = _provisioning(request, catalog)
    return _push_out(await provisioning.push_station(station_id, _publish(request)))


@router.get("/tariffs/{tariff_id}", response_model=TariffOut)
async def get_tariff(tariff_id: int, principal: TariffsRead, catalog: Cat) -> TariffOut:
    """A tariff version by id."""
    return TariffOut.of(await asyncio.to_thread(catalog.get_tariff, tariff_id,
                                                scope=principal.tenant_clause))


# -- chargers and connectors ----------------------------------------------------------------


async def _push_charger(request: Request, catalog: Catalog, charger: Charger) -> PushOut:
    provisioning = _provisioning(request, catalog)
    return _push_out([await provisioning.push(charger.gateway_id, _publish(request),
                                              chargers=[charger.device_id])])


@router.post("/chargers", status_code=201, response_model=ChargerChange)
async def register_charger(body: ChargerIn, request: Request, principal: ChargersWrite,
                           catalog: Cat) -> ChargerChange:
    """Register a charger at a visible station and provision it to its gateway."""
    station = await asyncio.to_thread(catalog.get_station, body.station_id,
                                      scope=principal.tenant_clause)
    _visible(principal, station.tenant_id)
    charger = await asyncio.to_thread(
        catalog.register_charger, station_id=station.id, gateway_id=body.gateway_id,
        device_id=body.device_id, protocol=body.protocol.value, kind=body.kind.value,
        rated_kw=body.rated_kw, operating_mode=body.operating_mode.value,
        connector_count=body.connector_count, code=body.code, password=body.password,
        scope=principal.tenant_clause)
    push = await _push_charger(request, catalog, charger)
    out = await asyncio.to_thread(_charger_out, charger, _live(request))
    return ChargerChange(charger=out, push=push)


@router.get("/chargers", response_model=ChargerList)
async def list_chargers(
    request: Request, principal: ChargersRead, catalog: Cat,
    station_id: str | None = None,
    gateway_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ChargerList:
    """Chargers with connectors and live status."""
    chargers = await asyncio.to_thread(
        catalog.list_chargers, scope=principal.tenant_clause, station_id=station_id,
        gateway_id=gateway_id, limit=limit, offset=offset)
    live = _live(request)
    items = await asyncio.to_thread(lambda: [_charger_out(c, live) for c in chargers])
    return ChargerList(items=items, count=len(items))


@router.get("/chargers/{charger_id}", response_model=ChargerOut)
async def get_charger(charger_id: str, request: Request, principal: ChargersRead,
                      catalog: Cat) -> ChargerOut:
    """A charger with connectors and live status."""
    charger = await asyncio.to_thread(catalog.get_charger, charger_id,
                                      scope=principal.tenant_clause)
    live = _live(request)
    return await asyncio.to_thread(_charger_out, charger, live)


@router.patch("/chargers/{charger_id}", response_model=ChargerChange)
async def update_charger(charger_id: str, body: ChargerPatch, request: Request,
                         principal: ChargersWrite, catalog: Cat) -> ChargerChange:
    """Change a charger's mode, rating, kind or password; the gateway is provisioned again."""
    changes = body.model_dump(exclude_none=True)
    for key in ("operating_mode", "kind"):
        if key in changes:
            changes[key] = changes[key].value
    charger = await asyncio.to_thread(
        lambda: catalog.update_charger(charger_id, scope=principal.tenant_clause, **changes))
    push = await _push_charger(request, catalog, charger)
    out = await asyncio.to_thread(_charger_out, charger, _live(request))
    return ChargerChange(charger=out, push=push)


@router.delete("/chargers/{charger_id}", response_model=ChargerChange)
async def delete_charger(charger_id: str, request: Request, principal: ChargersWrite,
                         catalog: Cat) -> ChargerChange:
    """Remove a charger and its connectors; the gateway no longer admits it."""
    removed = await asyncio.to_thread(catalog.delete_charger, charger_id,
                                      scope=principal.tenant_clause)
    provisioning = _provisioning(request, catalog)
    push = _push_out([await provisioning.push(removed.gateway_id, _publish(request),
                                              chargers=[])])
    return ChargerChange(charger=_charger_out(removed, None), push=push)


@router.get("/connectors", response_model=ConnectorList)
async def list_connectors(
    request: Request, principal: ChargersRead, catalog: Cat,
    station_id: str | None = None, charger_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ConnectorList:
    """Connectors (of a station or charger) with live status."""
    refs = await asyncio.to_thread(catalog.connector_refs, scope=principal.tenant_clause,
                                   station_id=station_id, charger_id=charger_id, limit=limit,
                                   offset=offset)
    live = _live(request)
    items = await asyncio.to_thread(
        lambda: [_connector_out(r, live(r.gateway_id, r.connector_device_id)) for r in refs])
    return ConnectorList(items=items, count=len(items))


@router.get("/connectors/{connector_id}", response_model=ConnectorOut)
async def get_connector(connector_id: str, request: Request, principal: ChargersRead,
                        catalog: Cat) -> ConnectorOut:
    """A connector with live status."""
    connector = await asyncio.to_thread(catalog.get_connector, connector_id,
                                        scope=principal.tenant_clause)
    live = _live(request)
    status = await asyncio.to_thread(live, connector.gateway_id, connector.device_id)
    return _connector_out(connector, status)


@router.get("/codes/{code}", response_model=CodeOut)
async def resolve_code(code: str, principal: ChargersRead, catalog: Cat) -> CodeOut:
    """What a QR / typed charger or connector code names (visible tenants only)."""
    found = await asyncio.to_thread(catalog.resolve_code, code)
    if found is None or not all(principal.sees(r.tenant_id) for r in found.connectors):
        raise ApiError(404, "not_found", f"no charger or connector with code {code!r}")
    return CodeOut(kind=found.kind, code=found.code, connectors=[
        {"connector_id": r.connector_id, "charger_id": r.charger_id, "station_id": r.station_id,
         "number": r.number, "gateway_id": r.gateway_id, "device_id": r.connector_device_id,
         "operating_mode": r.operating_mode, "kind": r.kind}
        for r in found.connectors])
