"""Read-only values handed out by the manager: alarms, their history, pages, transitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud.alarms.states import Event, State
from cloud.alarms.tables import AlarmEventRow, AlarmRow


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One transition in an alarm's history."""

    ts_ms: int
    event: Event
    from_state: State | None
    to_state: State
    actor: str  # "rule:<name>", "sweep" or the operator's principal subject
    note: str | None = None
    value: Any = None

    @classmethod
    def of(cls, row: AlarmEventRow) -> HistoryEntry:
        return cls(ts_ms=row.ts_ms, event=Event(row.event),
                   from_state=State(row.from_state) if row.from_state else None,
                   to_state=State(row.to_state), actor=row.actor, note=row.note, value=row.value)


@dataclass(frozen=True, slots=True)
class AlarmView:
    """An alarm as operators, channels and the API see it."""

    id: str
    tenant_id: str | None
    type: str
    level: str
    dedupe: str
    gw: str
    product: str
    device: str
    rule: str
    state: State
    first_raised_ms: int
    opened_ms: int | None
    last_raised_ms: int
    raise_count: int
    cleared_ms: int | None
    acknowledged_by: str | None
    acknowledged_ms: int | None
    ack_note: str | None
    closed_by: str | None
    closed_ms: int | None
    close_note: str | None
    message: str
    last_value: Any
    details: dict[str, Any]
    updated_ms: int
    revision: int
    history: tuple[HistoryEntry, ...] = field(default=())

    @classmethod
    def of(cls, row: AlarmRow, history: tuple[HistoryEntry, ...] = ()) -> AlarmView:
        return cls(
            id=row.id, tenant_id=row.tenant_id, type=row.type, level=row.level,
            dedupe=row.dedupe, gw=row.gw, product=row.product, device=row.device, rule=row.rule,
            state=State(row.state), first_raised_ms=row.first_raised_ms,
            opened_ms=row.opened_ms, last_raised_ms=row.last_raised_ms,
            raise_count=row.raise_count, cleared_ms=row.cleared_ms,
            acknowledged_by=row.acknowledged_by, acknowledged_ms=row.acknowledged_ms,
            ack_note=row.ack_note, closed_by=row.closed_by, closed_ms=row.closed_ms,
            close_note=row.close_note, message=row.message, last_value=row.last_value,
            details=dict(row.details or {}), updated_ms=row.updated_ms, revision=row.revision,
            history=history,
        )

    @property
    def active(self) -> bool:
        """Whether the raise condition is considered to hold (open or acknowledged)."""
        return self.state in (State.OPEN, State.ACKNOWLEDGED)


@dataclass(frozen=True, slots=True)
class Transition:
    """A committed transition: what the notifier and the time-series point are made from.

    ``level`` is the level the transition is about (on ``escalated``, ``previous_level`` is the
    one left behind).
    """

    alarm: AlarmView
    event: Event
    ts_ms: int
    previous_level: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Filters of :meth:`AlarmManager.list` (None = any).

    ``since``/``until`` (ms) select alarms with activity in the window: raised before ``until``
    and last active (raised, cleared, acknowledged or closed) at or after ``since``.
    """

    states: frozenset[State] | None = None
    levels: frozenset[str] | None = None
    type: str | None = None
    gw: str | None = None
    product: str | None = None
    device: str | None = None
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True, slots=True)
class AlarmPage:
    """One page of alarms (newest first) and how many match in all."""

    items: list[AlarmView]
    total: int


def history_dict(entry: HistoryEntry) -> dict[str, Any]:
    """A history entry as JSON (camelCase, like the rest of the API)."""
    return {"ts": entry.ts_ms, "event": entry.event.value,
            "from": entry.from_state.value if entry.from_state else None,
            "to": entry.to_state.value, "actor": entry.actor, "note": entry.note,
            "value": entry.value}


def alarm_dict(alarm: AlarmView, *, history: bool = False) -> dict[str, Any]:
    """An alarm as JSON (the API's and the webhooks' shape; times in ms since the epoch)."""
    out: dict[str, Any] = {
        "id": alarm.id, "tenantId": alarm.tenant_id, "type": alarm.type, "level": alarm.level,
        "dedupe": alarm.dedupe, "gw": alarm.gw, "product": alarm.product,
        "device": alarm.device, "rule": alarm.rule, "state": alarm.state.value,
        "active": alarm.active, "firstRaised": alarm.first_raised_ms,
        "opened": alarm.opened_ms, "lastRaised": alarm.last_raised_ms,
        "raiseCount": alarm.raise_count, "cleared": alarm.cleared_ms,
        "acknowledgedBy": alarm.acknowledged_by, "acknowledged": alarm.acknowledged_ms,
        "ackNote": alarm.ack_note, "closedBy": alarm.closed_by, "closed": alarm.closed_ms,
        "closeNote": alarm.close_note, "message": alarm.message, "lastValue": alarm.last_value,
        "details": alarm.details, "updated": alarm.updated_ms, "revision": alarm.revision,
    }
    if history:
        out["history"] = [history_dict(h) for h in alarm.history]
    return out
