"""Station statistics (``router``, under ``/api/v1``): ``GET /stats/stations?from=&to=``.

Per station and **local day** (the station's time zone; ``from`` and ``to`` are inclusive dates):

* ``energy`` per tier (``tip``/``peak``/``flat``/``valley``) and in total, kWh as decimal strings,
  from the settlement lines (``order_tiers``) of billed orders;
* ``electricityRevenue``, ``serviceRevenue``, ``revenue`` (CNY decimal strings) of billed orders
  (settled, refunded, unpaid, disputed; refunds are shown apart as ``refunded``);
* ``orders`` (sessions started that day), ``billedOrders``;
* ``chargingSeconds`` and ``utilisation`` = charging time / (connectors x day length) (4 places;
  a 23 or 25 hour DST day counts as such);

and per station the **current** connector counts ``faulted``, ``idle``, ``charging``, ``offline``
(and ``other``) from the device registry (live status and presence of connector and gateway).

An order belongs to the day it **started** (its whole charging time and money too). The
aggregation is SQL (``GROUP BY`` station, day) over integer minor units --
``CAST(ROUND(amount * 100) AS BIGINT)`` -- so sums are exact on PostgreSQL (``Numeric``) and on
SQLite (where the amounts are decimal strings). Scope ``stats:read``; stations of the caller's
tenants only.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, and_, case, cast, func, literal_column
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import col

from cloud.api.errors import ApiError, ErrorRoute
from cloud.auth.principal import Principal, require
from cloud.catalog.models import ConnectorRef, Station
from cloud.orders.models import Order, OrderTier
from cloud.orders.status import BILLED

#: the longest period one request may ask for
MAX_DAYS = 366
TIERS = ("tip", "peak", "flat", "valley")
_CENT = Decimal("0.01")
_E4 = Decimal("0.0001")

#: live connector status (connector.yaml ``status``) -> the counted class
_STATUS_CLASS = {"available": "idle", "charging": "charging", "suspended": "charging",
                 "preparing": "charging", "finishing": "charging", "faulted": "faulted",
                 "offline": "offline"}


@dataclass
class DayStats:
    """One station's figures of one local day (minor units while adding up)."""

    day: date
    seconds: int
    orders: int = 0
    billed: int = 0
    electricity_cents: int = 0
    service_cents: int = 0
    refunded_cents: int = 0
    charging_ms: int = 0
    energy_e4: dict[str, int] = field(default_factory=dict)

    def doc(self, connectors: int) -> dict[str, Any]:
        """JSON-ready (decimal strings)."""
        energy = {t: str(Decimal(self.energy_e4.get(t, 0)) * _E4) for t in TIERS}
        for tier, value in self.energy_e4.items():
            if tier not in energy:
                energy[tier] = str(Decimal(value) * _E4)
        total_e4 = sum(self.energy_e4.values())
        period_ms = connectors * self.seconds * 1000
        utilisation = (Decimal(self.charging_ms) / period_ms).quantize(_E4) if period_ms \
            else Decimal("0.0000")
        return {
            "date": self.day.isoformat(), "energy": energy,
            "totalEnergy": str(Decimal(total_e4) * _E4),
            "electricityRevenue": str(Decimal(self.electricity_cents) * _CENT),
            "serviceRevenue": str(Decimal(self.service_cents) * _CENT),
            "revenue": str(Decimal(self.electricity_cents + self.service_cents) * _CENT),
            "refunded": str(Decimal(self.refunded_cents) * _CENT),
            "orders": self.orders, "billedOrders": self.billed,
            "chargingSeconds": self.charging_ms // 1000, "utilisation": str(utilisation),
        }


def day_bounds(tz: str, first: date, last: date) -> list[tuple[date, int, int]]:
    """(day, start ms, end ms) of each local day ``first..last`` in ``tz``."""
    zone = ZoneInfo(tz)
    out = []
    day = first
    while day <= last:
        start = datetime.combine(day, time(0), zone)
        end = datetime.combine(day + timedelta(days=1), time(0), zone)
        out.append((day, int(start.timestamp() * 1000), int(end.timestamp() * 1000)))
        day += timedelta(days=1)
    return out


def _minor(column: Any, factor: int) -> Any:
    """``CAST(ROUND(column * factor) AS BIGINT)``: exact integers on both dialects."""
    return cast(func.round(column * literal_column(str(factor))), BigInteger)


def _day_case(bounds: Sequence[tuple[date, int, int]]) -> Any:
    """The index of the day an order started on (integers inlined: SELECT and GROUP BY carry
    the same text, which PostgreSQL needs to match them)."""
    started = col(Order.started_ms)
    return case(*[(and_(started >= literal_column(str(lo)), started < literal_column(str(hi))),
                   literal_column(str(i))) for i, (_, lo, hi) in enumerate(bounds)],
                else_=literal_column("-1"))


def aggregate(engine: Engine, stations: Iterable[Station], first: date, last: date,
              scope: Callable[[Any], Any]) -> dict[str, list[DayStats]]:
    """Per station id: its days ``first..last`` (every day present, zeros included)."""
    by_tz: dict[str, list[str]] = defaultdict(list)
    for station in stations:
        by_tz[station.tz].append(station.id)
    out: dict[str, list[DayStats]] = {}
    billed = sorted(s.value for s in BILLED)
    with engine.connect() as db:
        for tz, ids in by_tz.items():
            bounds = day_bounds(tz, first, last)
            for sid in ids:
                out[sid] = [DayStats(d, (hi - lo) // 1000) for d, lo, hi in bounds]
            day = _day_case(bounds).label("day_index")
            window = and_(col(Order.station_id).in_(ids), scope(Order.tenant_id),
                          col(Order.started_ms) >= bounds[0][1],
                          col(Order.started_ms) < bounds[-1][2])
            is_billed = col(Order.status).in_(billed)
            zero: Any = literal_column("0")
            orders = sql_select(
                col(Order.station_id), day, func.count(),
                func.sum(case((is_billed, 1), else_=0)),
                func.sum(case((is_billed, _minor(Order.electricity_amount, 100)), else_=zero)),
                func.sum(case((is_billed, _minor(Order.service_amount, 100)), else_=zero)),
                func.sum(_minor(Order.refunded_amount, 100)),
                func.sum(case((col(Order.ended_ms).is_not(None),
                               col(Order.ended_ms) - col(Order.started_ms)), else_=zero)),
            ).where(window).group_by(col(Order.station_id), literal_column("day_index"))
            for sid, index, count, n_billed, el, sv, refunded, charging in db.execute(orders):
                if sid not in out or not 0 <= index < len(bounds):
                    continue
                stats = out[sid][index]
                stats.orders, stats.billed = int(count), int(n_billed or 0)
                stats.electricity_cents, stats.service_cents = int(el or 0), int(sv or 0)
                stats.refunded_cents, stats.charging_ms = int(refunded or 0), int(charging or 0)
            tiers = sql_select(
                col(Order.station_id), day, col(OrderTier.tier), func.sum(_minor(OrderTier.energy, 10_000)),
            ).join(OrderTier, col(OrderTier.order_id) == col(Order.id)) \
                .where(window, is_billed) \
                .group_by(col(Order.station_id), literal_column("day_index"),
                          col(OrderTier.tier))
            for sid, index, tier, energy in db.execute(tiers):
                if sid in out and 0 <= index < len(bounds):
                    out[sid][index].energy_e4[str(tier)] = int(energy or 0)
    return out


def connector_counts(refs: Iterable[ConnectorRef],
                     devices: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Current ``faulted``/``idle``/``charging``/``offline``/``other`` counts of connectors."""
    live = {(d["gateway"], d["device"]): d for d in devices}
    counts = {"faulted": 0, "idle": 0, "charging": 0, "offline": 0, "other": 0}
    for ref in refs:
        device = live.get((ref.gateway_id, ref.connector_device_id))
        if device is None or not device.get("online"):
            counts["offline"] += 1
            continue
        status = str((device.get("properties") or {}).get("status", ""))
        counts[_STATUS_CLASS.get(status, "other")] += 1
    return counts


class StationStats(BaseModel):
    """One station's statistics."""

    stationId: str  # noqa: N815
    name: str
    tz: str
    connectors: int
    current: dict[str, int]
    days: list[dict[str, Any]]


class StatsPage(BaseModel):
    """Statistics of the caller's stations."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(serialization_alias="from")
    to: date
    items: list[StationStats]


router = APIRouter(prefix="/api/v1", tags=["stats"], route_class=ErrorRoute)
Reader = Annotated[Principal, Depends(require("stats:read"))]


@router.get("/stats/stations", response_model=StatsPage)
async def station_stats(
    request: Request, principal: Reader,
    first: Annotated[date, Query(alias="from", description="first local day (inclusive)")],
    last: Annotated[date, Query(alias="to", description="last local day (inclusive)")],
    station_id: Annotated[str | None, Query(max_length=64)] = None,
) -> StatsPage:
    """Per station and local day: energy per tier, revenue, orders, utilisation; and the
    connectors' current states."""
    if last < first:
        raise ApiError(400, "bad_request", "'to' is before 'from'")
    if (last - first).days + 1 > MAX_DAYS:
        raise ApiError(400, "bad_request", f"at most {MAX_DAYS} days per request")
    catalog = getattr(request.app.state, "catalog", None)
    if catalog is None:
        raise ApiError(503, "unavailable", "catalog is not configured")
    registry = request.app.state.registry
    scope = principal.tenant_clause
    stations: list[Station] = await asyncio.to_thread(catalog.list_stations, scope=scope,
                                                      limit=1_000_000)
    if station_id is not None:
        stations = [s for s in stations if s.id == station_id]
        if not stations:
            raise ApiError(404, "not_found", f"no station {station_id!r}")
    refs: list[ConnectorRef] = await asyncio.to_thread(catalog.connector_refs, scope=scope,
                                                       station_id=station_id,
                                                       limit=10_000_000)
    devices = await asyncio.to_thread(registry.list_devices, product="connector",
                                      limit=10_000_000)
    days = await asyncio.to_thread(aggregate, registry.engine, stations, first, last, scope)
    by_station: dict[str, list[ConnectorRef]] = defaultdict(list)
    for ref in refs:
        by_station[ref.station_id].append(ref)
    items = []
    for station in stations:
        mine = by_station.get(station.id, [])
        items.append(StationStats(
            stationId=station.id, name=station.name, tz=station.tz, connectors=len(mine),
            current=connector_counts(mine, devices),
            days=[d.doc(len(mine)) for d in days.get(station.id, [])]))
    return StatsPage(from_=first, to=last, items=items)
