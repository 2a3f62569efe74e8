"""Two workers (two managers, two engines, one database) on the same devices at the same time."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cloud.actions import AlarmSignal
from cloud.alarms.manager import AlarmManager
from cloud.alarms.states import Event, State
from cloud.alarms.tables import AlarmEventRow, AlarmRow
from cloud.alarms.view import Transition
from cloud.registry import make_engine

from .alarm_signals import signal

DEVICES = ["c1", "c2", "c3"]


@pytest.fixture
def two_engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    a, b = make_engine(db_url), make_engine(db_url)
    yield a, b
    a.dispose()
    b.dispose()


def run_workers(managers: list[AlarmManager], shares: list[list[AlarmSignal]],
                batch: int = 1) -> list[Transition]:
    """Each manager processes its share, ``batch`` signals per call, all starting together."""
    start = threading.Barrier(len(managers))
    results: list[list[Transition]] = [[] for _ in managers]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait(timeout=30)
            share = shares[i]
            for at in range(0, len(share), batch):
                results[i] += managers[i].process(share[at:at + batch])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(managers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors == []
    return [t for r in results for t in r]


def alarm_rows(engine: Engine, device: str) -> list[AlarmRow]:
    with Session(engine) as db:
        return list(db.exec(select(AlarmRow).where(AlarmRow.device == device)))


@pytest.mark.parametrize("batch", [1, 7])
def test_interleaved_raises_on_two_workers_make_one_alarm(
        two_engines: tuple[Engine, Engine], batch: int) -> None:
    managers = [AlarmManager(e, sweep_grace_ms=0) for e in two_engines]
    n = 60
    signals = {d: [signal(True, 1_000 + i * 100, device=d, debounce_ms=500, value=i)
                   for i in range(n)] for d in DEVICES}
    # a shared subscription alternates messages between the workers; the broker also
    # redelivers some (both workers get the first ten of every device)
    shares: list[list[AlarmSignal]] = [[], []]
    for i in range(n):
        for d in DEVICES:
            shares[i % 2].append(signals[d][i])
            if i < 10:
                shares[(i + 1) % 2].append(signals[d][i])
    if batch > 1:  # batches lock several devices at once, in opposite orders on each worker
        shares[1].reverse()
    transitions = run_workers(managers, shares, batch)

    raised = [t for t in transitions if t.event is Event.RAISED]
    assert sorted(t.alarm.device for t in raised) == DEVICES  # one raise per device, no twin
    for d in DEVICES:
        (row,) = alarm_rows(two_engines[0], d)
        assert row.state == State.OPEN
        assert row.raise_count == n  # every raise counted once, duplicates not at all
        assert row.first_raised_ms == 1_000
    with Session(two_engines[1]) as db:
        events = db.exec(select(AlarmEventRow.event, func.count())
                         .group_by(col(AlarmEventRow.event))).all()
        assert dict(events) == {"pending": 3, "raised": 3}


def test_flapping_on_two_workers_is_one_alarm_cleared_once(
        two_engines: tuple[Engine, Engine]) -> None:
    managers = [AlarmManager(e) for e in two_engines]
    hold = 5_000
    per_device: dict[str, list[AlarmSignal]] = {}
    for d in DEVICES:
        flaps = [signal(i % 2 == 0, i * 500, device=d, clear_after_ms=hold) for i in range(40)]
        stable = [signal(False, 20_000 + i * 500, device=d, clear_after_ms=hold)
                  for i in range(12)]
        per_device[d] = flaps + stable
    shares: list[list[AlarmSignal]] = [[], []]
    for d in DEVICES:
        for i, s in enumerate(per_device[d]):
            shares[i % 2].append(s)
    # the second worker is a little behind on the flaps: it sees them in reverse
    shares[1] = sorted(shares[1], key=lambda s: (s.ts_ms >= 20_000, -s.ts_ms))
    run_workers(managers, shares)
    for d in DEVICES:
        rows = alarm_rows(two_engines[1], d)
        assert len(rows) == 1, rows
        assert rows[0].state == State.CLEARED
        assert rows[0].raise_count == 20
