"""Station statistics on a seeded orders table (SQLite and PostgreSQL): per local day energy per
tier, revenue, counts, utilisation; current connector states; tenant filtering; scope."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from cloud.auth.principal import Role
from cloud.auth.service import SYSTEM
from cloud.orders.models import Order, OrderTier
from tests.cloud.api.world import ApiWorld, build_api_world

SH = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=SH).timestamp() * 1000)


def _order(world: ApiWorld, tenant: str, station: str, n: int, started: str, *,
           hours: float | None, status: str, el: str | None = None, sv: str | None = None,
           refunded: str = "0.00", tiers: dict[str, str] | None = None) -> tuple[Order, dict[str, str]]:
    start = _ms(started)
    total = None if el is None or sv is None else Decimal(el) + Decimal(sv)
    order = Order(tenant_id=tenant, station_id=station, gw=world.gw_a, device=f"d{n}",
                  session_id=f"s{n}-{station}", status=status, started_ms=start,
                  ended_ms=None if hours is None else start + int(hours * HOUR),
                  electricity_amount=el, service_amount=sv, total_amount=total,
                  refunded_amount=refunded, created_ms=start, updated_ms=start)
    return order, tiers or {}


def _seed(engine: Engine, world: ApiWorld) -> None:
    SQLModel.metadata.create_all(engine, tables=[Order.__table__, OrderTier.__table__])  # type: ignore[attr-defined]
    a, sa = world.tenancy.a, world.charger_a.station_id
    b, sb = world.tenancy.b, world.charger_b.station_id
    rows = [
        # day 1 (2026-03-01 local)
        _order(world, a, sa, 1, "2026-03-01T10:00:00", hours=1, status="settled", el="12.34",
               sv="5.67", tiers={"peak": "7.1234", "flat": "3.0001"}),
        _order(world, a, sa, 2, "2026-03-01T23:30:00", hours=1, status="settled", el="0.29",
               sv="0.01", tiers={"valley": "0.5000"}),
        _order(world, a, sa, 3, "2026-03-01T00:00:00", hours=0.5, status="refunded", el="1.00",
               sv="0.50", refunded="1.50", tiers={"valley": "2.0000"}),
        # day 2: open, not billed
        _order(world, a, sa, 4, "2026-03-02T08:00:00", hours=None, status="charging"),
        # outside the period (a millisecond before day 1)
        _order(world, a, sa, 5, "2026-02-28T23:59:59.999", hours=1, status="settled",
               el="9.00", sv="9.00", tiers={"tip": "9.0000"}),
        # B's station
        _order(world, b, sb, 6, "2026-03-01T12:00:00", hours=2, status="settled", el="50.00",
               sv="10.00", tiers={"peak": "40.0000"}),
    ]
    with Session(engine) as db:
        for order, _ in rows:
            db.add(order)
        db.commit()
        for order, tiers in rows:
            for tier, energy in tiers.items():
                db.add(OrderTier(order_id=order.id, tenant_id=order.tenant_id, tier=tier,
                                 energy=energy, electricity_rate="1.00000",
                                 service_rate="0.50000", electricity_amount="0.00",
                                 service_amount="0.00", total_amount="0.00"))
        db.commit()


def _live(world: ApiWorld) -> None:
    ts = _ms("2026-03-02T09:00:00")
    first, second = (c.device_id for c in world.charger_a.connectors)
    world.registry.presence(world.gw_a, "gateway", world.gw_a, True, 1, ts)
    world.registry.presence(world.gw_a, "connector", first, True, 1, ts)
    world.registry.seen(world.gw_a, "connector", first, ts, {"status": "charging"})
    world.registry.flush()
    del second  # never seen: offline


async def test_station_stats_per_local_day(api_engine: Engine) -> None:
    world = build_api_world(api_engine)
    _seed(api_engine, world)
    _live(world)
    async with world.client() as http:
        r = await http.get("/api/v1/stats/stations",
                           params={"from": "2026-03-01", "to": "2026-03-02"},
                           headers=world.tenancy.headers("A", Role.FINANCE))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == "2026-03-01" and body["to"] == "2026-03-02"
    items = body["items"]
    assert [i["stationId"] for i in items] == [world.charger_a.station_id]  # not B's
    station: dict[str, Any] = items[0]
    assert station["connectors"] == 2
    assert station["current"] == {"faulted": 0, "idle": 0, "charging": 1, "offline": 1,
                                  "other": 0}
    day1, day2 = station["days"]
    assert day1["date"] == "2026-03-01" and day2["date"] == "2026-03-02"
    # orders 1, 2 and 3 (started at local midnight); order 5 is a millisecond earlier
    assert day1["orders"] == 3 and day1["billedOrders"] == 3
    assert day1["electricityRevenue"] == "13.63"  # 12.34 + 0.29 + 1.00
    assert day1["serviceRevenue"] == "6.18"  # 5.67 + 0.01 + 0.50
    assert day1["revenue"] == "19.81" and day1["refunded"] == "1.50"
    assert day1["energy"] == {"tip": "0.0000", "peak": "7.1234", "flat": "3.0001",
                              "valley": "2.5000"}
    assert day1["totalEnergy"] == "12.6235"
    # 1 h + 1 h (order 2 runs past midnight: counted on its start day) + 0.5 h
    assert day1["chargingSeconds"] == 9000
    assert day1["utilisation"] == "0.0521"  # 9000 s / (2 connectors x 86400 s)
    assert day2["orders"] == 1 and day2["billedOrders"] == 0
    assert day2["revenue"] == "0.00" and day2["totalEnergy"] == "0.0000"
    assert day2["utilisation"] == "0.0000"


async def test_stats_scope_tenants_and_bad_periods(api_engine: Engine) -> None:
    world = build_api_world(api_engine)
    _seed(api_engine, world)
    period = {"from": "2026-03-01", "to": "2026-03-01"}
    async with world.client() as http:
        b = await http.get("/api/v1/stats/stations", params=period,
                           headers=world.tenancy.key_headers("B", "read"))
        assert b.status_code == 200
        assert [i["stationId"] for i in b.json()["items"]] == [world.charger_b.station_id]
        assert b.json()["items"][0]["days"][0]["revenue"] == "60.00"
        platform = await http.get("/api/v1/stats/stations", params=period,
                                  headers=world.tenancy.headers("platform",
                                                                Role.PLATFORM_ADMIN))
        ids = {i["stationId"] for i in platform.json()["items"]}
        assert {world.charger_a.station_id, world.charger_b.station_id} <= ids
        other = await http.get("/api/v1/stats/stations",
                               params={**period, "station_id": world.charger_b.station_id},
                               headers=world.tenancy.headers("A"))
        assert other.status_code == 404 and other.json()["error"] == "not_found"
        issued = world.tenancy.service.issue_api_key(SYSTEM, "orders only", {"orders:read"},
                                                     tenant_id=world.tenancy.a)
        no_scope = await http.get("/api/v1/stats/stations", params=period,
                                  headers={"X-API-Key": issued.key})
        assert no_scope.status_code == 403 and no_scope.json()["error"] == "forbidden"
        anonymous = await http.get("/api/v1/stats/stations", params=period)
        assert anonymous.status_code == 401
        backwards = await http.get("/api/v1/stats/stations",
                                   params={"from": "2026-03-02", "to": "2026-03-01"},
                                   headers=world.tenancy.headers("A"))
        assert backwards.status_code == 400 and backwards.json()["error"] == "bad_request"
        missing = await http.get("/api/v1/stats/stations", params={"from": "2026-03-01"},
                                 headers=world.tenancy.headers("A"))
        assert missing.status_code == 422 and missing.json()["error"] == "invalid_request"
