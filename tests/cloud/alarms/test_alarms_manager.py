"""The alarm lifecycle through the manager, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from cloud.actions import AlarmSignal, WritePoint
from cloud.alarms.errors import AlarmConflict, AlarmNotFound
from cloud.alarms.manager import AlarmManager
from cloud.alarms.metrics import AlarmMetrics
from cloud.alarms.states import Event, State
from cloud.alarms.tables import AlarmEventRow, AlarmRow, AlarmSeenRow
from cloud.alarms.view import AlarmFilter, AlarmView, Transition
from tests.support.net import eventually

from .alarm_signals import signal


class Recorder:
    """Collects what the manager emits (points, notifications)."""

    def __init__(self) -> None:
        self.points: list[WritePoint] = []
        self.notified: list[tuple[AlarmView, str]] = []

    def submit(self, alarm: AlarmView, event: str) -> None:
        self.notified.append((alarm, event))

    def actives(self) -> list[tuple[str, int]]:
        return [(p.tags["level"], int(p.fields["active"])) for p in self.points]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def manager(engine: Engine, rec: Recorder) -> AlarmManager:
    return AlarmManager(engine, emit_point=rec.points.append, notifier=rec,
                        metrics=AlarmMetrics(), clock=lambda: 1_000_000)


def one_by_one(manager: AlarmManager, signals: list[AlarmSignal]) -> list[Transition]:
    out: list[Transition] = []
    for s in signals:
        out += manager.process([s])
    return out


def only_alarm(manager: AlarmManager, **filters: Any) -> AlarmView:
    page = manager.list_alarms(AlarmFilter(**filters))
    assert page.total == 1, page
    return manager.get(page.items[0].id)


def test_flapping_value_is_one_alarm_cleared_once_stable(manager: AlarmManager,
                                                         rec: Recorder) -> None:
    hold = 10_000
    signals = [signal(True, 0, clear_after_ms=hold, value=Decimal("71.5"))]
    # the temperature flaps around the threshold every second for 30 s (faster than clear_after)
    for i in range(1, 31):
        signals.append(signal(i % 2 == 0, i * 1000, clear_after_ms=hold, value=70 + i % 2))
    # then it stays low: clears every second for 15 s
    signals += [signal(False, 31_000 + i * 1000, clear_after_ms=hold) for i in range(15)]
    transitions = one_by_one(manager, signals)

    assert [t.event for t in transitions] == [Event.RAISED, Event.CLEARED]
    alarm = only_alarm(manager)
    assert alarm.state is State.CLEARED
    assert alarm.raise_count == 16  # every raise signal counted on the one alarm
    assert alarm.opened_ms == 0
    assert alarm.cleared_ms == 31_000 + hold  # the first clear of the stable run + clear_after
    assert [h.event for h in alarm.history] == [Event.PENDING, Event.RAISED, Event.CLEARED]
    assert rec.actives() == [("major", 1), ("major", 0)]
    assert [e for _, e in rec.notified] == [Event.RAISED, Event.CLEARED]


def test_flapping_in_one_batch_out_of_order_gives_the_same_alarm(manager: AlarmManager) -> None:
    hold = 5_000
    signals = [signal(i % 2 == 0, i * 1000, clear_after_ms=hold) for i in range(0, 20)]
    signals += [signal(False, 20_000 + i * 1000, clear_after_ms=hold) for i in range(8)]
    signals.reverse()  # the manager orders a batch by the signals' own time
    transitions = manager.process(signals)
    assert [t.event for t in transitions] == [Event.RAISED, Event.CLEARED]
    alarm = only_alarm(manager)
    assert alarm.state is State.CLEARED and alarm.raise_count == 10
    assert alarm.cleared_ms == 19_000 + hold


def test_debounce_opens_only_after_the_raise_held(manager: AlarmManager, rec: Recorder) -> None:
    deb = 5_000
    # a short spike: raised for 3 s, then cleared -> never an alarm
    assert one_by_one(manager, [signal(True, 0, debounce_ms=deb),
                                signal(True, 2_000, debounce_ms=deb),
                                signal(False, 3_000, debounce_ms=deb)]) == []
    assert manager.list_alarms().total == 0
    # a lasting condition: pending until 5 s after its start
    assert one_by_one(manager, [signal(True, 10_000, debounce_ms=deb, value=1),
                                signal(True, 12_000, debounce_ms=deb, value=2),
                                signal(True, 14_999, debounce_ms=deb, value=3)]) == []
    pending = only_alarm(manager)
    assert pending.state is State.PENDING and pending.opened_ms is None
    assert rec.points == [] and rec.notified == []  # a pending alarm is nobody's business yet
    with pytest.raises(AlarmConflict):
        manager.acknowledge(pending.id, "user:ops")
    (raised,) = manager.process([signal(True, 15_000, debounce_ms=deb, value=4)])
    assert raised.event is Event.RAISED and raised.ts_ms == 15_000
    alarm = only_alarm(manager)
    assert alarm.id == pending.id and alarm.state is State.OPEN
    assert alarm.opened_ms == 15_000 and alarm.first_raised_ms == 10_000
    assert alarm.raise_count == 4 and alarm.last_value == 4
    assert rec.actives() == [("major", 1)]


def test_replayed_signals_change_nothing(manager: AlarmManager, rec: Recorder) -> None:
    batch = [signal(True, 1_000, clear_after_ms=2_000, value=80),
             signal(True, 2_000, clear_after_ms=2_000, value=81),
             signal(False, 3_000, clear_after_ms=2_000),
             signal(False, 5_500, clear_after_ms=2_000)]
    first = manager.process(batch)
    assert [t.event for t in first] == [Event.RAISED, Event.CLEARED]
    before = only_alarm(manager)
    points = len(rec.points)
    # the same actions again (a redelivered message), alone and shuffled into a new batch
    assert manager.process(batch) == []
    assert manager.process(list(reversed(batch))) == []
    assert manager.process([batch[1]]) == []
    after = only_alarm(manager)
    assert after == before
    assert len(rec.points) == points
    counted = manager.metrics.signals.labels(outcome="duplicate")._value.get()
    assert counted == 9


def test_acknowledge_then_clear_closes_and_a_new_raise_is_a_new_alarm(
        manager: AlarmManager, rec: Recorder) -> None:
    manager.process([signal(True, 1_000)])
    alarm = only_alarm(manager)
    acked = manager.acknowledge(alarm.id, "user:ana", "on my way")
    assert acked.state is State.ACKNOWLEDGED
    assert (acked.acknowledged_by, acked.ack_note) == ("user:ana", "on my way")
    assert acked.acknowledged_ms == 1_000_000  # operator actions take the manager's clock
    again = manager.acknowledge(alarm.id, "user:bob", "me too")  # idempotent
    assert again.revision == acked.revision and again.acknowledged_by == "user:ana"
    # raises while acknowledged only count
    manager.process([signal(True, 2_000), signal(True, 3_000)])
    assert manager.get(alarm.id).raise_count == 3
    # the condition clears: acknowledged + cleared = closed
    (cleared,) = manager.process([signal(False, 4_000)])
    assert cleared.event is Event.CLEARED and cleared.alarm.state is State.CLOSED
    closed = manager.get(alarm.id)
    assert closed.state is State.CLOSED and closed.cleared_ms == 4_000
    assert [h.event for h in closed.history] == [
        Event.PENDING, Event.RAISED, Event.ACKNOWLEDGED, Event.CLEARED]
    assert [h.actor for h in closed.history][2:] == ["user:ana", "rule:temp"]
    # the key is free again: a new raise is a new alarm
    manager.process([signal(True, 9_000)])
    live = manager.list_alarms(AlarmFilter(states=frozenset({State.OPEN})))
    assert live.total == 1 and live.items[0].id != alarm.id
    assert manager.list_alarms().total == 2
    assert rec.actives() == [("major", 1), ("major", 1), ("major", 0), ("major", 1)]


def test_one_batch_can_close_an_alarm_and_start_the_next(manager: AlarmManager) -> None:
    manager.process([signal(True, 1_000)])
    first = only_alarm(manager)
    manager.acknowledge(first.id, "user:ana")
    # in one batch: the acknowledged alarm clears (closed, key freed), then a new raise
    events = manager.process([signal(True, 6_000, value="again"), signal(False, 5_000)])
    assert [(t.event, t.alarm.state) for t in events] == [
        (Event.CLEARED, State.CLOSED), (Event.RAISED, State.OPEN)]
    assert events[1].alarm.id != first.id and events[1].alarm.last_value == "again"
    assert manager.list_alarms().total == 2


def test_many_devices_in_one_batch(manager: AlarmManager) -> None:
    batch = [signal(True, 1_000 + i, device=f"c{i:04d}") for i in range(1_200)]
    batch += [signal(False, 5_000, device=f"c{i:04d}") for i in range(0, 1_200, 2)]
    transitions = manager.process(batch + batch[:10])  # with some repeats
    assert len([t for t in transitions if t.event is Event.RAISED]) == 1_200
    assert len([t for t in transitions if t.event is Event.CLEARED]) == 600
    assert manager.list_alarms(AlarmFilter(states=frozenset({State.OPEN}))).total == 600
    assert manager.metrics.signals.labels(outcome="duplicate")._value.get() == 10


def test_clear_then_acknowledge_closes(manager: AlarmManager) -> None:
    manager.process([signal(True, 1_000), signal(False, 2_000)])
    alarm = only_alarm(manager)
    assert alarm.state is State.CLEARED
    closed = manager.acknowledge(alarm.id, "user:ana")
    assert closed.state is State.CLOSED and closed.closed_by == "user:ana"
    assert manager.acknowledge(alarm.id, "user:ana").revision == closed.revision
    assert manager.close(alarm.id, "user:ana").revision == closed.revision


def test_a_cleared_alarm_raised_again_is_the_same_alarm(manager: AlarmManager) -> None:
    manager.process([signal(True, 1_000), signal(False, 2_000)])
    (again,) = manager.process([signal(True, 3_000)])
    assert again.event is Event.RAISED and again.alarm.state is State.OPEN
    alarm = only_alarm(manager)
    assert alarm.raise_count == 2 and alarm.cleared_ms is None
    assert [h.event for h in alarm.history] == [
        Event.PENDING, Event.RAISED, Event.CLEARED, Event.RAISED]


def test_operator_close(manager: AlarmManager, rec: Recorder) -> None:
    manager.process([signal(True, 1_000)])
    alarm = only_alarm(manager)
    closed = manager.close(alarm.id, "user:ana", "false alarm, sensor replaced")
    assert closed.state is State.CLOSED and closed.close_note == "false alarm, sensor replaced"
    assert closed.history[-1].event is Event.CLOSED and closed.history[-1].actor == "user:ana"
    assert manager.close(alarm.id, "user:bob").closed_by == "user:ana"  # idempotent
    with pytest.raises(AlarmConflict):
        manager.acknowledge(alarm.id, "user:bob")  # closed without acknowledgement
    with pytest.raises(AlarmNotFound):
        manager.acknowledge("01NOSUCHALARM0000000000000", "user:bob")
    with pytest.raises(AlarmNotFound):
        manager.get("01NOSUCHALARM0000000000000")
    # a raise after the close is a new alarm (the condition still holds)
    manager.process([signal(True, 2_000)])
    assert manager.list_alarms(AlarmFilter(states=frozenset({State.OPEN}))).total == 1
    assert rec.actives() == [("major", 1), ("major", 0), ("major", 1)]


def test_sweep_opens_and_clears_when_no_further_signal_comes(manager: AlarmManager) -> None:
    manager.process([signal(True, 1_000, debounce_ms=5_000, clear_after_ms=3_000)])
    assert manager.sweep(5_999) == []
    (opened,) = manager.sweep(6_000)
    assert opened.event is Event.RAISED and opened.ts_ms == 6_000
    assert manager.sweep(6_000) == []
    manager.process([signal(False, 7_000, debounce_ms=5_000, clear_after_ms=3_000)])
    assert only_alarm(manager).state is State.OPEN
    assert manager.sweep(9_999) == []
    (cleared,) = manager.sweep(10_000)
    assert cleared.event is Event.CLEARED and cleared.ts_ms == 10_000
    alarm = only_alarm(manager)
    assert alarm.state is State.CLEARED
    assert [h.actor for h in alarm.history] == ["rule:temp", "sweep", "sweep"]


def test_sweep_leaves_a_pending_alarm_whose_raise_was_cleared(manager: AlarmManager) -> None:
    manager.process([signal(True, 1_000, debounce_ms=5_000)])
    manager.process([signal(False, 2_000, debounce_ms=5_000)])
    assert manager.sweep(100_000) == []
    assert manager.list_alarms().total == 0


def test_escalation_moves_the_series(manager: AlarmManager, rec: Recorder) -> None:
    manager.process([signal(True, 1_000, level="warning")])
    (esc,) = manager.process([signal(True, 2_000, level="critical")])
    assert esc.event is Event.ESCALATED and esc.previous_level == "warning"
    assert only_alarm(manager).level == "critical"
    manager.process([signal(True, 3_000, level="minor")])  # lower levels do not de-escalate
    assert only_alarm(manager).level == "critical"
    manager.process([signal(False, 4_000, level="critical")])
    assert rec.actives() == [("warning", 1), ("warning", 0), ("critical", 1), ("critical", 0)]


def test_stale_signals_only_count(manager: AlarmManager) -> None:
    manager.process([signal(True, 5_000)])
    manager.process([signal(False, 4_000)])  # older than the newest raise: ignored
    assert only_alarm(manager).state is State.OPEN
    manager.process([signal(False, 6_000)])
    manager.process([signal(True, 5_500)])  # a raise from before the clear: only counts
    alarm = only_alarm(manager)
    assert alarm.state is State.CLEARED and alarm.raise_count == 2
    assert manager.metrics.signals.labels(outcome="stale")._value.get() == 2


def test_a_raise_that_arrives_after_its_clear_still_makes_its_alarm(
        manager: AlarmManager, rec: Recorder) -> None:
    manager.process([signal(False, 5_000, device="late")])  # nothing to clear yet
    events = manager.process([signal(True, 1_000, device="late", value="smoke")])
    assert [(t.event, t.ts_ms) for t in events] == [(Event.RAISED, 1_000), (Event.CLEARED, 5_000)]
    alarm = only_alarm(manager)
    assert alarm.state is State.CLEARED and alarm.last_value == "smoke"
    # with a debounce nobody can tell whether it held: nothing is made
    manager.process([signal(False, 5_000, device="d2", debounce_ms=1_000)])
    assert manager.process([signal(True, 1_000, device="d2", debounce_ms=1_000)]) == []
    assert manager.list_alarms(AlarmFilter(device="d2")).total == 0


def test_invalid_signals_are_kept_with_the_reason(manager: AlarmManager) -> None:
    bad = signal(True, 1_000, level="severe")
    worse = AlarmSignal(rule="temp", key="k-bad", type="", dedupe="", active=True,
                        level="major", gw="gw1", product="connector", device="c1", ts_ms=-5)
    good = signal(True, 1_000, device="c2")
    stray = WritePoint(rule="temp", key="wp1", measurement="m", tags={}, fields={"a": 1},
                       ts_ms=1)
    transitions = manager.process([bad, good, worse, stray])
    assert [t.alarm.device for t in transitions] == ["c2"]
    rejected = {r["key"]: r for r in manager.rejected()}
    assert "WritePoint 'wp1' of rule 'temp' is not an AlarmSignal" in rejected["wp1"]["reason"]
    assert "unknown level 'severe'" in rejected[bad.key]["reason"]
    assert "dedupe must be a non-empty string" in rejected["k-bad"]["reason"]
    assert "ts_ms must be an integer >= 0" in rejected["k-bad"]["reason"]
    assert rejected[bad.key]["signal"]["level"] == "severe"  # the whole signal is kept
    manager.process([bad])  # a replay is not stored twice
    assert len(manager.rejected()) == 3


def test_values_and_details_keep_decimals_exact(manager: AlarmManager) -> None:
    s = AlarmSignal(rule="temp", key="k-dec", type="overTemperature", dedupe="t:gw1/m/m1",
                    active=True, level="major", gw="gw1", product="meter", device="m1",
                    ts_ms=1, value=Decimal("0.1000"), details={"limit": Decimal("70.05")})
    manager.process([s])
    alarm = only_alarm(manager)
    assert alarm.last_value == "0.1000" and alarm.details == {"limit": "70.05"}


def test_tenant_is_resolved_when_known(engine: Engine) -> None:
    tenants: dict[str, str] = {}
    manager = AlarmManager(engine, tenant_of=lambda gw, product, device: tenants.get(gw))
    manager.process([signal(True, 1_000)])
    assert only_alarm(manager).tenant_id is None  # the station is not assigned yet
    tenants["gw1"] = "t-east"
    manager.process([signal(True, 2_000)])
    assert only_alarm(manager).tenant_id == "t-east"


def test_list_filters_and_pages(manager: AlarmManager) -> None:
    for i in range(7):
        manager.process([signal(True, 1_000 * (i + 1), device=f"c{i}",
                                level="critical" if i % 2 else "warning")])
    manager.process([signal(True, 500, device="x", type="smoke", gw="gw2")])
    everything = manager.list_alarms()
    assert everything.total == 8
    assert [a.first_raised_ms for a in everything.items] == sorted(
        (a.first_raised_ms for a in everything.items), reverse=True)
    page = manager.list_alarms(limit=3, offset=3)
    assert page.total == 8 and [a.id for a in page.items] == [a.id for a in everything.items[3:6]]
    assert manager.list_alarms(AlarmFilter(levels=frozenset({"critical"}))).total == 3
    assert manager.list_alarms(AlarmFilter(type="smoke")).items[0].gw == "gw2"
    assert manager.list_alarms(AlarmFilter(gw="gw1", device="c4")).total == 1
    assert manager.list_alarms(AlarmFilter(until=2_000)).total == 2  # raised at 500 and 1000
    assert manager.list_alarms(AlarmFilter(since=6_000)).total == 2  # active at 6000 and 7000
    some = manager.list_alarms(AlarmFilter(states=frozenset({State.PENDING, State.CLEARED})))
    assert some.total == 0


def test_prune_forgets_old_action_keys(engine: Engine) -> None:
    now = [10 * 86_400_000]
    manager = AlarmManager(engine, seen_retention_ms=86_400_000, clock=lambda: now[0])
    manager.process([signal(True, 1_000, key="old")])
    now[0] += 2 * 86_400_000
    manager.process([signal(True, 2_000, key="new")])
    assert manager.prune() == 1
    with Session(engine) as db:
        assert [r.key for r in db.exec(select(AlarmSeenRow))] == ["new"]


def test_the_database_refuses_a_second_live_alarm_per_key(manager: AlarmManager,
                                                          engine: Engine) -> None:
    manager.process([signal(True, 1_000)])
    alarm = only_alarm(manager)
    with Session(engine) as db:
        row = db.get(AlarmRow, alarm.id)
        assert row is not None
        data = row.model_dump()
        twin = AlarmRow(**{**data, "id": "01TWIN0000000000000000000X"})
        db.add(twin)
        with pytest.raises(IntegrityError):
            db.commit()
        db.rollback()
        # a closed one with the same key is fine (history)
        db.add(AlarmRow(**{**data, "id": "01TWIN0000000000000000000Y",
                           "state": "closed"}))
        db.commit()
        events = db.exec(select(AlarmEventRow).where(AlarmEventRow.alarm_id == alarm.id)).all()
        assert len(events) == 2


async def test_handle_commits_and_publishes_on_the_loop(manager: AlarmManager,
                                                        rec: Recorder) -> None:
    await manager.handle([signal(True, 1_000), signal(True, 1_500)])
    # handle returns after the commit, with points and notifications already handed over
    assert rec.actives() == [("major", 1)]
    assert [e for _, e in rec.notified] == [Event.RAISED]
    assert only_alarm(manager).raise_count == 2


async def test_run_sweeps_deadlines_in_the_background(engine: Engine, rec: Recorder) -> None:
    now = [100_000]
    manager = AlarmManager(engine, notifier=rec, emit_point=rec.points.append,
                           sweep_grace_ms=2_000, clock=lambda: now[0])
    await manager.handle([signal(True, 95_000, debounce_ms=4_000)])  # due at 99_000 + grace
    task = asyncio.create_task(manager.run(sweep_interval=0.02))
    try:
        await asyncio.sleep(0.2)
        assert only_alarm(manager).state is State.PENDING  # 100_000 - grace < 99_000
        now[0] = 101_000
        await eventually(lambda: only_alarm(manager).state is State.OPEN, timeout=30)
        await eventually(lambda: [e for _, e in rec.notified] == [Event.RAISED], timeout=30)
        assert only_alarm(manager).opened_ms == 99_000
        assert rec.actives() == [("major", 1)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
