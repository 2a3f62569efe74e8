"""OrderService: session events in, exactly one order per session out, billed once, paid once.

Every event is applied in its own transaction, under the order's row lock
(:func:`cloud.orders.store.lock_order`), after an ``INSERT ... ON CONFLICT DO NOTHING`` of the
order keyed by (gw, device, session_id). Events that are not samples are recorded in the order's
history keyed by message id, so a redelivered message is a no-op; everything else is idempotent
by state (first report wins, billing happens once, the debit key is ``order:{id}``). The debit
happens between two transactions: never while holding the order's lock, and retried by
:meth:`OrderService.sweep` if a worker died in between (the wallet's idempotency key makes that
safe). Two services on one PostgreSQL database may process the same events in any
interleaving: one order, one bill, one debit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from cloud.actions import Action, BillSessionEvent
from cloud.auth.principal import Principal
from cloud.orders.config import OrdersConfig
from cloud.orders.errors import (
    BadSessionEvent,
    IdempotencyConflict,
    InsufficientFunds,
    NoPayer,
    OrderNotFound,
    RefundRejected,
)
from cloud.orders.events import SAMPLE, SessionEvent, parse
from cloud.orders.lifecycle import (
    add_anomaly,
    apply_event,
    billed,
    derive,
    ended,
    open_status,
)
from cloud.orders.metrics import OrdersMetrics
from cloud.orders.models import TABLES, Order, OrderEvent, OrderRefund, OrderReject, OrderSample
from cloud.orders.notifier import Notifier
from cloud.orders.ports import Biller, Catalogue, Payer, Place, Wallets
from cloud.orders.queries import (
    OrderQuery,
    csv_rows,
    list_orders,
    order_detail,
    order_view,
    visible_order,
)
from cloud.orders.settlement import (
    final_paid_status,
    reconcile_order,
    settle_order,
    stored_bill,
    totals_disagree,
)
from cloud.orders.status import OrderStatus
from cloud.orders.store import insert_ignore, lock_order, order_id_of
from cloud.orders.views import OrderDetail, OrderPage, OrderView, RefundResult, RefundView
from thingmodels.validate import to_wire

log = logging.getLogger("voltmesh.orders")

_CENT = Decimal("0.01")
_REFUNDABLE = frozenset({OrderStatus.SETTLED, OrderStatus.DISPUTED, OrderStatus.REFUNDED})
_PAYABLE = frozenset({OrderStatus.FINISHED, OrderStatus.UNPAID})
_NO_ACCOUNT = "no_account"
_SETTLING = "settling"


def now_ms() -> int:
    """Wall-clock time in ms since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Rows:
    """Sample and history rows of one session's events, inserted together (multi-row)."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, s: Session) -> None:
        if self.samples:
            insert_ignore(s, OrderSample.__table__, self.samples,  # type: ignore[attr-defined]
                          ["order_id", "ts_ms"])
            self.samples = []
        if self.history:
            insert_ignore(s, OrderEvent.__table__, self.history,  # type: ignore[attr-defined]
                          ["order_id", "message_id"])
            self.history = []


@dataclass(frozen=True, slots=True)
class _Debit:
    order_id: int
    payer: Payer
    amount: Decimal
    cause: str


class OrderService:
    """Sessions -> orders; the query API; refunds; live status."""

    def __init__(self, engine: Engine, *, catalogue: Catalogue, biller: Biller,
                 wallets: Wallets, config: OrdersConfig | None = None,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.biller = biller
        self.wallets = wallets
        self.config = config or OrdersConfig()
        self.metrics = OrdersMetrics(registry)
        self.notifier = Notifier()
        self.clock = clock
        self._places: dict[tuple[str, str], tuple[float, Place | None]] = {}
        self._places_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        SQLModel.metadata.create_all(engine, tables=TABLES)

    # -- ingestion -------------------------------------------------------------------------------

    async def handle(self, batch: Sequence[Action]) -> None:
        """The billing lane's handler: apply each BillSessionEvent (other actions are ignored)."""
        self._loop = asyncio.get_running_loop()
        changed = await asyncio.to_thread(self.process, batch)
        self.notifier.notify(changed)

    def process(self, batch: Sequence[Action]) -> set[int]:
        """Apply a batch (blocking); returns the ids of the orders it changed.

        The events of one session are applied in their batch order, in one transaction under
        the order's lock; sessions are independent of each other, so each gets its own
        transaction (and its debit after the commit).
        """
        groups: dict[tuple[str, str, str], list[SessionEvent]] = {}
        for action in batch:
            if not isinstance(action, BillSessionEvent):
                self.metrics.events.labels(name=type(action).__name__, outcome="ignored").inc()
                continue
            try:
                ev = parse(action)
            except BadSessionEvent as exc:
                self._reject(action, str(exc))
                continue
            if ev is None:
                self.metrics.events.labels(name=action.name, outcome="ignored").inc()
                continue
            groups.setdefault((ev.gw, ev.device, ev.session_id), []).append(ev)
        changed: set[int] = set()
        for events in groups.values():
            order_id = self._ingest(events)
            if order_id is not None:
                changed.add(order_id)
        return changed

    def ingest(self, action: BillSessionEvent) -> int | None:
        """Apply one event; returns the order id when the order changed."""
        return next(iter(self.process([action])), None)

    def _ingest(self, events: list[SessionEvent]) -> int | None:
        """Apply the events of one session in one transaction, then debit if it became due."""
        first = events[0]
        place = self.place(first.gw, first.device)
        debit = None
        applied = 0
        rows = _Rows()
        with Session(self.engine) as s, s.no_autoflush:  # one UPDATE of the order, at commit
            order_id = self._upsert(s, first, place)
            order = lock_order(s, order_id)
            assert order is not None
            seen = set(s.exec(select(OrderEvent.message_id).where(
                OrderEvent.order_id == order_id,
                col(OrderEvent.message_id).in_({e.msg_id for e in events}))))
            for ev in events:
                if ev.name != SAMPLE and ev.msg_id in seen:
                    self.metrics.events.labels(name=ev.name, outcome="duplicate").inc()
                    continue
                seen.add(ev.msg_id)
                changed, planned = self._apply(s, order, ev, place, rows)
                debit = planned or debit
                applied += changed
                self.metrics.events.labels(name=ev.name, outcome="applied" if changed
                                           else "duplicate").inc()
            if applied:
                rows.flush(s)
                self._touch(order)
                s.add(order)
                s.commit()
        if debit is not None:
            self._pay(debit)
        return order_id if applied else None

    def place(self, gw: str, device: str) -> Place | None:
        """The catalogue's answer for a connector (cached ``place_cache_ttl`` seconds)."""
        key = (gw, device)
        now = time.monotonic()
        with self._places_lock:
            hit = self._places.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        found = self.catalogue.place(gw, device)
        with self._places_lock:
            if len(self._places) > 100_000:
                self._places.clear()
            self._places[key] = (now + self.config.place_cache_ttl, found)
        return found

    def _reject(self, action: BillSessionEvent, error: str) -> None:
        log.warning("session event refused: %s", error)
        self.metrics.events.labels(name=action.name, outcome="rejected").inc()
        place = self.place(action.gw, action.device)
        values = {
            "tenant_id": place.tenant_id if place else None, "key": action.key[:255],
            "gw": action.gw[:128], "device": action.device[:128], "name": action.name[:32],
            "message_id": action.msg_id[:128], "error": error[:1000],
            "params": _json_safe(action.params), "ts_ms": _int_or_none(action.ts_ms),
            "recorded_ms": self.clock(),
        }
        with Session(self.engine) as s:
            insert_ignore(s, OrderReject.__table__, values, ["key"])  # type: ignore[attr-defined]
            s.commit()

    def _upsert(self, s: Session, ev: SessionEvent, place: Place | None) -> int:
        now = self.clock()
        values: dict[str, Any] = {
            "gw": ev.gw, "device": ev.device, "session_id": ev.session_id,
            "status": OrderStatus.AUTHORISED.value, "created_ms": now, "updated_ms": now,
            "version": 1, "discrepancies": [], "anomalies": [], "offline": False, "free": False,
            "start_refused": False, "paid_amount": Decimal("0.00"),
            "owed_amount": Decimal("0.00"), "refunded_amount": Decimal("0.00"),
        }
        values.update(_place_values(place))
        order_id = order_id_of(s, ev.gw, ev.device, ev.session_id)
        if order_id is None:
            insert_ignore(s, Order.__table__, values, ["gw", "device", "session_id"])  # type: ignore[attr-defined]
            order_id = order_id_of(s, ev.gw, ev.device, ev.session_id)
        assert order_id is not None
        return order_id

    def _apply(self, s: Session, order: Order, ev: SessionEvent, place: Place | None,
               rows: _Rows) -> tuple[bool, _Debit | None]:
        """Apply one (not yet seen) event to the locked order; returns whether it changed
        anything and a debit to make. Identical repeats of a report, and samples or updates
        of an order that is billed, change nothing."""
        assert order.id is not None
        if ev.name in (SAMPLE, "sessionUpdated") and billed(order):
            return False, None
        before = order.status
        was_billed = billed(order)
        if order.tenant_id is None and place is not None:
            for name, value in _place_values(place).items():
                setattr(order, name, value)
        detail = apply_event(order, ev)
        if detail.get("duplicate"):
            return False, None
        if ev.name in (SAMPLE, "sessionUpdated"):
            self._sample(order, ev, rows)
        derive(order)
        if not billed(order):
            if ended(order):
                rows.flush(s)  # the settlement reads the samples
            self._advance(s, order, place, detail, self.clock())
        elif ev.name == "transactionRecord" and order.reconciled is None \
                and order.charger_record is not None:
            found = self.catalogue.tariff(order.station_id, order.started_ms) \
                if order.station_id and order.started_ms is not None else None
            reconcile_order(order, self.biller,
                            stored_bill(s, order, found.tariff if found else None))
            if order.status == OrderStatus.SETTLED.value and totals_disagree(order):
                order.status = OrderStatus.DISPUTED.value
        debit = None
        # a sample can be what bills the order (its end's grace passed): it pays then too,
        # not a sweep later
        if ev.name != SAMPLE or (billed(order) and not was_billed):
            self._resolve_payer(order)
            debit = self._plan_debit(order, ev.msg_id)
        if ev.name not in (SAMPLE, "sessionUpdated") or order.status != before:
            rows.history.append(self._history_row(order, ev.msg_id, ev.name, before, ev.ts_ms,
                                                  detail))
        return True, debit

    def _sample(self, order: Order, ev: SessionEvent, rows: _Rows) -> None:
        meter = ev.decimal("meter") if ev.name == "sessionUpdated" else ev.decimal("meterEnergy")
        energy = ev.decimal("energy")
        if meter is None and energy is None:
            return
        rows.samples.append({"order_id": order.id, "tenant_id": order.tenant_id,
                             "ts_ms": ev.ts_ms, "meter": meter, "energy": energy})

    def _advance(self, s: Session, order: Order, place: Place | None,
                 detail: dict[str, Any], now: int) -> None:
        """Move an order that is not billed yet to where the facts put it (and bill it once
        its end is ``settle_grace`` old)."""
        if place is not None and order.tenant_id is None:
            for name, value in _place_values(place).items():
                setattr(order, name, value)
        status = open_status(order)
        if status is OrderStatus.FINISHED:
            order.status = status.value
            if order.end_seen_ms is None:
                order.end_seen_ms = now
            due = order.end_seen_ms + int(self.config.settle_grace * 1000)
            if now < due:
                order.status_reason = f"{_SETTLING}: billed at {due}, after late samples"
                return
            reason = settle_order(s, order, place=place or self._order_place(order),
                                  catalogue=self.catalogue, biller=self.biller, now_ms=now)
            if order.billed_ms is not None:
                self.metrics.billed.labels(status=order.status).inc()
            else:
                order.status_reason = reason
            return
        order.status = status.value
        if status is OrderStatus.START_FAILED:
            reason = detail.get("reason") if detail.get("accepted") is False else None
            order.status_reason = f"start refused: {reason or 'no reason given'}" \
                if reason or not order.status_reason else order.status_reason
            if reason:
                add_anomaly(order, "start_refused", str(reason))
        else:
            order.status_reason = None

    def _order_place(self, order: Order) -> Place | None:
        if order.tenant_id is None:
            return self.place(order.gw, order.device)
        return Place(tenant_id=order.tenant_id, station_id=order.station_id or "",
                     charger_id=order.charger_id or "", connector_id=order.connector_id or "",
                     operating_mode=order.operating_mode or "online_billing",
                     protocol=order.protocol)

    def _resolve_payer(self, order: Order) -> None:
        if order.user_id is not None or order.tenant_id is None or not order.id_tag:
            return
        payer = self.wallets.payer(order.tenant_id, order.id_tag, order.id_type)
        if payer is not None:
            order.user_id, order.wallet_id = payer.user_id, payer.wallet_id

    def _plan_debit(self, order: Order, cause: str) -> _Debit | None:
        if order.billed_ms is None or not order.total_amount or order.paid_amount > 0:
            return None
        status = OrderStatus(order.status)
        if status not in _PAYABLE:
            return None
        if status is OrderStatus.UNPAID and not (order.status_reason or "").startswith(
                _NO_ACCOUNT):
            return None  # short wallet: retried on request (retry_payment), not per event
        if order.user_id is None:
            order.status = OrderStatus.UNPAID.value
            order.status_reason = f"{_NO_ACCOUNT}: nobody pays for id tag {order.id_tag!r}"
            order.owed_amount = order.total_amount
            return None
        assert order.id is not None
        return _Debit(order.id, Payer(order.user_id, order.wallet_id), order.total_amount,
                      cause)

    def _pay(self, debit: _Debit) -> None:
        """Debit the wallet (outside any order transaction), then record the outcome."""
        key = f"order:{debit.order_id}"
        ref: str | None = None
        try:
            ref = self.wallets.debit(debit.payer, debit.amount, key=key, ref=key)
            outcome, reason = "paid", None
        except InsufficientFunds as exc:
            outcome, reason = "insufficient_funds", f"insufficient_funds: {exc}"
        except NoPayer as exc:
            outcome, reason = _NO_ACCOUNT, f"{_NO_ACCOUNT}: {exc}"
        except Exception:
            # the order stays billed with its debit pending; sweep() retries with the same key
            log.exception("debit of order %s failed; left for the sweep", debit.order_id)
            self.metrics.payments.labels(outcome="error").inc()
            return
        self.metrics.payments.labels(outcome=outcome).inc()
        with Session(self.engine) as s, s.no_autoflush:
            order = lock_order(s, debit.order_id)
            assert order is not None
            if order.paid_amount > 0 or OrderStatus(order.status) not in _PAYABLE:
                return
            before = order.status
            if ref is not None:
                order.paid_amount = debit.amount
                order.owed_amount = Decimal("0.00")
                order.paid_ms = self.clock()
                order.payment_ref = str(ref)[:64]
                order.status = final_paid_status(order).value
                order.status_reason = None
            else:
                order.status = OrderStatus.UNPAID.value
                order.status_reason = (reason or "")[:255]
                order.owed_amount = debit.amount
            self._history(s, order, f"{debit.cause}:payment", "payment", before, None,
                          {"outcome": outcome, "amount": str(debit.amount), "ledger": ref})
            self._touch(order)
            s.add(order)
            s.commit()

    def _history(self, s: Session, order: Order, message_id: str, name: str,
                 before: str | None, ts_ms: int | None, detail: dict[str, Any]) -> None:
        insert_ignore(s, OrderEvent.__table__,  # type: ignore[attr-defined]
                      self._history_row(order, message_id, name, before, ts_ms, detail),
                      ["order_id", "message_id"])

    def _history_row(self, order: Order, message_id: str, name: str, before: str | None,
                     ts_ms: int | None, detail: dict[str, Any]) -> dict[str, Any]:
        return {"order_id": order.id, "tenant_id": order.tenant_id,
                "message_id": message_id[:128], "name": name[:32], "from_status": before,
                "to_status": order.status, "ts_ms": ts_ms, "recorded_ms": self.clock(),
                "detail": _json_safe(detail)}

    def _touch(self, order: Order) -> None:
        order.updated_ms = self.clock()
        order.version = (order.version or 0) + 1

    # -- money -----------------------------------------------------------------------------------

    def retry_payment(self, order_id: int, principal: Principal | None = None) -> OrderView:
        """Try the debit of an unpaid order again (after a top-up); idempotent."""
        with Session(self.engine) as s:
            order = lock_order(s, order_id)
            if order is None or (principal is not None and not principal.sees(order.tenant_id)):
                raise OrderNotFound(f"order {order_id} not found")
            before = order.status
            if order.status == OrderStatus.UNPAID.value:
                order.status = OrderStatus.FINISHED.value  # payable again
                self._resolve_payer(order)
            debit = self._plan_debit(order, f"retry:{order.version}")
            if order.status != before:
                self._touch(order)
            s.add(order)
            s.commit()
        if debit is not None:
            self._pay(debit)
        self._notify_threadsafe(order_id)
        return order_view(self.engine, principal, order_id)

    def refund(self, order_id: int, *, amount: Decimal | None, reason: str, key: str,
               principal: Principal | None = None) -> RefundResult:
        """Refund ``amount`` (None: all that is left) of a paid order to its wallet.

        Idempotent by ``key``: the same key returns the same refund; the same key with another
        amount is :class:`IdempotencyConflict`. A refund interrupted between the wallet and the
        order completes when it is asked again with its key.
        """
        key, reason, amount = _refund_args(key, reason, amount)
        with Session(self.engine) as s:
            order = lock_order(s, order_id)
            if order is None or (principal is not None and not principal.sees(order.tenant_id)):
                raise OrderNotFound(f"order {order_id} not found")
            row = s.exec(select(OrderRefund).where(OrderRefund.order_id == order_id,
                                                   OrderRefund.key == key)).first()
            if row is not None:
                if amount is not None and amount != row.amount:
                    raise IdempotencyConflict(f"refund key {key!r} was used for "
                                              f"{row.amount}, not {amount}")
                if row.status == "done":
                    self.metrics.refunds.labels(outcome="replayed").inc()
                    return RefundResult(refund=RefundView.of(row), order=OrderView.of(order))
            else:
                row = self._new_refund(s, order, amount, reason, key, principal)
            refund_id, refund_amount = row.id, row.amount
            payer = Payer(order.user_id or "", order.wallet_id)
            s.commit()
        assert refund_id is not None
        ledger = self.wallets.refund(payer, refund_amount, key=f"refund:{order_id}:{key}",
                                     ref=f"order:{order_id}")
        with Session(self.engine) as s:
            order = lock_order(s, order_id)
            assert order is not None
            row = s.get(OrderRefund, refund_id, populate_existing=True)
            assert row is not None
            if row.status != "done":
                row.status, row.ledger_ref, row.done_ms = "done", str(ledger)[:64], self.clock()
                before = order.status
                order.refunded_amount = order.refunded_amount + row.amount
                order.status = OrderStatus.REFUNDED.value
                order.status_reason = reason[:255]
                self._history(s, order, f"refund:{key}", "refund", before, None,
                              {"amount": str(row.amount), "reason": reason, "ledger": ledger})
                self._touch(order)
                s.add(row)
                s.add(order)
                s.commit()
                self.metrics.refunds.labels(outcome="done").inc()
            result = RefundResult(refund=RefundView.of(row), order=OrderView.of(order))
        self._notify_threadsafe(order_id)
        return result

    def _new_refund(self, s: Session, order: Order, amount: Decimal | None, reason: str,
                    key: str, principal: Principal | None) -> OrderRefund:
        if OrderStatus(order.status) not in _REFUNDABLE or order.paid_amount <= 0:
            raise RefundRejected(f"order {order.id} is {order.status} with "
                                 f"{order.paid_amount} paid: nothing to refund")
        pending = sum((r.amount for r in s.exec(select(OrderRefund).where(
            OrderRefund.order_id == order.id, OrderRefund.status == "pending"))), Decimal(0))
        left = order.paid_amount - order.refunded_amount - pending
        if amount is None:
            amount = left
        if left <= 0 or amount > left:
            raise RefundRejected(f"order {order.id}: {amount} asked, {left} left to refund "
                                 f"(paid {order.paid_amount}, refunded {order.refunded_amount})")
        row = OrderRefund(order_id=order.id or 0, tenant_id=order.tenant_id, key=key,
                          amount=amount, reason=reason,
                          requested_by=principal.subject if principal else None,
                          created_ms=self.clock())
        s.add(row)
        s.flush()
        return row

    def _notify_threadsafe(self, order_id: int) -> None:
        """Wake watchers from any thread (a no-op before a loop used the service)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.notifier.notify([order_id])
        else:
            loop.call_soon_threadsafe(self.notifier.notify, [order_id])

    # -- time-outs and crash recovery ------------------------------------------------------------

    def settle_due(self, now: int | None = None, limit: int = 500) -> set[int]:
        """Bill the ended sessions whose ``settle_grace`` has passed (and debit them)."""
        now = self.clock() if now is None else now
        due = now - int(self.config.settle_grace * 1000)
        with Session(self.engine) as s:
            ids = s.exec(select(Order.id).where(
                Order.status == OrderStatus.FINISHED.value, col(Order.billed_ms).is_(None),
                col(Order.end_seen_ms) <= due,
                col(Order.status_reason).startswith(_SETTLING)).limit(limit)).all()
        return {i for i in ids if i is not None and self._revisit(i, now)}

    def sweep(self, now: int | None = None, limit: int = 500) -> set[int]:
        """Time out stale sessions; retry the settlement of ended sessions that are waiting
        (connector or tariff unknown, start not known yet) and debits a dead worker left
        pending. Times are this service's clock (``updated_ms``/``end_seen_ms``), never the
        charger's, so a replayed offline session is not "stale" on arrival."""
        now = self.clock() if now is None else now
        stale = now - int(self.config.stale_after * 1000)
        with Session(self.engine) as s:
            open_ids = s.exec(select(Order.id).where(
                col(Order.status).in_([OrderStatus.AUTHORISED.value, OrderStatus.CHARGING.value]),
                col(Order.updated_ms) < stale).limit(limit)).all()
            finished_ids = s.exec(select(Order.id).where(
                Order.status == OrderStatus.FINISHED.value).limit(limit)).all()
        changed = {i for i in open_ids if i is not None and self._time_out(i, stale)}
        pay_due = now - int(self.config.payment_retry_after * 1000)
        give_up = now - int(self.config.settle_timeout * 1000)
        changed |= {i for i in finished_ids if i is not None
                    and self._revisit(i, now, pay_due=pay_due, give_up=give_up)}
        return changed

    def _revisit(self, order_id: int, now: int, *, pay_due: int | None = None,
                 give_up: int | None = None) -> bool:
        """Bill a finished order if it can be now; retry its pending debit when the debit is
        older than ``pay_due``; give up (``timeout``) when it ended before ``give_up``."""
        debit = None
        with Session(self.engine) as s:
            order = lock_order(s, order_id)
            if order is None or order.status != OrderStatus.FINISHED.value:
                return False
            before, reason_before, version = order.status, order.status_reason, order.version
            if order.billed_ms is None:
                self._advance(s, order, self._order_place(order), {}, now)
                retry = order.billed_ms is not None
                if order.billed_ms is None and give_up is not None \
                        and (order.end_seen_ms or now) < give_up:
                    order.status = OrderStatus.TIMEOUT.value
                    order.status_reason = f"not billable: {order.status_reason}"[:255]
            else:
                retry = pay_due is not None and order.billed_ms < pay_due
            if retry:
                self._resolve_payer(order)
                debit = self._plan_debit(order, f"revisit:{version}")
            changed = retry or (order.status, order.status_reason) != (before, reason_before)
            if changed:
                self._history(s, order, f"revisit:{version}", "revisit", before, now, {})
                self._touch(order)
                s.add(order)
                s.commit()
        if debit is not None:
            self._pay(debit)
        return changed

    def _time_out(self, order_id: int, stale: int) -> bool:
        with Session(self.engine) as s:
            order = lock_order(s, order_id)
            if order is None or order.status not in (OrderStatus.AUTHORISED.value,
                                                     OrderStatus.CHARGING.value) \
                    or order.updated_ms >= stale:
                return False
            before = order.status
            order.status = OrderStatus.TIMEOUT.value
            order.status_reason = f"no news from the charger since {order.updated_ms}"
            self._history(s, order, f"timeout:{order.version}", "timeout", before, None, {})
            self._touch(order)
            s.add(order)
            s.commit()
            return True

    async def run(self) -> None:
        """Until cancelled (for a TaskGroup): every ``settle_interval`` bill the sessions whose
        grace has passed, every ``sweep_interval`` run the full :meth:`sweep`."""
        self._loop = asyncio.get_running_loop()
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(self.config.settle_interval)
            job: Callable[[], set[int]] = self.settle_due
            if time.monotonic() - last_sweep >= self.config.sweep_interval:
                job, last_sweep = self.sweep, time.monotonic()
            try:
                changed = await asyncio.to_thread(job)
            except Exception:
                log.exception("order %s failed; retried next interval", job.__name__)
                continue
            self.notifier.notify(changed)

    # -- queries ---------------------------------------------------------------------------------

    def list_orders(self, principal: Principal | None, query: OrderQuery) -> OrderPage:
        """A page of the orders the caller may see."""
        return list_orders(self.engine, principal, query)

    def get_order(self, principal: Principal | None, order_id: int) -> OrderDetail:
        """One order with its per-tier breakdown and history."""
        return order_detail(self.engine, principal, order_id)

    def get_view(self, principal: Principal | None, order_id: int) -> OrderView:
        """One order's current state (no tiers or history)."""
        return order_view(self.engine, principal, order_id)

    def export_csv(self, principal: Principal | None, query: OrderQuery,
                   page_size: int = 500) -> Iterator[str]:
        """CSV text chunks of every matching order (see :func:`cloud.orders.queries.csv_rows`)."""
        return csv_rows(self.engine, principal, query, page_size)

    async def watch(self, order_id: int, principal: Principal | None = None
                    ) -> AsyncIterator[OrderView]:
        """The order now, then each time it changes (here: at once; elsewhere: within
        ``watch_poll_interval``). Raises :class:`OrderNotFound` before the first item. Iterate
        under ``contextlib.aclosing(...)`` (or cancel the task) so that leaving early
        unsubscribes at once."""
        self._loop = asyncio.get_running_loop()
        with self.notifier.subscribe(order_id) as wake:
            view = await asyncio.to_thread(self.get_view, principal, order_id)
            yield view
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.config.watch_poll_interval)
                wake.clear()
                try:
                    fresh = await asyncio.to_thread(self.get_view, principal, order_id)
                except OrderNotFound:
                    return
                if fresh.version != view.version:
                    view = fresh
                    yield view

    def order_ids(self, gw: str, device: str, session_id: str) -> int | None:
        """The id of a session's order (None when there is none)."""
        with Session(self.engine) as s:
            return order_id_of(s, gw, device, session_id)

    def check_visible(self, principal: Principal | None, order_id: int) -> None:
        """:class:`OrderNotFound` unless the caller may see the order."""
        with Session(self.engine) as s:
            visible_order(s, principal, order_id)


def _place_values(place: Place | None) -> dict[str, Any]:
    if place is None:
        return {}
    return {"tenant_id": place.tenant_id, "station_id": place.station_id,
            "charger_id": place.charger_id, "connector_id": place.connector_id,
            "operating_mode": place.operating_mode, "protocol": place.protocol}


def _refund_args(key: str, reason: str, amount: Decimal | None
                 ) -> tuple[str, str, Decimal | None]:
    key = (key or "").strip()
    if not key or len(key) > 128:
        raise ValueError("an idempotency key of 1 to 128 characters is required")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a refund needs a reason")
    if amount is not None:
        try:
            amount = Decimal(amount)
        except (InvalidOperation, TypeError) as exc:
            raise ValueError(f"amount {amount!r} is not a number") from exc
        if not amount.is_finite() or amount <= 0:
            raise ValueError(f"amount {amount} must be above zero")
        if amount != amount.quantize(_CENT):
            raise ValueError(f"amount {amount} has more than 2 decimal places")
        amount = amount.quantize(_CENT)
    return key, reason[:255], amount


def _json_safe(value: Any) -> Any:
    wired = to_wire(value)
    if isinstance(wired, dict):
        return {str(k): _json_safe(v) for k, v in wired.items()}
    if isinstance(wired, list):
        return [_json_safe(v) for v in wired]
    if isinstance(wired, str | int | bool) or wired is None:
        return wired
    if isinstance(wired, float):
        return wired
    return repr(wired)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
