"""The alarm manager: signals in, alarms in SQL, transitions out (points, notifications).

Every method except :meth:`AlarmManager.handle` and :meth:`AlarmManager.run` is synchronous
and blocks on the database: call it from a worker thread (``asyncio.to_thread``), like the
registry. A batch is one transaction (per 500 dedupe keys) that first locks the keys'
``alarm_key`` rows in key order (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite), so any number of workers (and threads) may process signals of the same devices at
the same time without deadlocks; the partial unique index on ``alarm(dedupe)`` guarantees one
live alarm per key whatever happens. Sweeps and operator actions lock one key each. The state
machine itself is :mod:`cloud.alarms.lifecycle`.

After a transaction has committed, each transition of an alarm that was raised is

* written as a time-series point through ``emit_point(WritePoint)``: measurement ``alarm``,
  tags ``gw product device type level``, field ``active`` 1/0;
* handed to the notifier (``submit(alarm, event)``: queued, never awaited).

Both run on the event loop the manager is attached to (:meth:`attach`; :meth:`handle` and
:meth:`run` attach it), else in the calling thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any, Protocol, TypeVar

from sqlalchemy import and_, delete, func, insert, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session, col, select

from cloud.actions import Action, AlarmSignal, WritePoint
from cloud.alarms import lifecycle
from cloud.alarms.errors import AlarmError, AlarmNotFound, InvalidSignal
from cloud.alarms.lifecycle import Outcome, Step
from cloud.alarms.metrics import AlarmMetrics
from cloud.alarms.states import ACTIVE_STATES, Event, State
from cloud.alarms.tables import (
    AlarmEventRow,
    AlarmKeyRow,
    AlarmRejectedRow,
    AlarmRow,
    AlarmSeenRow,
    create_tables,
)
from cloud.alarms.view import AlarmFilter, AlarmPage, AlarmView, HistoryEntry, Transition
from cloud.errors import ConfigError, StoreError
from thingmodels.ids import new_id, now_ms

log = logging.getLogger("voltmesh.cloud.alarms")

T = TypeVar("T")

TenantOf = Callable[[str, str, str], str | None]
EmitPoint = Callable[[WritePoint], Any]
Visible = Callable[[str | None], bool]

_ATTEMPTS = 6
_CHUNK = 500  # dedupe keys per transaction
DAY_MS = 86_400_000


class NotifySink(Protocol):
    """Where transitions go to be notified (:class:`cloud.alarms.notify.Notifier`)."""

    def submit(self, alarm: AlarmView, event: str) -> None: ...


class AlarmManager:
    """Alarm lifecycle over a synchronous SQLAlchemy engine (SQLite or PostgreSQL).

    ``tenant_of(gw, product, device)`` resolves a new alarm's tenant (None: unknown yet; tried
    again on later raises). ``seen_retention_ms`` bounds the table of processed action keys;
    ``sweep_grace_ms`` is how long past a deadline :meth:`sweep` waits for a late signal.
    """

    def __init__(self, engine: Engine, *, tenant_of: TenantOf | None = None,
                 emit_point: EmitPoint | None = None, notifier: NotifySink | None = None,
                 metrics: AlarmMetrics | None = None, seen_retention_ms: int = 7 * DAY_MS,
                 sweep_grace_ms: int = 5_000, clock: Callable[[], int] = now_ms) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"alarms need SQLite or PostgreSQL, not {dialect}")
        self.engine = engine
        self._sqlite = dialect == "sqlite"
        self.tenant_of = tenant_of
        self.emit_point = emit_point
        self.notifier = notifier
        self.metrics = metrics if metrics is not None else AlarmMetrics()
        self.seen_retention_ms = seen_retention_ms
        self.sweep_grace_ms = sweep_grace_ms
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending_emits: set[asyncio.Future[Any]] = set()
        try:
            create_tables(engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the alarm tables: {exc}") from exc

    # -- the sink contract ------------------------------------------------------------------

    async def handle(self, batch: Sequence[Action]) -> None:
        """Process a batch from the alarm sink queue; returns once it is committed.

        Invalid signals (and actions that are not :class:`AlarmSignal`) are stored in
        ``alarm_rejected`` and logged, never raised; a database failure raises
        :class:`~cloud.errors.StoreError` (retry the batch: replays are no-ops).
        """
        self.attach()
        transitions = await asyncio.to_thread(self._process, list(batch))
        self._dispatch(transitions)

    def process(self, batch: Sequence[Action]) -> list[Transition]:
        """Process signals (blocking); returns the committed transitions."""
        transitions = self._process(list(batch))
        self._publish(transitions)
        return transitions

    def sweep(self, now_ms: int | None = None) -> list[Transition]:
        """Apply deadlines as of ``now_ms`` (default: the clock minus ``sweep_grace_ms``).

        A pending alarm whose raise has held ``debounce_ms`` opens, an active alarm whose clear
        has held ``clear_after_ms`` clears, also when no further signal arrives (rules that
        signal only on changes). Returns the committed transitions.
        """
        transitions = self._sweep(now_ms)
        self._publish(transitions)
        return transitions

    def prune(self, now_ms: int | None = None) -> int:
        """Forget processed action keys older than the retention; returns how many."""
        cutoff = (self.clock() if now_ms is None else now_ms) - self.seen_retention_ms
        with self._session() as db:
            result = db.connection().execute(
                delete(AlarmSeenRow).where(col(AlarmSeenRow.seen_ms) < cutoff))
            db.commit()
            return int(result.rowcount or 0)

    async def run(self, sweep_interval: float = 1.0, prune_interval: float = 3600.0) -> None:
        """Sweep deadlines every ``sweep_interval`` seconds and prune hourly, until cancelled.

        A failing database is logged and tried again at the next interval.
        """
        self.attach()
        last_prune = 0.0
        while True:
            try:
                transitions = await asyncio.to_thread(self._sweep, None)
                self._dispatch(transitions)
                if time.monotonic() - last_prune >= prune_interval:
                    await asyncio.to_thread(self.prune)
                    last_prune = time.monotonic()
            except (StoreError, SQLAlchemyError) as exc:
                log.warning("alarm sweep failed: %s", exc)
            await asyncio.sleep(sweep_interval)

    # -- operators --------------------------------------------------------------------------

    def list_alarms(self, filt: AlarmFilter | None = None, *, tenant_clause: Any = None,
                    limit: int = 100, offset: int = 0) -> AlarmPage:
        """A page of alarms, newest first, and the total that match.

        ``tenant_clause`` restricts the tenants (``principal.tenant_clause(AlarmRow.tenant_id)``);
        None = every alarm.
        """
        f = filt or AlarmFilter()
        where: list[Any] = []
        if tenant_clause is not None:
            where.append(tenant_clause)
        if f.states is not None:
            where.append(col(AlarmRow.state).in_(sorted(f.states)))
        if f.levels is not None:
            where.append(col(AlarmRow.level).in_(sorted(f.levels)))
        for name in ("type", "gw", "product", "device"):
            value = getattr(f, name)
            if value is not None:
                where.append(getattr(AlarmRow, name) == value)
        if f.since is not None:
            where.append(col(AlarmRow.updated_ms) >= f.since)
        if f.until is not None:
            where.append(col(AlarmRow.first_raised_ms) < f.until)
        with self._session() as db:
            total = db.exec(select(func.count()).select_from(AlarmRow).where(*where)).one()
            rows = db.exec(select(AlarmRow).where(*where)
                           .order_by(col(AlarmRow.first_raised_ms).desc(), col(AlarmRow.id).desc())
                           .limit(limit).offset(offset)).all()
            return AlarmPage(items=[AlarmView.of(r) for r in rows], total=int(total))

    def get(self, alarm_id: str, *, visible: Visible | None = None) -> AlarmView:
        """One alarm with its history (:class:`AlarmNotFound` if absent or not visible)."""
        with self._session() as db:
            row = db.get(AlarmRow, alarm_id)
            if row is None or (visible is not None and not visible(row.tenant_id)):
                raise AlarmNotFound(alarm_id)
            return AlarmView.of(row, self._history(db, alarm_id))

    def acknowledge(self, alarm_id: str, by: str, note: str | None = None, *,
                    visible: Visible | None = None) -> AlarmView:
        """Acknowledge (idempotent): open -> acknowledged, cleared -> closed.

        :class:`AlarmNotFound` (404) when absent or not ``visible``, :class:`AlarmConflict`
        (409) when pending or closed without acknowledgement.
        """
        return self._operate(alarm_id, visible, lambda row, now: lifecycle.acknowledge(
            row, by, note, now))

    def close(self, alarm_id: str, by: str, note: str | None = None, *,
              visible: Visible | None = None) -> AlarmView:
        """Close (idempotent); frees the dedupe key: a later raise makes a new alarm."""
        return self._operate(alarm_id, visible, lambda row, now: lifecycle.close(
            row, by, note, now))

    def rejected(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest rejected signals with their reasons."""
        with self._session() as db:
            rows = db.exec(select(AlarmRejectedRow)
                           .order_by(col(AlarmRejectedRow.id).desc()).limit(limit)).all()
            return [r.model_dump() for r in rows]

    # -- event loop -------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run points and notifications on ``loop`` (default: the running loop)."""
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def _publish(self, transitions: list[Transition]) -> None:
        if not transitions:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed() and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._dispatch, transitions)
        else:
            self._dispatch(transitions)

    def _dispatch(self, transitions: list[Transition]) -> None:
        for t in transitions:
            if self.emit_point is not None:
                for point in points_of(t):
                    try:
                        result = self.emit_point(point)
                        if inspect.isawaitable(result):
                            fut = asyncio.ensure_future(result)
                            self._pending_emits.add(fut)
                            fut.add_done_callback(self._emitted)
                    except Exception:
                        self.metrics.point_errors.inc()
                        log.exception("emit_point failed for alarm %s", t.alarm.id)
            if self.notifier is not None:
                try:
                    self.notifier.submit(t.alarm, t.event)
                except Exception:
                    log.exception("notifier refused alarm %s", t.alarm.id)

    def _emitted(self, fut: asyncio.Future[Any]) -> None:
        self._pending_emits.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            self.metrics.point_errors.inc()
            log.error("emit_point failed: %s", fut.exception())

    # -- transactions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as db:
                yield db
        except AlarmError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"alarm store: {exc}") from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Session]:
        """A write transaction (SQLite: taken with BEGIN IMMEDIATE, writers queue up front)."""
        with Session(self.engine, expire_on_commit=False) as db:
            if self._sqlite:
                db.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield db
            db.commit()

    def _retry(self, work: Callable[[], T]) -> T:
        """Run a transaction, again on lock timeouts, deadlocks and lost races."""
        for attempt in range(_ATTEMPTS):
            try:
                return work()
            except (OperationalError, IntegrityError) as exc:
                if attempt == _ATTEMPTS - 1:
                    raise StoreError(f"alarm store: {exc}") from exc
                log.info("alarm transaction retried (%s)", type(exc.orig).__name__)
                time.sleep(0.02 * 2 ** attempt)
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt == _ATTEMPTS - 1:
                    raise StoreError(f"alarm store: {exc}") from exc
            except AlarmError:
                raise
            except SQLAlchemyError as exc:
                raise StoreError(f"alarm store: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _lock_key(self, db: Session, dedupe: str) -> AlarmKeyRow:
        self._insert_keys(db, [dedupe])
        query = select(AlarmKeyRow).where(AlarmKeyRow.dedupe == dedupe) \
            .execution_options(populate_existing=True)
        if not self._sqlite:
            query = query.with_for_update()
        return db.exec(query).one()

    def _first_time(self, db: Session, key: str, now: int) -> bool:
        upsert = sqlite_insert if self._sqlite else pg_insert
        result = db.connection().execute(upsert(AlarmSeenRow).values(key=key, seen_ms=now)
                                         .on_conflict_do_nothing(index_elements=["key"])
                                         .returning(col(AlarmSeenRow.key)))
        return result.first() is not None

    def _live(self, db: Session, dedupe: str) -> AlarmRow | None:
        return db.exec(select(AlarmRow)
                       .where(AlarmRow.dedupe == dedupe, AlarmRow.state != State.CLOSED)
                       .execution_options(populate_existing=True)).one_or_none()

    def _history(self, db: Session, alarm_id: str) -> tuple[HistoryEntry, ...]:
        rows = db.exec(select(AlarmEventRow).where(AlarmEventRow.alarm_id == alarm_id)
                       .order_by(col(AlarmEventRow.revision), col(AlarmEventRow.id))).all()
        return tuple(HistoryEntry.of(r) for r in rows)

    def _persist(self, db: Session, key: AlarmKeyRow, out: Outcome,
                 events: list[dict[str, Any]] | None = None) -> list[Transition]:
        """Stage what ``out`` changed; history rows go to ``events`` (written now if None)."""
        for row in out.discarded:
            db.connection().execute(delete(AlarmEventRow)
                                    .where(col(AlarmEventRow.alarm_id) == row.id))
            db.delete(row)
        if out.created and out.discarded:
            # a flush runs UPDATEs before INSERTs (a closed alarm frees its key in time), but
            # DELETEs after them: the discarded pending alarm must go first
            db.flush()
        rows = {id(r): r for r, _ in out.steps}
        rows.update({id(r): r for r in out.closed})
        if out.row is not None:
            rows[id(out.row)] = out.row
        for row in rows.values():
            db.add(row)
        key.alarm_id = out.row.id if out.row is not None else None
        db.add(key)
        history = [{"alarm_id": row.id, "revision": step.revision, "ts_ms": step.ts_ms,
                    "event": step.event.value,
                    "from_state": step.from_state.value if step.from_state else None,
                    "to_state": step.to_state.value, "actor": step.actor, "note": step.note,
                    "value": step.value} for row, step in out.steps]
        if events is None:
            self._write_events(db, history)
        else:
            events.extend(history)
        return [_transition(step) for _, step in out.steps if _notifiable(step)]

    # -- signal processing ------------------------------------------------------------------

    def _process(self, batch: list[Action]) -> list[Transition]:
        groups: dict[str, list[AlarmSignal]] = {}
        rejected: list[tuple[Action, str]] = []
        for signal in batch:
            if not isinstance(signal, AlarmSignal):
                rejected.append((signal, f"{type(signal).__name__} {signal.key!r} of rule "
                                         f"{signal.rule!r} is not an AlarmSignal"))
                continue
            try:
                lifecycle.check_signal(signal)
            except InvalidSignal as exc:
                rejected.append((signal, str(exc)))
                continue
            groups.setdefault(signal.dedupe, []).append(signal)
        if rejected:
            self._retry(functools.partial(self._reject, rejected))
        # the common case by far: a normal telemetry value clears a key that never raised
        # (every temperature sample below the clear threshold). That costs one SELECT per
        # batch, not a lock row and a seen-row per signal. Only for telemetry: its next sample
        # repeats the clear, while an event's clear must be kept for a raise arriving late.
        only_clears = [d for d, signals in groups.items()
                       if all(not s.active and s.source == "prop" for s in signals)]
        if only_clears:
            known = self._retry(functools.partial(self._known_keys, only_clears))
            idle = [d for d in only_clears if d not in known]
            for dedupe in idle:
                self.metrics.signals.labels(outcome="idle_clear").inc(len(groups.pop(dedupe)))
        transitions: list[Transition] = []
        dedupes = sorted(groups)
        for i in range(0, len(dedupes), _CHUNK):
            chunk = {d: groups[d] for d in dedupes[i:i + _CHUNK]}
            # the lock rows exist before the transaction that locks them (in key order)
            self._retry(functools.partial(self._ensure_keys, list(chunk)))
            transitions += self._retry(functools.partial(self._apply, chunk))
        return transitions

    def _known_keys(self, dedupes: list[str]) -> set[str]:
        """The dedupe keys that ever raised (have a lock row)."""
        known: set[str] = set()
        with self._session() as db:
            for i in range(0, len(dedupes), _CHUNK):
                known.update(db.exec(select(AlarmKeyRow.dedupe).where(
                    col(AlarmKeyRow.dedupe).in_(dedupes[i:i + _CHUNK]))).all())
        return known

    def _reject(self, rejected: list[tuple[Action, str]]) -> None:
        now = self.clock()
        stored = 0
        with self._tx() as db:
            for signal, reason in rejected:
                if not self._first_time(db, f"rejected:{signal.key}"[:512], now):
                    continue
                log.error("alarm signal rejected: %s", reason)
                stored += 1
                db.add(AlarmRejectedRow(key=str(signal.key)[:512], rule=str(signal.rule)[:128],
                                        received_ms=now, reason=reason,
                                        signal=lifecycle.jsonable(asdict(signal))))
        self.metrics.signals.labels(outcome="rejected").inc(stored)

    def _write_events(self, db: Session, events: list[dict[str, Any]]) -> None:
        if events:
            db.connection().execute(insert(AlarmEventRow.__table__), events)  # type: ignore[attr-defined]

    def _ensure_keys(self, dedupes: list[str]) -> None:
        with self._tx() as db:
            self._insert_keys(db, dedupes)

    def _insert_keys(self, db: Session, dedupes: list[str]) -> None:
        upsert = sqlite_insert if self._sqlite else pg_insert
        db.connection().execute(upsert(AlarmKeyRow).values([{"dedupe": d} for d in dedupes])
                                .on_conflict_do_nothing(index_elements=["dedupe"]))

    def _apply(self, groups: dict[str, list[AlarmSignal]]) -> list[Transition]:
        """One transaction for many keys: locks them in key order (no deadlock between workers)."""
        now = self.clock()
        dedupes = sorted(groups)
        with self._tx() as db:
            self._insert_keys(db, dedupes)  # normally a no-op: _ensure_keys made them
            query = select(AlarmKeyRow).where(col(AlarmKeyRow.dedupe).in_(dedupes)) \
                .order_by(col(AlarmKeyRow.dedupe)).execution_options(populate_existing=True)
            if not self._sqlite:
                query = query.with_for_update()
            keys = {k.dedupe: k for k in db.exec(query)}
            # each action key once: already processed ones (and repeats in this batch) drop out
            unique: dict[str, AlarmSignal] = {}
            for dedupe in dedupes:
                for signal in groups[dedupe]:
                    unique.setdefault(signal.key, signal)
            upsert = sqlite_insert if self._sqlite else pg_insert
            fresh = set(db.connection().execute(
                upsert(AlarmSeenRow).values([{"key": k, "seen_ms": now} for k in unique])
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(col(AlarmSeenRow.key))).scalars())
            live = {r.dedupe: r for r in db.exec(
                select(AlarmRow).where(col(AlarmRow.dedupe).in_(dedupes),
                                       AlarmRow.state != State.CLOSED)
                .execution_options(populate_existing=True))}
            transitions: list[Transition] = []
            events: list[dict[str, Any]] = []
            stale = 0
            for dedupe in dedupes:
                signals = [s for s in groups[dedupe] if unique.get(s.key) is s and s.key in fresh]
                if not signals:
                    continue
                signals.sort(key=lambda s: s.ts_ms)  # stable: the same ts keeps batch order
                out = Outcome(row=live.get(dedupe))
                for signal in signals:
                    lifecycle.apply_signal(out.row, keys[dedupe], signal, out, new_id=new_id,
                                           tenant_of=self.tenant_of)
                transitions += self._persist(db, keys[dedupe], out, events)
                stale += out.stale
            db.flush()
            self._write_events(db, events)
        # counted once committed
        total = sum(len(g) for g in groups.values())
        self.metrics.signals.labels(outcome="processed").inc(len(fresh))
        if total > len(fresh):
            self.metrics.signals.labels(outcome="duplicate").inc(total - len(fresh))
        if stale:
            self.metrics.signals.labels(outcome="stale").inc(stale)
        for t in transitions:
            self.metrics.transitions.labels(event=t.event.value).inc()
        return transitions

    def _sweep(self, now_ms: int | None) -> list[Transition]:
        now = self.clock() - self.sweep_grace_ms if now_ms is None else now_ms
        due_open = and_(col(AlarmRow.state).in_([State.PENDING, State.CLEARED]),
                        col(AlarmRow.raise_since_ms).is_not(None),
                        col(AlarmRow.raise_since_ms) + col(AlarmRow.debounce_ms) <= now)
        due_clear = and_(col(AlarmRow.state).in_([State.OPEN, State.ACKNOWLEDGED]),
                         col(AlarmRow.clear_since_ms).is_not(None),
                         col(AlarmRow.clear_since_ms) + col(AlarmRow.clear_after_ms) <= now)
        with self._session() as db:
            keys = list(db.exec(select(AlarmRow.dedupe).where(or_(due_open, due_clear))))
        transitions: list[Transition] = []
        for dedupe in keys:
            transitions += self._retry(functools.partial(self._sweep_key, dedupe, now))
        return transitions

    def _sweep_key(self, dedupe: str, now: int) -> list[Transition]:
        with self._tx() as db:
            key = self._lock_key(db, dedupe)
            row = self._live(db, dedupe)
            if row is None:
                return []
            out = Outcome(row=row)
            lifecycle.apply_deadlines(row, key, now, out)
            if not out.steps:
                return []
            transitions = self._persist(db, key, out)
        for t in transitions:
            self.metrics.transitions.labels(event=t.event.value).inc()
        return transitions

    def _operate(self, alarm_id: str, visible: Visible | None,
                 act: Callable[[AlarmRow, int], Step | None]) -> AlarmView:
        def work() -> tuple[AlarmView, list[Transition]]:
            now = self.clock()
            with self._tx() as db:
                row = db.get(AlarmRow, alarm_id)
                if row is None or (visible is not None and not visible(row.tenant_id)):
                    raise AlarmNotFound(alarm_id)
                key = self._lock_key(db, row.dedupe)
                row = db.exec(select(AlarmRow).where(AlarmRow.id == alarm_id)
                              .execution_options(populate_existing=True)).one()
                step = act(row, now)
                transitions: list[Transition] = []
                if step is not None:  # the row was live, so it is the key's live alarm
                    closed = row.state == State.CLOSED
                    out = Outcome(row=None if closed else row, steps=[(row, step)],
                                  closed=[row] if closed else [])
                    transitions = self._persist(db, key, out)
                view = AlarmView.of(row, self._history(db, alarm_id))
            for t in transitions:
                self.metrics.transitions.labels(event=t.event.value).inc()
            return view, transitions

        view, transitions = self._retry(work)
        self._publish(transitions)
        return view


def _notifiable(step: Step) -> bool:
    """Transitions the outside world hears of: those of alarms that were raised."""
    return step.event is not Event.PENDING and step.view is not None \
        and step.view.opened_ms is not None


def _transition(step: Step) -> Transition:
    assert step.view is not None
    return Transition(alarm=step.view, event=step.event, ts_ms=step.ts_ms,
                      previous_level=step.previous_level)


def points_of(t: Transition) -> list[WritePoint]:
    """The time-series points of a transition (``active`` 1/0 per alarm series)."""
    a = t.alarm

    def point(level: str, active: bool, suffix: str = "") -> WritePoint:
        return WritePoint(
            rule="alarms", key=f"alarm:{a.id}:{a.revision}{suffix}", measurement="alarm",
            tags={"gw": a.gw, "product": a.product, "device": a.device, "type": a.type,
                  "level": level},
            fields={"active": 1 if active else 0}, ts_ms=t.ts_ms,
        )

    active = a.state in ACTIVE_STATES
    if t.event is Event.ESCALATED and t.previous_level:
        return [point(t.previous_level, False, ":was"), point(a.level, active)]
    return [point(a.level, active)]
