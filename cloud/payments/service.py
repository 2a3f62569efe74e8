"""PaymentService: wallet top-ups through a payment provider, notifies, refunds.

Top-up flow::

    create_topup(user, amount, provider, key)      intent stored (status created), unique key
        -> provider.create_order(out_trade_no)     prepay id + QR code URL (status pending)
    payer scans and pays at the provider
    provider POSTs the notify                      handle_notify(provider, headers, body)
        -> provider.parse_notify                   signature verified, else refused + logged
        -> apply(notice)                           trade known? amount and currency equal?
        -> accounts.credit(key="topup:<intent>")   the ledger key makes the credit exactly-once
        -> intent paid (UPDATE … WHERE not paid)   a redelivered or concurrent notify: "duplicate"

Every notify is written to ``pay_notifications`` with its outcome (credited, duplicate,
pending, failed, bad_signature, malformed, unknown_trade, amount_mismatch, txn_conflict).

Refund flow (to the original payment): reserve the amount on the intent (optimistic check, so
two refunds never exceed what was paid), debit the wallet (``payrefund:<refund>``), ask the
provider. A provider outage leaves the refund pending and the same idempotency key resumes it;
a refusal credits the wallet back (``refund`` entry under the same ref) and releases the
reservation.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, col, func, select

from cloud.accounts.errors import InsufficientFunds, InvalidInput, NotFound
from cloud.accounts.models import UserStatus, make_id
from cloud.accounts.money import ZERO, to_positive_money
from cloud.accounts.service import AccountService, TenantFilter, retryable
from cloud.payments.config import PaymentsConfig
from cloud.payments.errors import (
    NotifyRefused,
    PaymentConflict,
    PaymentInvalid,
    PaymentNotFound,
    ProviderRejected,
)
from cloud.payments.models import (
    PAID_STATES,
    TABLES,
    IntentStatus,
    PaymentIntent,
    PaymentNotification,
    PaymentRefund,
    RefundStatus,
)
from cloud.payments.provider import (
    NotifyAck,
    OrderRequest,
    PaymentNotice,
    PaymentProvider,
    RefundRequest,
    TradeState,
)
from thingmodels.ids import new_id, now_ms

log = logging.getLogger("voltmesh.payments")

#: outcomes of a notify that the provider should stop redelivering
ACCEPTED_OUTCOMES = frozenset({"credited", "duplicate", "pending", "failed"})


def _key(key: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > 128 or \
            any(ord(c) < 32 for c in key):
        raise PaymentInvalid("idempotency key: 1 to 128 printable characters expected")
    return key.strip()


def _money(value: Any, what: str) -> Decimal:
    try:
        return to_positive_money(value, what=what)
    except InvalidInput as exc:
        raise PaymentInvalid(str(exc)) from None


class PaymentService:
    """Top-ups and refunds on one SQL engine, crediting wallets of an :class:`AccountService`."""

    def __init__(self, engine: Engine, accounts: AccountService,
                 providers: Mapping[str, PaymentProvider],
                 config: PaymentsConfig | None = None, *,
                 clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.accounts = accounts
        self.providers = dict(providers)
        self.config = config or PaymentsConfig()
        self.clock = clock
        SQLModel.metadata.create_all(engine, tables=TABLES)

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def provider(self, name: str) -> PaymentProvider:
        """A configured provider by name."""
        found = self.providers.get(name)
        if found is None:
            raise PaymentInvalid(f"unknown payment provider {name!r}; "
                                 f"configured: {sorted(self.providers)}")
        return found

    def notify_url(self, provider: str) -> str | None:
        """The callback URL a provider is given for a trade."""
        base = self.config.notify_base_url
        return None if base is None else f"{base.rstrip('/')}/api/v1/payments/notify/{provider}"

    # -- top-ups ---------------------------------------------------------------------------

    def create_topup(self, user_id: str, amount: Decimal | int | str, provider: str, *,
                     key: str, visible: TenantFilter | None = None,
                     description: str = "voltmesh wallet top-up") -> PaymentIntent:
        """Create (or, for a repeated key, return) a top-up and its QR code.

        The same key with another amount or provider is a :class:`PaymentConflict`. If the
        provider was unreachable the intent stays ``created`` and a retry with the same key
        asks the provider again.
        """
        prov = self.provider(provider)
        value = _money(amount, "amount")
        if not self.config.min_topup <= value <= self.config.max_topup:
            raise PaymentInvalid(f"amount {value}: top-ups are {self.config.min_topup} to "
                                 f"{self.config.max_topup}")
        stored_key = f"{user_id}:{_key(key)}"
        try:
            user = self.accounts.get_user(user_id, visible=visible)
            wallet = self.accounts.wallet(user.id)
        except NotFound:
            raise PaymentNotFound(f"user {user_id} not found") from None
        with self._session() as db:
            intent = db.exec(select(PaymentIntent)
                             .where(PaymentIntent.idempotency_key == stored_key)).first()
            if intent is None:
                if user.status != UserStatus.ACTIVE:
                    raise PaymentInvalid(f"user {user.id} is {user.status}")
                now = self.clock()
                intent = PaymentIntent(
                    id=make_id("pay"), tenant_id=user.tenant_id, user_id=user.id,
                    wallet_id=wallet.id, provider=provider, out_trade_no=f"T{new_id()}",
                    amount=value, currency=wallet.currency, status=IntentStatus.CREATED.value,
                    idempotency_key=stored_key, created_ms=now, updated_ms=now)
                db.add(intent)
                try:
                    db.commit()
                except IntegrityError:  # a concurrent twin stored it first
                    db.rollback()
                    intent = db.exec(select(PaymentIntent).where(
                        PaymentIntent.idempotency_key == stored_key)).one()
        if intent.amount != value or intent.provider != provider:
            raise PaymentConflict(f"idempotency key {key!r} was used for a top-up of "
                                  f"{intent.amount} via {intent.provider}")
        if intent.status == IntentStatus.CREATED:
            order = prov.create_order(OrderRequest(
                out_trade_no=intent.out_trade_no, amount=intent.amount,
                currency=intent.currency, description=description,
                notify_url=self.notify_url(provider)))
            with self._session() as db:
                db.exec(update(PaymentIntent)
                        .where(col(PaymentIntent.id) == intent.id,
                               col(PaymentIntent.status) == IntentStatus.CREATED.value)
                        .values(prepay_id=order.prepay_id, code_url=order.code_url,
                                status=IntentStatus.PENDING.value, updated_ms=self.clock())
                        .execution_options(synchronize_session=False))
                db.commit()
            intent = self.get(intent.id)
        return intent

    def get(self, intent_id: str, *, visible: TenantFilter | None = None) -> PaymentIntent:
        """A payment by id."""
        with self._session() as db:
            stmt = select(PaymentIntent).where(PaymentIntent.id == intent_id)
            if visible is not None:
                stmt = stmt.where(visible(PaymentIntent.tenant_id))
            intent = db.exec(stmt).first()
        if intent is None:
            raise PaymentNotFound(f"payment {intent_id} not found")
        return intent

    def list_payments(self, *, visible: TenantFilter | None = None, user_id: str | None = None,
             status: str | None = None, limit: int = 50, offset: int = 0
             ) -> list[PaymentIntent]:
        """Payments, newest first."""
        if not 1 <= limit <= 1000 or offset < 0:
            raise PaymentInvalid("limit must be 1..1000 and offset >= 0")
        stmt = select(PaymentIntent)
        if visible is not None:
            stmt = stmt.where(visible(PaymentIntent.tenant_id))
        if user_id is not None:
            stmt = stmt.where(PaymentIntent.user_id == user_id)
        if status is not None:
            stmt = stmt.where(PaymentIntent.status == status)
        stmt = stmt.order_by(col(PaymentIntent.id).desc()).limit(limit).offset(offset)
        with self._session() as db:
            return list(db.exec(stmt))

    # -- notifies --------------------------------------------------------------------------

    def handle_notify(self, provider: str, headers: Mapping[str, str], body: bytes
                      ) -> NotifyAck:
        """Verify and apply a provider's notify; the answer goes back to the provider."""
        prov = self.providers.get(provider)
        if prov is None:
            log.warning("notify for unknown payment provider %r refused", provider)
            self._record(provider, None, None, "unknown_provider", None, body)
            return NotifyAck(404, json.dumps({"error": "not_found", "detail":
                                              f"unknown provider {provider}"}).encode(),
                             "application/json")
        try:
            notice = prov.parse_notify(headers, body)
        except NotifyRefused as exc:
            log.warning("%s notify refused (%s): %s", provider, exc.code, exc)
            self._record(provider, None, None, exc.code, str(exc), body)
            ack = prov.ack(False, exc.code)
            return NotifyAck(exc.status, ack.body, ack.media_type)
        outcome, intent, detail = self.apply(provider, notice)
        self._record(provider, notice.out_trade_no, intent, outcome, detail, body)
        if outcome not in ACCEPTED_OUTCOMES:
            log.error("%s notify for %s refused: %s (%s)", provider, notice.out_trade_no,
                      outcome, detail)
            ack = prov.ack(False, outcome)
            return NotifyAck(400, ack.body, ack.media_type)
        return prov.ack(True)

    def _record(self, provider: str, out_trade_no: str | None, intent: PaymentIntent | None,
                outcome: str, detail: str | None, body: bytes) -> None:
        row = PaymentNotification(
            tenant_id=intent.tenant_id if intent else None, provider=provider[:32],
            out_trade_no=out_trade_no[:64] if out_trade_no else None,
            intent_id=intent.id if intent else None, outcome=outcome,
            detail=detail[:512] if detail else None,
            raw=body[:65536].decode("utf-8", errors="replace"), received_ms=self.clock())
        with self._session() as db:
            db.add(row)
            db.commit()

    def notifications(self, *, out_trade_no: str | None = None,
                      limit: int = 100) -> list[PaymentNotification]:
        """The notify audit trail, newest first."""
        stmt = select(PaymentNotification)
        if out_trade_no is not None:
            stmt = stmt.where(PaymentNotification.out_trade_no == out_trade_no)
        stmt = stmt.order_by(col(PaymentNotification.id).desc()).limit(limit)
        with self._session() as db:
            return list(db.exec(stmt))

    def apply(self, provider: str, notice: PaymentNotice
              ) -> tuple[str, PaymentIntent | None, str | None]:
        """Apply a verified statement about a trade: ``(outcome, intent, detail)``."""
        with self._session() as db:
            intent = db.exec(select(PaymentIntent).where(
                PaymentIntent.provider == provider,
                PaymentIntent.out_trade_no == notice.out_trade_no)).first()
        if intent is None:
            return "unknown_trade", None, f"no payment with out_trade_no {notice.out_trade_no}"
        if notice.amount != intent.amount or notice.currency != intent.currency:
            return "amount_mismatch", intent, (f"notify says {notice.amount} {notice.currency}"
                                               f", payment is {intent.amount} {intent.currency}")
        if notice.state in (TradeState.SUCCESS, TradeState.REFUND):
            if intent.status in PAID_STATES:
                if notice.transaction_id and intent.provider_txn_id and \
                        notice.transaction_id != intent.provider_txn_id:
                    return "txn_conflict", intent, (f"transaction {notice.transaction_id}, paid "
                                                    f"with {intent.provider_txn_id}")
                return "duplicate", intent, None
            entry = self.accounts.credit(
                intent.wallet_id, intent.amount, key=f"topup:{intent.id}", ref=intent.id,
                note=f"{provider} {notice.transaction_id or ''}".strip())
            now = self.clock()
            with self._session() as db:
                result = db.exec(
                    update(PaymentIntent)
                    .where(col(PaymentIntent.id) == intent.id,
                           col(PaymentIntent.status).not_in(PAID_STATES))
                    .values(status=IntentStatus.PAID.value,
                            provider_txn_id=notice.transaction_id,
                            paid_ms=notice.paid_ms or now,
                            raw_notify=json.dumps(dict(notice.raw), sort_keys=True),
                            ledger_entry_id=entry.id, updated_ms=now)
                    .execution_options(synchronize_session=False))
                db.commit()
            if result.rowcount == 1:
                log.info("top-up %s of %s credited to %s (entry %s)", intent.id, intent.amount,
                         intent.wallet_id, entry.id)
                return "credited", self.get(intent.id), None
            return "duplicate", self.get(intent.id), None
        if notice.state in (TradeState.CLOSED, TradeState.PAYERROR):
            status = IntentStatus.CLOSED if notice.state is TradeState.CLOSED \
                else IntentStatus.FAILED
            with self._session() as db:
                db.exec(update(PaymentIntent)
                        .where(col(PaymentIntent.id) == intent.id,
                               col(PaymentIntent.status).not_in(PAID_STATES))
                        .values(status=status.value, updated_ms=self.clock())
                        .execution_options(synchronize_session=False))
                db.commit()
            return "failed", self.get(intent.id), notice.state.value
        return "pending", intent, notice.state.value

    def sync(self, intent_id: str, *, visible: TenantFilter | None = None) -> PaymentIntent:
        """Ask the provider about a payment whose notify did not come, and apply the answer."""
        intent = self.get(intent_id, visible=visible)
        if intent.status == IntentStatus.CREATED:
            return intent
        notice = self.provider(intent.provider).query(intent.out_trade_no)
        outcome, _, detail = self.apply(intent.provider, notice)
        if outcome not in ACCEPTED_OUTCOMES:
            raise PaymentConflict(f"provider statement refused: {outcome} ({detail})")
        return self.get(intent_id)

    # -- refunds ---------------------------------------------------------------------------

    def refunds(self, intent_id: str, *, visible: TenantFilter | None = None
                ) -> list[PaymentRefund]:
        """A payment's refunds, oldest first."""
        self.get(intent_id, visible=visible)
        with self._session() as db:
            return list(db.exec(select(PaymentRefund)
                                .where(PaymentRefund.intent_id == intent_id)
                                .order_by(col(PaymentRefund.created_ms), col(PaymentRefund.id))))

    def refund(self, intent_id: str, amount: Decimal | int | str | None = None, *, key: str,
               reason: str | None = None, visible: TenantFilter | None = None
               ) -> PaymentRefund:
        """Refund (part of) a paid top-up to the original payment; the wallet is debited.

        Idempotent by ``key`` (per payment). Raises :class:`PaymentConflict` beyond the paid
        amount, for an unpaid payment, or when the wallet no longer holds the money.
        """
        stored_key = f"{intent_id}:{_key(key)}"
        value = None if amount is None else _money(amount, "amount")
        if reason is not None and len(reason) > 256:
            raise PaymentInvalid("reason: at most 256 characters")
        intent = self.get(intent_id, visible=visible)
        row = self._refund_by_key(stored_key)
        for _attempt in range(50):
            if row is not None:
                break
            row = self._reserve_refund(intent_id, value, stored_key, reason)
        if row is None:
            raise PaymentConflict(f"payment {intent_id} is being refunded concurrently; retry")
        if row.intent_id != intent.id or (value is not None and row.amount != value):
            raise PaymentConflict(f"idempotency key {key!r} was used for refund {row.id} of "
                                  f"{row.amount}")
        if row.status != RefundStatus.PENDING:
            return row
        return self._complete_refund(row)

    def _refund_by_key(self, stored_key: str) -> PaymentRefund | None:
        with self._session() as db:
            return db.exec(select(PaymentRefund)
                           .where(PaymentRefund.idempotency_key == stored_key)).first()

    def _reserve_refund(self, intent_id: str, value: Decimal | None, stored_key: str,
                        reason: str | None) -> PaymentRefund | None:
        """Store a pending refund and reserve its amount on the intent; None: raced, retry."""
        try:
            return self._reserve_refund_once(intent_id, value, stored_key, reason)
        except OperationalError as exc:  # SQLite busy/locked, PostgreSQL deadlock: retry
            if not retryable(exc):
                raise
            time.sleep(random.uniform(0, 0.02))  # noqa: S311 - jitter
            return None

    def _reserve_refund_once(self, intent_id: str, value: Decimal | None, stored_key: str,
                             reason: str | None) -> PaymentRefund | None:
        with self._session() as db:
            intent = db.exec(select(PaymentIntent).where(PaymentIntent.id == intent_id)
                             .with_for_update()).one()
            if intent.status not in (IntentStatus.PAID, IntentStatus.PARTIALLY_REFUNDED):
                raise PaymentConflict(f"payment {intent.id} is {intent.status}: nothing to refund")
            left = intent.amount - intent.refunded_amount
            want = left if value is None else value
            if want <= ZERO or want > left:
                raise PaymentConflict(f"refund {want} exceeds what is left of payment "
                                      f"{intent.id}: {left}")
            now = self.clock()
            reserved = db.exec(
                update(PaymentIntent)
                .where(col(PaymentIntent.id) == intent.id,
                       col(PaymentIntent.refunded_amount) == intent.refunded_amount)
                .values(refunded_amount=intent.refunded_amount + want, updated_ms=now)
                .execution_options(synchronize_session=False))
            if reserved.rowcount != 1:  # another refund moved first (SQLite: no row lock)
                db.rollback()
                return None
            row = PaymentRefund(id=make_id("rfd"), tenant_id=intent.tenant_id,
                                intent_id=intent.id, out_refund_no=f"R{new_id()}", amount=want,
                                status=RefundStatus.PENDING.value, reason=reason,
                                idempotency_key=stored_key, created_ms=now, updated_ms=now)
            db.add(row)
            try:
                db.commit()
            except IntegrityError:  # the same key from a concurrent twin
                db.rollback()
                return self._refund_by_key(stored_key)
            return row

    def _complete_refund(self, row: PaymentRefund) -> PaymentRefund:
        intent = self.get(row.intent_id)
        ref = f"payrefund:{row.id}"
        try:
            self.accounts.debit(intent.wallet_id, row.amount, key=ref, ref=ref,
                                note=f"refund to {intent.provider} {intent.out_trade_no}")
        except InsufficientFunds as exc:
            self._fail_refund(row, f"insufficient_balance: {exc}")
            raise PaymentConflict(f"the wallet no longer holds {row.amount}: {exc}") from None
        try:
            result = self.provider(intent.provider).refund(RefundRequest(
                out_trade_no=intent.out_trade_no, out_refund_no=row.out_refund_no,
                amount=row.amount, total=intent.amount, currency=intent.currency,
                reason=row.reason))
        except ProviderRejected as exc:
            self.accounts.refund(intent.wallet_id, row.amount, key=f"{ref}:revert", ref=ref,
                                 note=f"provider refused the refund: {exc}"[:256])
            self._fail_refund(row, str(exc))
            raise
        # a ProviderError (outage) propagates: the refund stays pending; the key resumes it
        with self._session() as db:
            db.exec(update(PaymentRefund)
                    .where(col(PaymentRefund.id) == row.id,
                           col(PaymentRefund.status) == RefundStatus.PENDING.value)
                    .values(status=RefundStatus.SUCCEEDED.value,
                            provider_refund_id=result.refund_id, updated_ms=self.clock())
                    .execution_options(synchronize_session=False))
            self._refresh_status(db, intent.id)
            db.commit()
        log.info("refund %s of %s to %s %s done", row.id, row.amount, intent.provider,
                 intent.out_trade_no)
        return self._refund_by_key(row.idempotency_key) or row

    def _fail_refund(self, row: PaymentRefund, why: str) -> None:
        with self._session() as db:
            failed = db.exec(update(PaymentRefund)
                             .where(col(PaymentRefund.id) == row.id,
                                    col(PaymentRefund.status) == RefundStatus.PENDING.value)
                             .values(status=RefundStatus.FAILED.value, failure=why[:256],
                                     updated_ms=self.clock())
                             .execution_options(synchronize_session=False))
            if failed.rowcount == 1:  # release the reservation exactly once
                db.exec(update(PaymentIntent)
                        .where(col(PaymentIntent.id) == row.intent_id)
                        .values(refunded_amount=PaymentIntent.refunded_amount - row.amount,
                                updated_ms=self.clock())
                        .execution_options(synchronize_session=False))
            db.commit()

    @staticmethod
    def _refresh_status(db: Session, intent_id: str) -> None:
        done = db.exec(select(func.sum(PaymentRefund.amount)).where(
            PaymentRefund.intent_id == intent_id,
            PaymentRefund.status == RefundStatus.SUCCEEDED.value)).one() or ZERO
        intent = db.exec(select(PaymentIntent).where(PaymentIntent.id == intent_id)).one()
        status = IntentStatus.REFUNDED if done == intent.amount else \
            IntentStatus.PARTIALLY_REFUNDED if done > 0 else IntentStatus.PAID
        db.exec(update(PaymentIntent).where(col(PaymentIntent.id) == intent_id)
                .values(status=status.value).execution_options(synchronize_session=False))
