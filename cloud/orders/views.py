"""What the service returns: pydantic views (decimals serialise as exact strings in JSON)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.orders.models import Order, OrderEvent, OrderRefund, OrderTier


class OrderView(BaseModel):
    """An order (list rows, live status)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str | None
    station_id: str | None
    charger_id: str | None
    connector_id: str | None
    gw: str
    device: str
    session_id: str
    protocol: str | None
    operating_mode: str | None
    user_id: str | None
    id_tag: str | None
    id_type: str | None
    start_method: str | None
    offline: bool
    status: str
    status_reason: str | None
    started_ms: int | None
    ended_ms: int | None
    meter_start: Decimal | None
    meter_stop: Decimal | None
    energy: Decimal | None
    live_energy: Decimal | None
    tariff_id: str | None
    tariff_version: str | None
    electricity_amount: Decimal | None
    service_amount: Decimal | None
    total_amount: Decimal | None
    paid_amount: Decimal
    owed_amount: Decimal
    refunded_amount: Decimal
    free: bool
    reconciled: bool | None
    discrepancies: list[Any]
    anomalies: list[Any]
    updated_ms: int
    version: int

    @classmethod
    def of(cls, order: Order) -> OrderView:
        return cls.model_validate(order)


class TierView(BaseModel):
    """One tier of an order's settlement."""

    model_config = ConfigDict(from_attributes=True)

    tier: str
    energy: Decimal
    electricity_rate: Decimal
    service_rate: Decimal
    electricity_amount: Decimal
    service_amount: Decimal
    total_amount: Decimal

    @classmethod
    def of(cls, row: OrderTier) -> TierView:
        return cls.model_validate(row)


class EventView(BaseModel):
    """One entry of an order's history."""

    model_config = ConfigDict(from_attributes=True)

    message_id: str
    name: str
    from_status: str | None
    to_status: str
    ts_ms: int | None
    recorded_ms: int
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: OrderEvent) -> EventView:
        return cls.model_validate(row)


class RefundView(BaseModel):
    """A refund."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    order_id: int
    key: str
    amount: Decimal
    reason: str
    status: str
    requested_by: str | None
    ledger_ref: str | None
    created_ms: int
    done_ms: int | None

    @classmethod
    def of(cls, row: OrderRefund) -> RefundView:
        return cls.model_validate(row)


class OrderDetail(OrderView):
    """An order with its per-tier breakdown, history, refunds and the charger's own record."""

    tiers: list[TierView] = Field(default_factory=list)
    events: list[EventView] = Field(default_factory=list)
    refunds: list[RefundView] = Field(default_factory=list)
    charger_record: dict[str, Any] | None = None


class OrderPage(BaseModel):
    """A page of orders; ``total`` counts every match of the filters."""

    items: list[OrderView]
    count: int
    total: int


class RefundResult(BaseModel):
    """The refund and the order after it."""

    refund: RefundView
    order: OrderView
