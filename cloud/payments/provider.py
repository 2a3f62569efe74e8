"""The payment-provider contract, shaped like WeChat Pay (Native / QR) and Alipay (precreate).

A provider creates an order for a merchant trade number (``out_trade_no``) and returns what the
payer scans (a QR code URL) plus the provider's prepay id; it later calls the platform back
(the *notify*) with a signature the platform verifies; it answers queries (for a notify that
never came) and refunds to the original payment.

Calls are synchronous (a real implementation uses an HTTP client with timeouts); a transient
failure raises :class:`~cloud.payments.errors.ProviderError`, a definitive refusal
:class:`~cloud.payments.errors.ProviderRejected`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class TradeState(StrEnum):
    """A trade's state at the provider (WeChat Pay's ``trade_state`` values)."""

    NOTPAY = "NOTPAY"  # created, not paid (yet)
    USERPAYING = "USERPAYING"
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"
    PAYERROR = "PAYERROR"
    REFUND = "REFUND"  # paid, then (partly) refunded


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """Create a trade."""

    out_trade_no: str
    amount: Decimal
    currency: str
    description: str
    notify_url: str | None = None
    expires_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderOrder:
    """A created trade: the prepay id and what the payer scans."""

    prepay_id: str
    code_url: str


@dataclass(frozen=True, slots=True)
class PaymentNotice:
    """A verified statement of the provider about a trade (from a notify or a query)."""

    out_trade_no: str
    state: TradeState
    amount: Decimal
    currency: str
    transaction_id: str | None = None
    paid_ms: int | None = None
    raw: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NotifyAck:
    """The HTTP answer a provider expects to its notify (it redelivers until it gets OK)."""

    status: int
    body: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Refund part or all of a paid trade to the payer."""

    out_trade_no: str
    out_refund_no: str
    amount: Decimal
    total: Decimal
    currency: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    """The provider accepted a refund."""

    refund_id: str
    out_refund_no: str
    amount: Decimal


class PaymentProvider(Protocol):
    """A payment provider (WeChat Pay, Alipay, or the simulator)."""

    name: str

    def create_order(self, request: OrderRequest) -> ProviderOrder:
        """Create a trade (idempotent per ``out_trade_no`` with the same parameters)."""
        ...

    def parse_notify(self, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        """Verify and read a notify (raises SignatureError / NotifyRefused)."""
        ...

    def ack(self, ok: bool, message: str = "") -> NotifyAck:
        """The answer to a notify: ``ok`` stops the provider's redelivery."""
        ...

    def query(self, out_trade_no: str) -> PaymentNotice:
        """The trade's current state at the provider."""
        ...

    def refund(self, request: RefundRequest) -> ProviderRefund:
        """Refund to the original payment (idempotent per ``out_refund_no``)."""
        ...
