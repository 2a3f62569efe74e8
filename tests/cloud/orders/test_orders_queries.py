"""Listing, detail and CSV export: filters, pagination, tenant visibility, exact decimals."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy.engine import Engine

from cloud.auth.principal import ROLE_SCOPES, Principal, Role
from cloud.orders.errors import OrderNotFound
from cloud.orders.queries import CSV_COLUMNS, OrderQuery
from tests.cloud.orders.orders_world import (
    D,
    World,
    build_world,
    local_ms,
    ocpp_session,
    ykc_session,
)


def principal_of(w: World) -> Principal:
    return Principal(subject="user:finance", tenant_id=w.tenant, role=Role.FINANCE,
                     scopes=ROLE_SCOPES[Role.FINANCE], visible_tenants=frozenset({w.tenant}))


ADMIN = Principal(subject="user:root", tenant_id="platform", role=Role.PLATFORM_ADMIN,
                  scopes=ROLE_SCOPES[Role.PLATFORM_ADMIN], visible_tenants=None)


@pytest.fixture
def two(engine: Engine) -> tuple[World, World]:
    a = build_world(engine)
    b = build_world(engine, topup="10.00")
    a.service.process(ykc_session(a, "A1" * 16))
    a.service.process(ocpp_session(a, "1"))
    a.service.process(ocpp_session(a, "2")[:3])  # still charging
    b.service.process(ykc_session(b, "B1" * 16))  # unpaid: 10.00 cannot pay 69.87
    return a, b


def test_list_filters_pages_and_tenants(two: tuple[World, World]) -> None:
    a, b = two
    mine = a.service.list_orders(principal_of(a), OrderQuery())
    assert mine.total == 3 and {o.tenant_id for o in mine.items} == {a.tenant}
    theirs = a.service.list_orders(principal_of(b), OrderQuery())
    assert theirs.total == 1 and theirs.items[0].status == "unpaid"
    everyone = a.service.list_orders(ADMIN, OrderQuery(gw=b.ykc_gw))
    assert everyone.total == 1
    q = a.service.list_orders(principal_of(a), OrderQuery(status="settled"))
    assert {o.session_id for o in q.items} == {"A1" * 16, "1"}
    q = a.service.list_orders(principal_of(a), OrderQuery(charger_id=mine.items[0].charger_id))
    assert q.total == len([o for o in mine.items if o.charger_id == mine.items[0].charger_id])
    q = a.service.list_orders(principal_of(a), OrderQuery(user_id=a.user_id))
    assert q.total == 3
    q = a.service.list_orders(principal_of(a), OrderQuery(station_id=b.station_id))
    assert q.total == 0  # another tenant's station: nothing, not an error
    q = a.service.list_orders(principal_of(a), OrderQuery(
        since_ms=local_ms("2025-01-15 10:00"), until_ms=local_ms("2025-01-15 12:00")))
    assert {o.session_id for o in q.items} == {"1", "2"}
    page1 = a.service.list_orders(principal_of(a), OrderQuery(limit=2))
    page2 = a.service.list_orders(principal_of(a), OrderQuery(limit=2, offset=2))
    assert page1.count == 2 and page2.count == 1 and page1.total == page2.total == 3
    assert {o.id for o in page1.items}.isdisjoint({o.id for o in page2.items})
    starts = [o.started_ms for o in page1.items + page2.items]
    assert starts == sorted(starts, reverse=True)


def test_detail_has_tiers_and_history_and_hides_other_tenants(
        two: tuple[World, World]) -> None:
    a, b = two
    order = a.order(a.ykc_gw, a.ykc_device, "A1" * 16)
    detail = a.service.get_order(principal_of(a), order.id)
    assert [(t.tier, t.energy, t.total_amount) for t in detail.tiers] == [
        ("peak", D("30.9228"), D("55.66")), ("flat", D("0.0000"), D("0.00")),
        ("valley", D("20.3117"), D("14.21"))]  # tariff tier order: tip .. deep_valley
    assert detail.events[0].name == "sessionStarted"
    assert detail.charger_record is not None
    with pytest.raises(OrderNotFound):
        a.service.get_order(principal_of(b), order.id)
    assert a.service.get_order(ADMIN, order.id).id == order.id


def test_csv_export_is_exact_and_tenant_filtered(two: tuple[World, World]) -> None:
    a, b = two
    text = "".join(a.service.export_csv(principal_of(a), OrderQuery(), page_size=2))
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert len(body) == 3 and {r["tenant_id"] for r in body} == {a.tenant}
    ykc = next(r for r in body if r["session_id"] == "A1" * 16)
    assert (ykc["energy"], ykc["electricity_amount"], ykc["service_amount"],
            ykc["total_amount"], ykc["paid_amount"], ykc["owed_amount"]) == \
        ("51.2345", "43.20", "26.67", "69.87", "69.87", "0.00")
    assert ykc["meter_start"] == "1000.0000" and ykc["reconciled"] == "true"
    charging = next(r for r in body if r["session_id"] == "2")
    assert charging["status"] == "charging" and charging["total_amount"] == ""
    text_b = "".join(a.service.export_csv(principal_of(b), OrderQuery(status="unpaid")))
    rows_b = list(csv.reader(io.StringIO(text_b)))
    assert len(rows_b) == 2
    row = dict(zip(CSV_COLUMNS, rows_b[1], strict=True))
    assert (row["total_amount"], row["paid_amount"], row["owed_amount"]) == \
        ("69.87", "0.00", "69.87")
