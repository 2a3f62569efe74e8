"""The payments tables (prefix ``pay_``, in the global SQLModel metadata)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from cloud.accounts.money import ZERO, Money


class IntentStatus(StrEnum):
    """A top-up's status."""

    CREATED = "created"  # stored; the provider has not (successfully) been asked yet
    PENDING = "pending"  # the provider has the order; waiting for the payer
    PAID = "paid"  # notify (or query) verified; the wallet is credited
    FAILED = "failed"  # the provider reports a failed payment
    CLOSED = "closed"  # the provider closed the unpaid order
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


PAID_STATES = (IntentStatus.PAID.value, IntentStatus.PARTIALLY_REFUNDED.value,
               IntentStatus.REFUNDED.value)


class RefundStatus(StrEnum):
    """A refund's status."""

    PENDING = "pending"  # wallet debited (or about to be); the provider not yet confirmed
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # refused by the provider or by the wallet; nothing moved


class PaymentIntent(SQLModel, table=True):
    """A wallet top-up through a payment provider."""

    __tablename__ = "pay_intents"
    __table_args__ = (
        UniqueConstraint("provider", "out_trade_no", name="uq_pay_intents_trade"),
        UniqueConstraint("idempotency_key", name="uq_pay_intents_key"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=64)
    user_id: str = Field(foreign_key="acct_users.id", index=True, max_length=40)
    wallet_id: str = Field(foreign_key="acct_wallets.id", max_length=40)
    provider: str = Field(max_length=32)
    out_trade_no: str = Field(max_length=32)
    amount: Decimal = Field(sa_type=Money, nullable=False)
    currency: str = Field(default="CNY", max_length=3)
    status: str = Field(default=IntentStatus.CREATED.value, max_length=20)
    #: ``{user_id}:{client key}``: a client's key never collides with another user's
    idempotency_key: str = Field(max_length=200)
    prepay_id: str | None = Field(default=None, max_length=64)
    code_url: str | None = Field(default=None, max_length=256)
    provider_txn_id: str | None = Field(default=None, max_length=64)
    raw_notify: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ledger_entry_id: int | None = None
    refunded_amount: Decimal = Field(default=ZERO, sa_type=Money, nullable=False)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    paid_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class PaymentRefund(SQLModel, table=True):
    """A refund of (part of) a paid top-up to the original payment."""

    __tablename__ = "pay_refunds"
    __table_args__ = (
        UniqueConstraint("out_refund_no", name="uq_pay_refunds_out_no"),
        UniqueConstraint("idempotency_key", name="uq_pay_refunds_key"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=64)
    intent_id: str = Field(foreign_key="pay_intents.id", index=True, max_length=40)
    out_refund_no: str = Field(max_length=32)
    amount: Decimal = Field(sa_type=Money, nullable=False)
    status: str = Field(default=RefundStatus.PENDING.value, max_length=12)
    reason: str | None = Field(default=None, max_length=256)
    #: ``{intent_id}:{client key}``
    idempotency_key: str = Field(max_length=200)
    provider_refund_id: str | None = Field(default=None, max_length=64)
    failure: str | None = Field(default=None, max_length=256)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class PaymentNotification(SQLModel, table=True):
    """Every notify received, verified or not, and what became of it (the audit trail)."""

    __tablename__ = "pay_notifications"

    id: int | None = Field(default=None, primary_key=True)
    #: the payment's tenant; None when the notify matched no payment
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    provider: str = Field(max_length=32)
    out_trade_no: str | None = Field(default=None, index=True, max_length=64)
    intent_id: str | None = Field(default=None, max_length=40)
    outcome: str = Field(max_length=24)
    detail: str | None = Field(default=None, max_length=512)
    raw: str = Field(sa_column=Column(Text, nullable=False))
    received_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


TABLES = [PaymentIntent.__table__, PaymentRefund.__table__,  # type: ignore[attr-defined]
          PaymentNotification.__table__]  # type: ignore[attr-defined]
