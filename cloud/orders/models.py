"""SQLModel tables of orders (global SQLModel metadata; every table has an indexed tenant_id).

============== ===========================================================================
``orders``     one row per charging session; ``UNIQUE (gw, device, session_id)`` is the
               idempotency key of a session, enforced by the database
``order_tiers`` the per-tier breakdown of the server-side settlement
``order_samples`` meter samples of the session (``UNIQUE (order_id, ts_ms)``)
``order_events`` history: each applied session event / transition with the message id that
               caused it (``UNIQUE (order_id, message_id)``: a replay is a no-op)
``order_refunds`` refunds with their idempotency key (``UNIQUE (order_id, key)``)
``order_rejects`` session events that could not be applied (kept, never lost)
============== ===========================================================================

Energies are ``Numeric(18, 4)`` kWh, amounts ``Numeric(18, 2)`` CNY, rates ``Numeric(18, 5)``
CNY/kWh (exact strings on SQLite, see :mod:`cloud.orders.columns`). JSON columns hold decimals
as strings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from cloud.orders.columns import Amount, Energy, ExactDecimal, Rate

_ZERO2 = Decimal("0.00")


def _energy(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(ExactDecimal(*Energy), nullable=nullable))


def _amount_nullable() -> Any:
    return Field(default=None, sa_column=Column(ExactDecimal(*Amount), nullable=True))


def _amount_zero() -> Any:
    return Field(default=_ZERO2, sa_column=Column(ExactDecimal(*Amount), nullable=False))


def _ms(*, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(BigInteger, nullable=True, index=index))


class Order(SQLModel, table=True):
    """A charging session as the operator bills it."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("gw", "device", "session_id", name="uq_orders_session"),
        Index("ix_orders_tenant_started", "tenant_id", "started_ms"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    station_id: str | None = Field(default=None, index=True, max_length=64)
    charger_id: str | None = Field(default=None, index=True, max_length=64)
    connector_id: str | None = Field(default=None, max_length=64)
    gw: str = Field(max_length=128)
    device: str = Field(max_length=128)
    session_id: str = Field(max_length=64)
    protocol: str | None = Field(default=None, max_length=16)
    operating_mode: str | None = Field(default=None, max_length=32)

    user_id: str | None = Field(default=None, index=True, max_length=64)
    wallet_id: str | None = Field(default=None, max_length=64)
    id_tag: str | None = Field(default=None, max_length=64)
    id_type: str | None = Field(default=None, max_length=16)
    start_method: str | None = Field(default=None, max_length=16)
    offline: bool = False

    status: str = Field(default="authorised", index=True, max_length=16)
    status_reason: str | None = Field(default=None, max_length=255)

    started_ms: int | None = _ms(index=True)
    ended_ms: int | None = _ms()
    last_seen_ms: int | None = _ms()
    meter_start: Decimal | None = _energy()
    meter_stop: Decimal | None = _energy()
    energy: Decimal | None = _energy()
    #: what the charger last said about the running session (sessionUpdated / samples)
    live_energy: Decimal | None = _energy()
    live_meter: Decimal | None = _energy()
    #: values the end events carried (kept apart from the values billed)
    reported_energy: Decimal | None = _energy()

    tariff_id: str | None = Field(default=None, max_length=64)
    tariff_version: str | None = Field(default=None, max_length=32)
    electricity_amount: Decimal | None = _amount_nullable()
    service_amount: Decimal | None = _amount_nullable()
    total_amount: Decimal | None = _amount_nullable()
    billed_ms: int | None = _ms()
    free: bool = False

    paid_amount: Decimal = _amount_zero()
    owed_amount: Decimal = _amount_zero()
    refunded_amount: Decimal = _amount_zero()
    paid_ms: int | None = _ms()
    payment_ref: str | None = Field(default=None, max_length=64)

    #: the raw start / end events (``SessionEvent.wire()``): billed values derive from these and
    #: ``charger_record``, so the result does not depend on the order of arrival
    start_report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    end_report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    start_refused: bool = False
    #: when this service first learnt that the session ended (its own clock; settle grace)
    end_seen_ms: int | None = _ms()

    reconciled: bool | None = None
    discrepancies: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    charger_record: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    anomalies: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))

    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    #: +1 on every change (watchers poll it)
    version: int = 1


class OrderTier(SQLModel, table=True):
    """One tier of an order's settlement."""

    __tablename__ = "order_tiers"
    __table_args__ = (UniqueConstraint("order_id", "tier", name="uq_order_tiers"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    tier: str = Field(max_length=16)
    energy: Decimal = Field(sa_column=Column(ExactDecimal(*Energy), nullable=False))
    electricity_rate: Decimal = Field(sa_column=Column(ExactDecimal(*Rate), nullable=False))
    service_rate: Decimal = Field(sa_column=Column(ExactDecimal(*Rate), nullable=False))
    electricity_amount: Decimal = Field(sa_column=Column(ExactDecimal(*Amount), nullable=False))
    service_amount: Decimal = Field(sa_column=Column(ExactDecimal(*Amount), nullable=False))
    total_amount: Decimal = Field(sa_column=Column(ExactDecimal(*Amount), nullable=False))


class OrderSample(SQLModel, table=True):
    """A meter sample of the session: the register (``meter``) and/or the session energy."""

    __tablename__ = "order_samples"
    __table_args__ = (UniqueConstraint("order_id", "ts_ms", name="uq_order_samples"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    ts_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    meter: Decimal | None = _energy()
    energy: Decimal | None = _energy()


class OrderEvent(SQLModel, table=True):
    """One entry of an order's history."""

    __tablename__ = "order_events"
    __table_args__ = (UniqueConstraint("order_id", "message_id", name="uq_order_events"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    message_id: str = Field(max_length=128)
    name: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    ts_ms: int | None = _ms()
    recorded_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class OrderRefund(SQLModel, table=True):
    """A refund of (part of) an order's paid amount."""

    __tablename__ = "order_refunds"
    __table_args__ = (UniqueConstraint("order_id", "key", name="uq_order_refunds"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    key: str = Field(max_length=128)
    amount: Decimal = Field(sa_column=Column(ExactDecimal(*Amount), nullable=False))
    reason: str = Field(max_length=255)
    status: str = Field(default="pending", max_length=16)  # pending | done
    requested_by: str | None = Field(default=None, max_length=128)
    ledger_ref: str | None = Field(default=None, max_length=64)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    done_ms: int | None = _ms()


class OrderReject(SQLModel, table=True):
    """A session event that could not be applied, kept with the error for an operator."""

    __tablename__ = "order_rejects"
    __table_args__ = (UniqueConstraint("key", name="uq_order_rejects"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    key: str = Field(max_length=255)
    gw: str = Field(max_length=128)
    device: str = Field(max_length=128)
    name: str = Field(max_length=32)
    message_id: str = Field(max_length=128)
    error: str = Field(max_length=1000)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ts_ms: int | None = _ms()
    recorded_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


TABLES = [Order.__table__, OrderTier.__table__, OrderSample.__table__,  # type: ignore[attr-defined]
          OrderEvent.__table__, OrderRefund.__table__, OrderReject.__table__]  # type: ignore[attr-defined]
