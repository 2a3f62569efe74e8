"""Reading orders: filters (always narrowed to the caller's tenants), pages, detail, CSV rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cloud.auth.principal import Principal
from cloud.orders.errors import OrderNotFound
from cloud.orders.models import Order, OrderEvent, OrderRefund, OrderTier
from cloud.orders.views import EventView, OrderDetail, OrderPage, OrderView, RefundView, TierView

CSV_COLUMNS = (
    "id", "tenant_id", "station_id", "charger_id", "connector_id", "gw", "device", "session_id",
    "status", "status_reason", "start_method", "id_type", "id_tag", "user_id", "started_ms",
    "ended_ms", "meter_start", "meter_stop", "energy", "tariff_id", "tariff_version",
    "electricity_amount", "service_amount", "total_amount", "paid_amount", "owed_amount",
    "refunded_amount", "free", "reconciled",
)


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """Filters of the order list (``since_ms``/``until_ms`` bound the start time, half-open)."""

    station_id: str | None = None
    charger_id: str | None = None
    user_id: str | None = None
    status: str | None = None
    gw: str | None = None
    device: str | None = None
    session_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 100
    offset: int = 0


def _where(query: OrderQuery, principal: Principal | None) -> list[Any]:
    clauses: list[Any] = []
    if principal is not None:
        clauses.append(principal.tenant_clause(Order.tenant_id))
    for name in ("station_id", "charger_id", "user_id", "status", "gw", "device", "session_id"):
        value = getattr(query, name)
        if value is not None:
            clauses.append(getattr(Order, name) == value)
    if query.since_ms is not None:
        clauses.append(col(Order.started_ms) >= query.since_ms)
    if query.until_ms is not None:
        clauses.append(col(Order.started_ms) < query.until_ms)
    return clauses


def list_orders(engine: Engine, principal: Principal | None, query: OrderQuery) -> OrderPage:
    """A page of orders, newest start first."""
    where = _where(query, principal)
    with Session(engine) as s:
        rows = s.exec(select(Order).where(*where)
                      .order_by(col(Order.started_ms).desc().nulls_last(), col(Order.id).desc())
                      .offset(query.offset).limit(query.limit)).all()
        total = s.exec(select(func.count()).select_from(Order).where(*where)).one()
    items = [OrderView.of(r) for r in rows]
    return OrderPage(items=items, count=len(items), total=int(total))


def visible_order(session: Session, principal: Principal | None, order_id: int) -> Order:
    """The order if the caller may see it, else :class:`OrderNotFound` (no leak of others')."""
    order = session.get(Order, order_id, populate_existing=True)
    if order is None or (principal is not None and not principal.sees(order.tenant_id)):
        raise OrderNotFound(f"order {order_id} not found")
    return order


def order_view(engine: Engine, principal: Principal | None, order_id: int) -> OrderView:
    """One order's current state."""
    with Session(engine) as s:
        return OrderView.of(visible_order(s, principal, order_id))


def order_detail(engine: Engine, principal: Principal | None, order_id: int) -> OrderDetail:
    """One order with tiers, history and refunds."""
    with Session(engine) as s:
        order = visible_order(s, principal, order_id)
        tiers = s.exec(select(OrderTier).where(OrderTier.order_id == order_id)
                       .order_by(col(OrderTier.id))).all()
        events = s.exec(select(OrderEvent).where(OrderEvent.order_id == order_id)
                        .order_by(col(OrderEvent.id))).all()
        refunds = s.exec(select(OrderRefund).where(OrderRefund.order_id == order_id)
                         .order_by(col(OrderRefund.id))).all()
        return OrderDetail(**OrderView.of(order).model_dump(),
                           tiers=[TierView.of(t) for t in tiers],
                           events=[EventView.of(e) for e in events],
                           refunds=[RefundView.of(r) for r in refunds],
                           charger_record=order.charger_record)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_rows(engine: Engine, principal: Principal | None, query: OrderQuery,
             page_size: int = 500) -> Iterator[str]:
    """The matching orders as CSV text (header first), one chunk per page of ``page_size``.

    Pages by id (keyset), so memory stays bounded whatever the number of rows; ``limit`` and
    ``offset`` of the query are ignored (an export is everything that matches). Amounts and
    energies are exact decimal strings (``12.30``, ``5.0000``).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield out.getvalue()
    where = _where(query, principal)
    after = 0
    while True:
        with Session(engine) as s:
            rows = s.exec(select(Order).where(*where, col(Order.id) > after)
                          .order_by(col(Order.id)).limit(page_size)).all()
        if not rows:
            return
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows:
            writer.writerow([_cell(getattr(row, c)) for c in CSV_COLUMNS])
        after = rows[-1].id or after
        yield out.getvalue()
