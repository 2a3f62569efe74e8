"""The alarm state machine, pure: signals, deadlines and operator actions applied to rows.

Nothing here touches the database or the clock; :mod:`cloud.alarms.manager` loads the rows
under a lock, calls these functions and writes what they changed. Every decision is taken on
the signals' own ``ts_ms``, so the same signals give the same alarms on any worker.

Per dedupe key, ``AlarmKeyRow`` keeps the newest raise and the newest clear seen. The
condition *holds* while the newest raise is at least as new as the newest clear. A signal older
than the newest opposite signal belongs to a run that is over ("stale"): a stale raise only
counts on the live alarm (without one, a raise without debounce still makes its alarm, raised
late and clearing from the newest clear on), a stale clear changes nothing. This is what keeps
two workers that see one device's signals in a different order on the same alarm.

* **Debounce**: a raise creates a ``pending`` alarm whose ``raise_since_ms`` is the start of the
  run of raises; it becomes ``open`` once the newest raise is ``debounce_ms`` after that start
  (``opened_ms = raise_since_ms + debounce_ms``). A current clear before then discards it.
* **Hysteresis**: an active alarm clears only once the newest clear is ``clear_after_ms`` after
  the start of the run of clears (``clear_since_ms``); any current raise in between cancels the
  run and only counts. So a flapping value is one alarm, cleared once it is stable.
* :func:`apply_deadlines` does the same from a clock for conditions that stay quiet (a rule
  that signals only on changes): a pending alarm opens, an active one clears, once its deadline
  has passed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cloud.actions import AlarmSignal
from cloud.alarms.errors import AlarmConflict, InvalidSignal
from cloud.alarms.states import ACTIVE_STATES, Event, Level, State, rank
from cloud.alarms.tables import AlarmKeyRow, AlarmRow
from cloud.alarms.view import AlarmView

_MAX_KEY = 512


@dataclass(frozen=True, slots=True)
class Step:
    """One transition made on a row (the manager writes it to the history)."""

    event: Event
    from_state: State | None
    to_state: State
    ts_ms: int
    actor: str
    note: str | None = None
    value: Any = None
    previous_level: str | None = None
    revision: int = 0
    view: AlarmView | None = None  # the alarm right after this step


@dataclass(slots=True)
class Outcome:
    """What applying signals did to one dedupe key."""

    row: AlarmRow | None  # the live alarm afterwards (None: no live alarm)
    created: bool = False  # ``row`` is new (INSERT it)
    discarded: list[AlarmRow] = field(default_factory=list)  # pending alarms to delete
    closed: list[AlarmRow] = field(default_factory=list)  # alarms closed on the way
    steps: list[tuple[AlarmRow, Step]] = field(default_factory=list)
    stale: int = 0  # signals older than the newest opposite signal


def check_signal(signal: AlarmSignal) -> None:
    """Raise :class:`InvalidSignal` if ``signal`` cannot be processed."""
    problems = []
    try:
        Level(signal.level)
    except ValueError:
        problems.append(f"unknown level {signal.level!r} (one of {', '.join(Level)})")
    for name in ("key", "dedupe", "type", "gw", "product", "device"):
        value = getattr(signal, name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name} must be a non-empty string")
        elif len(value) > _MAX_KEY:
            problems.append(f"{name} longer than {_MAX_KEY} characters")
    if not isinstance(getattr(signal, "active", None), bool):
        problems.append("active must be a bool")
    for name in ("ts_ms", "debounce_ms", "clear_after_ms"):
        value = getattr(signal, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{name} must be an integer >= 0")
    if not isinstance(getattr(signal, "details", None), dict):
        problems.append("details must be a mapping")
    if problems:
        raise InvalidSignal(f"signal {signal.key!r} of rule {signal.rule!r}: " + "; ".join(problems))


def jsonable(value: Any) -> Any:
    """``value`` made JSON-safe for the JSON columns (Decimal -> exact string)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value  # pragma: no cover - json-native types not listed above


def _step(row: AlarmRow, event: Event, to: State, ts: int, actor: str, *,
          note: str | None = None, value: Any = None,
          previous_level: str | None = None) -> Step:
    before = State(row.state) if row.revision else None
    row.state = to.value
    row.revision += 1
    row.updated_ms = max(row.updated_ms, ts)
    return Step(event, before, to, ts, actor, note, value, previous_level, row.revision,
                AlarmView.of(row))


def _condition_holds(key: AlarmKeyRow) -> bool:
    if key.last_raise_ms is None:
        return False
    return key.last_clear_ms is None or key.last_raise_ms >= key.last_clear_ms


def _maybe_open(row: AlarmRow, held_until: int | None, actor: str, out: Outcome) -> None:
    """pending/cleared -> open once the run of raises has lasted debounce_ms."""
    if row.raise_since_ms is None or held_until is None:
        return
    if held_until - row.raise_since_ms < row.debounce_ms:
        return
    at = row.raise_since_ms + row.debounce_ms
    if row.opened_ms is None:
        row.opened_ms = at
    row.cleared_ms = None
    row.clear_since_ms = None
    out.steps.append((row, _step(row, Event.RAISED, State.OPEN, at, actor,
                                 value=row.last_value)))


def _maybe_clear(row: AlarmRow, held_until: int | None, actor: str, out: Outcome) -> None:
    """open/acknowledged -> cleared/closed once the run of clears has lasted clear_after_ms."""
    if row.clear_since_ms is None or held_until is None:
        return
    if held_until - row.clear_since_ms < row.clear_after_ms:
        return
    # never before the alarm opened (a clear that arrives late after a sweep opened it)
    at = max(row.clear_since_ms + row.clear_after_ms, row.opened_ms or 0)
    row.cleared_ms = at
    row.raise_since_ms = None
    if State(row.state) is State.ACKNOWLEDGED:
        row.closed_ms = at
        row.closed_by = actor
        out.steps.append((row, _step(row, Event.CLEARED, State.CLOSED, at, actor)))
        out.closed.append(row)
    else:
        out.steps.append((row, _step(row, Event.CLEARED, State.CLEARED, at, actor)))


def _new_row(alarm_id: str, signal: AlarmSignal, tenant_id: str | None) -> AlarmRow:
    return AlarmRow(
        id=alarm_id, tenant_id=tenant_id, type=signal.type, level=signal.level,
        dedupe=signal.dedupe, gw=signal.gw, product=signal.product, device=signal.device,
        rule=signal.rule, state=State.PENDING.value, first_raised_ms=signal.ts_ms,
        last_raised_ms=signal.ts_ms, raise_count=0, message=signal.message,
        last_value=jsonable(signal.value), details=jsonable(dict(signal.details)),
        debounce_ms=signal.debounce_ms, clear_after_ms=signal.clear_after_ms,
        raise_since_ms=signal.ts_ms, updated_ms=signal.ts_ms, revision=0,
    )


def apply_signal(row: AlarmRow | None, key: AlarmKeyRow, signal: AlarmSignal, out: Outcome, *,
                 new_id: Any, tenant_of: Any = None) -> None:
    """Apply one (checked) signal to the live alarm ``row`` of its key; results go to ``out``.

    ``new_id()`` names a new alarm, ``tenant_of(gw, product, device)`` gives its tenant.
    ``out.row`` is the live alarm afterwards (start with ``out.row = row``).
    """
    ts = signal.ts_ms
    actor = f"rule:{signal.rule}"
    if signal.active:
        stale = key.last_clear_ms is not None and ts < key.last_clear_ms
        key.last_raise_ms = ts if key.last_raise_ms is None else max(key.last_raise_ms, ts)
        if stale:
            out.stale += 1
            if row is not None:
                row.raise_count += 1
            elif signal.debounce_ms == 0:
                _late_episode(signal, key, out, new_id, tenant_of)
            return
        if row is None:
            tenant = tenant_of(signal.gw, signal.product, signal.device) if tenant_of else None
            row = _new_row(new_id(), signal, tenant)
            out.row, out.created = row, True
            out.steps.append((row, _step(row, Event.PENDING, State.PENDING, ts, actor,
                                         value=row.last_value)))
        elif row.tenant_id is None and tenant_of is not None:
            row.tenant_id = tenant_of(signal.gw, signal.product, signal.device)
        row.raise_count += 1
        if ts >= row.last_raised_ms:
            row.last_raised_ms = ts
            row.last_value = jsonable(signal.value)
            row.message = signal.message or row.message
            row.details = jsonable(dict(signal.details)) or row.details
            row.debounce_ms = signal.debounce_ms
            row.clear_after_ms = signal.clear_after_ms
        row.first_raised_ms = min(row.first_raised_ms, ts)
        row.raise_since_ms = ts if row.raise_since_ms is None else min(row.raise_since_ms, ts)
        row.clear_since_ms = None
        row.updated_ms = max(row.updated_ms, ts)
        state = State(row.state)
        if state in ACTIVE_STATES:
            if rank(signal.level) > rank(row.level):
                previous, row.level = row.level, signal.level
                out.steps.append((row, _step(row, Event.ESCALATED, state, ts, actor,
                                             value=row.last_value, previous_level=previous)))
            return
        if rank(signal.level) > rank(row.level):
            row.level = signal.level
        _maybe_open(row, key.last_raise_ms, actor, out)
        return

    stale = key.last_raise_ms is not None and ts <= key.last_raise_ms
    key.last_clear_ms = ts if key.last_clear_ms is None else max(key.last_clear_ms, ts)
    if stale:
        out.stale += 1
        return
    if row is None:
        return
    state = State(row.state)
    row.raise_since_ms = None
    if state is State.PENDING:
        # the raise did not hold for debounce_ms: it never was an alarm
        if not out.created:
            out.discarded.append(row)  # stored by an earlier transaction: delete it
        out.steps = [(r, s) for r, s in out.steps if r is not row]
        out.row, out.created = None, False
        return
    if state in ACTIVE_STATES:
        row.clear_since_ms = ts if row.clear_since_ms is None else min(row.clear_since_ms, ts)
        _maybe_clear(row, key.last_clear_ms, actor, out)
        if State(row.state) is State.CLOSED:
            out.row = None


def _late_episode(signal: AlarmSignal, key: AlarmKeyRow, out: Outcome, new_id: Any,
                  tenant_of: Any) -> None:
    """A raise (no debounce) older than the newest clear, and no live alarm: it happened.

    It arrived after the clear that ended it (another worker, a backlog): the alarm is made
    late, raised at the raise's time, and clears like any other from the newest clear on
    (``clear_after_ms`` after it at the earliest).
    """
    actor = f"rule:{signal.rule}"
    tenant = tenant_of(signal.gw, signal.product, signal.device) if tenant_of else None
    row = _new_row(new_id(), signal, tenant)
    out.row, out.created = row, True
    row.raise_count = 1
    out.steps.append((row, _step(row, Event.PENDING, State.PENDING, signal.ts_ms, actor,
                                 value=row.last_value)))
    _maybe_open(row, signal.ts_ms, actor, out)
    row.raise_since_ms = None
    row.clear_since_ms = key.last_clear_ms
    _maybe_clear(row, key.last_clear_ms, actor, out)


def apply_deadlines(row: AlarmRow, key: AlarmKeyRow, now_ms: int, out: Outcome) -> None:
    """Open a pending alarm / clear an active one whose deadline is at or before ``now_ms``."""
    state = State(row.state)
    if state in (State.PENDING, State.CLEARED) and row.raise_since_ms is not None \
            and _condition_holds(key) and row.raise_since_ms + row.debounce_ms <= now_ms:
        _maybe_open(row, now_ms, "sweep", out)
    elif state in ACTIVE_STATES and row.clear_since_ms is not None \
            and not _condition_holds(key) and row.clear_since_ms + row.clear_after_ms <= now_ms:
        _maybe_clear(row, now_ms, "sweep", out)
        if State(row.state) is State.CLOSED:
            out.row = None


def acknowledge(row: AlarmRow, by: str, note: str | None, now_ms: int) -> Step | None:
    """Acknowledge; None when it already was (idempotent). open -> acknowledged, cleared -> closed."""
    state = State(row.state)
    if state is State.PENDING:
        raise AlarmConflict(row.id, state, "not raised yet (debounce running)")
    if state is State.ACKNOWLEDGED or (state is State.CLOSED and row.acknowledged_by):
        return None
    if state is State.CLOSED:
        raise AlarmConflict(row.id, state, f"closed by {row.closed_by} without acknowledgement")
    row.acknowledged_by, row.acknowledged_ms, row.ack_note = by, now_ms, note
    if state is State.CLEARED:
        row.closed_by, row.closed_ms = by, now_ms
        return _step(row, Event.ACKNOWLEDGED, State.CLOSED, now_ms, by, note=note)
    return _step(row, Event.ACKNOWLEDGED, State.ACKNOWLEDGED, now_ms, by, note=note)


def close(row: AlarmRow, by: str, note: str | None, now_ms: int) -> Step | None:
    """Close by an operator; None when it already was closed (idempotent)."""
    if State(row.state) is State.CLOSED:
        return None
    row.closed_by, row.closed_ms, row.close_note = by, now_ms, note
    row.raise_since_ms = row.clear_since_ms = None
    return _step(row, Event.CLOSED, State.CLOSED, now_ms, by, note=note)
