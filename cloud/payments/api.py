"""HTTP API of payments (``router``, mounted under /api/v1).

``POST /payments/notify/{provider}`` is the providers' callback: no principal, the signature is
the authentication. Everything else needs wallets:read / wallets:write and sees only the
caller's tenants. The service is ``request.app.state.payments``
(:class:`~cloud.payments.service.PaymentService`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from cloud.accounts.http import ERRORS as ACCOUNT_ERRORS
from cloud.accounts.http import MoneyIn, MoneyOut, idempotency_key
from cloud.api.errors import OWN, error_response, error_route
from cloud.auth.principal import Principal, require
from cloud.payments.errors import PaymentError
from cloud.payments.models import PaymentIntent, PaymentRefund
from cloud.payments.service import PaymentService

#: the payment errors carry their own HTTP status and error code (top-ups credit a wallet:
#: the accounts' errors too)
router = APIRouter(prefix="/api/v1", tags=["payments"], route_class=error_route(
    {**ACCOUNT_ERRORS, PaymentError: OWN}, "PaymentsRoute"))

#: a notify larger than this is not a provider's
MAX_NOTIFY_BYTES = 64 * 1024


def get_payments(request: Request) -> PaymentService:
    """The PaymentService of the app (503 when the app has none)."""
    service: PaymentService | None = getattr(request.app.state, "payments", None)
    if service is None:
        raise HTTPException(status_code=503, detail="payments are not configured")
    return service


Payments = Annotated[PaymentService, Depends(get_payments)]
WalletsRead = Annotated[Principal, Depends(require("wallets:read"))]
WalletsWrite = Annotated[Principal, Depends(require("wallets:write"))]
Key = Annotated[str, Depends(idempotency_key)]


class TopupIn(BaseModel):
    """A top-up request."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(max_length=40)
    amount: MoneyIn
    provider: str = Field(max_length=32)


class RefundIn(BaseModel):
    """A refund to the original payment (no amount: all that is left)."""

    model_config = ConfigDict(extra="forbid")

    amount: MoneyIn | None = None
    reason: str | None = Field(default=None, max_length=256)


class RefundOut(BaseModel):
    """A refund."""

    id: str
    payment_id: str
    out_refund_no: str
    amount: MoneyOut
    status: str
    reason: str | None
    provider_refund_id: str | None
    failure: str | None
    created_ms: int

    @classmethod
    def of(cls, r: PaymentRefund) -> RefundOut:
        return cls(id=r.id, payment_id=r.intent_id, out_refund_no=r.out_refund_no,
                   amount=r.amount, status=r.status, reason=r.reason,
                   provider_refund_id=r.provider_refund_id, failure=r.failure,
                   created_ms=r.created_ms)


class PaymentOut(BaseModel):
    """A top-up: what the payer scans (``code_url``) and where it stands."""

    id: str
    tenant_id: str
    user_id: str
    wallet_id: str
    provider: str
    out_trade_no: str
    amount: MoneyOut
    currency: str
    status: str
    prepay_id: str | None
    code_url: str | None
    provider_txn_id: str | None
    refunded_amount: MoneyOut
    created_ms: int
    paid_ms: int | None
    refunds: list[RefundOut] = []

    @classmethod
    def of(cls, p: PaymentIntent, refunds: list[PaymentRefund] | None = None) -> PaymentOut:
        return cls(id=p.id, tenant_id=p.tenant_id, user_id=p.user_id, wallet_id=p.wallet_id,
                   provider=p.provider, out_trade_no=p.out_trade_no, amount=p.amount,
                   currency=p.currency, status=p.status, prepay_id=p.prepay_id,
                   code_url=p.code_url, provider_txn_id=p.provider_txn_id,
                   refunded_amount=p.refunded_amount, created_ms=p.created_ms,
                   paid_ms=p.paid_ms, refunds=[RefundOut.of(r) for r in refunds or []])


class PaymentPage(BaseModel):
    """A page of payments."""

    items: list[PaymentOut]
    count: int


@router.post("/payments/topups", status_code=201)
def create_topup(body: TopupIn, principal: WalletsWrite, payments: Payments,
                 key: Key) -> PaymentOut:
    """Start a top-up: returns the payment with the QR code URL. Idempotent by the
    ``Idempotency-Key`` header (per user)."""
    return PaymentOut.of(payments.create_topup(body.user_id, body.amount, body.provider,
                                               key=key, visible=principal.tenant_clause))


@router.post("/payments/notify/{provider}", include_in_schema=True)
async def notify(provider: str, request: Request, payments: Payments) -> Response:
    """The payment provider's callback (signature-checked; no principal)."""
    body = await request.body()
    if len(body) > MAX_NOTIFY_BYTES:
        return error_response(413, "too_large", f"notify larger than {MAX_NOTIFY_BYTES} bytes")
    ack = await run_in_threadpool(payments.handle_notify, provider, dict(request.headers), body)
    return Response(content=ack.body, status_code=ack.status, media_type=ack.media_type)


@router.get("/payments")
def list_payments(principal: WalletsRead, payments: Payments,
                  user_id: Annotated[str | None, Query(max_length=40)] = None,
                  status: Annotated[str | None, Query(max_length=20)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                  offset: Annotated[int, Query(ge=0)] = 0) -> PaymentPage:
    """Payments, newest first."""
    rows = payments.list_payments(visible=principal.tenant_clause, user_id=user_id,
                                  status=status, limit=limit, offset=offset)
    return PaymentPage(items=[PaymentOut.of(p) for p in rows], count=len(rows))


@router.get("/payments/{payment_id}")
def get_payment(payment_id: str, principal: WalletsRead, payments: Payments) -> PaymentOut:
    """One payment with its refunds."""
    intent = payments.get(payment_id, visible=principal.tenant_clause)
    return PaymentOut.of(intent, payments.refunds(intent.id))


@router.post("/payments/{payment_id}/sync")
def sync_payment(payment_id: str, principal: WalletsWrite, payments: Payments) -> PaymentOut:
    """Ask the provider about the payment (a notify that never came) and apply the answer."""
    return PaymentOut.of(payments.sync(payment_id, visible=principal.tenant_clause))


@router.post("/payments/{payment_id}/refunds", status_code=201)
def refund_payment(payment_id: str, body: RefundIn, principal: WalletsWrite,
                   payments: Payments, key: Key) -> RefundOut:
    """Refund (part of) the payment to the payer; the wallet is debited. Idempotent by the
    ``Idempotency-Key`` header (per payment)."""
    return RefundOut.of(payments.refund(payment_id, body.amount, key=key, reason=body.reason,
                                        visible=principal.tenant_clause))
