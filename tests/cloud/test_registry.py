"""The device registry on SQLite and on PostgreSQL (same code)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cloud import db
from cloud.registry import DeviceRegistry, DeviceRow, GatewayRow, make_engine
from tests.support.postgres import backend_engine, database_fixture
from thingmodels.ids import now_ms

#: a new PostgreSQL database for each test
pg_url = database_fixture("registry", scope="function")
engine = backend_engine("pg_url")


def test_presence_last_seen_and_write_behind(engine: Engine) -> None:
    reg = DeviceRegistry(engine)
    assert reg.presence("gw", "gateway", "gw", True, 3, 1000)
    assert reg.presence("gw", "meter", "m1", True, 1, 1000)
    reg.seen("gw", "meter", "m1", 2000, {"power": 1.5})
    reg.seen("gw", "meter", "m2", 2100, None)
    assert not reg.presence("gw", "gateway", "gw", False, 2, 2500)  # older session: ignored
    assert reg.flush() == 3
    assert reg.flush() == 0  # nothing changed
    devices = {d["device"]: d for d in reg.list_devices()}
    assert devices["m1"]["online"] is True and devices["m1"]["lastSeen"] == 2000
    assert devices["m1"]["properties"] == {"power": 1.5}
    assert devices["m2"]["online"] is False
    assert reg.online_count() == 1
    # gateway offline (its own session): its devices are listed offline
    assert reg.presence("gw", "gateway", "gw", False, 3, 3000)
    reg.flush()
    assert [d["online"] for d in reg.list_devices(online=True)] == []
    # a new registry on the same database sees the same state
    again = DeviceRegistry(engine)
    assert {d["device"] for d in again.list_devices(gateway="gw")} == {"m1", "m2"}
    assert again.list_gateways()[0]["session"] == 3


def test_a_property_keeps_the_value_with_the_newest_sample_time(engine: Engine) -> None:
    """A replayed backlog (older samples arriving after newer ones) does not overwrite what
    is current; a device clock running ahead counts as the arrival time."""
    reg = DeviceRegistry(engine)
    reg.seen("gw", "connector", "c1", 10_000, {"status": "available", "power": 0},
             sample_ts=9_000)
    reg.seen("gw", "connector", "c1", 10_100, {"status": "charging", "power": 7000,
                                               "meterEnergy": 12}, sample_ts=2_000)
    reg.seen("gw", "connector", "c1", 10_200, {"meterEnergy": 13}, sample_ts=3_000)
    reg.seen("gw", "connector", "c1", 10_300, {"sessionId": ""})  # no device time: arrival
    reg.flush()
    (row,) = reg.list_devices()
    assert row["properties"] == {"status": "available", "power": 0, "meterEnergy": 13,
                                 "sessionId": ""}
    assert row["lastSeen"] == 10_300
    # an hour ahead: taken as received at 11_000, so a later sample at 11_500 replaces it
    reg.seen("gw", "connector", "c1", 11_000, {"status": "faulted"}, sample_ts=3_611_000)
    reg.seen("gw", "connector", "c1", 11_600, {"status": "available"}, sample_ts=11_500)
    reg.flush()
    assert reg.list_devices()[0]["properties"]["status"] == "available"


def test_transition_says_stale_changed_or_same_in_one_step(engine: Engine) -> None:
    reg = DeviceRegistry(engine)
    assert reg.transition("gw", "charger", "c1", True, 1, 1000) is True  # offline -> online
    assert reg.transition("gw", "charger", "c1", True, 2, 1100) is False  # online again
    assert reg.transition("gw", "charger", "c1", False, 1, 1200) is None  # older session
    assert reg.is_online("gw", "charger", "c1")
    assert reg.transition("gw", "charger", "c1", False, 2, 1300) is True  # the Will
    assert reg.transition("gw", "gateway", "gw", False, 1, 1400) is False  # never was online


# -- N workers on one database, restarts ----------------------------------------------------


@pytest.fixture
def other(engine: Engine) -> Iterator[Engine]:
    """A second engine on the same database: another worker's connections."""
    eng = make_engine(engine.url.render_as_string(hide_password=False))
    yield eng
    eng.dispose()


def _row(engine: Engine, device: str, product: str | None = None) -> dict[str, Any]:
    with Session(engine) as db:
        query = select(DeviceRow).where(DeviceRow.device == device)
        if product is not None:
            query = query.where(DeviceRow.product == product)
        row = db.exec(query).one()
        return {"online": row.online, "session": row.session, "lastSeen": row.last_seen_ms,
                "firstSeen": row.first_seen_ms, "properties": row.properties,
                "measured": row.measured}


def _gateway(engine: Engine, gw: str) -> tuple[bool, int, int | None, int | None]:
    with Session(engine) as db:
        row = db.exec(select(GatewayRow).where(GatewayRow.id == gw)).one()
        return row.online, row.session, row.last_seen_ms, row.first_seen_ms


def _interleaved(a: DeviceRegistry, b: DeviceRegistry) -> None:
    """One device's messages split between two workers, in arrival order."""
    a.transition("gw", "gateway", "gw", True, 3, 900)
    a.transition("gw", "connector", "c1", True, 7, 1_000)
    b.seen("gw", "connector", "c1", 1_100, {"power": 5, "energy": 1}, sample_ts=1_050)
    a.seen("gw", "connector", "c1", 1_600, {"power": 7, "status": "charging"}, sample_ts=1_500)
    b.seen("gw", "connector", "c1", 1_900, {"power": 11}, sample_ts=1_800)
    b.transition("gw", "connector", "c1", False, 7, 2_500)  # the device went away
    b.transition("gw", "gateway", "gw", False, 2, 2_550)  # an old session's late Will
    # late telemetry of session 7 reaches A, with an older status than A holds
    a.seen("gw", "connector", "c1", 2_600, {"status": "available", "energy": 2},
           sample_ts=1_400)


@pytest.mark.parametrize("first", ["a", "b"])
def test_two_workers_flushing_in_either_order_make_the_same_row(
        engine: Engine, other: Engine, first: str) -> None:
    """Each worker holds part of the device's messages; whoever flushes first, the row ends
    with the newest value of each property and the newest presence (offline of session 7)."""
    a, b = DeviceRegistry(engine), DeviceRegistry(other)
    _interleaved(a, b)
    order = [a, b] if first == "a" else [b, a]
    for worker in order:
        worker.flush()
    assert _row(engine, "c1") == {
        "online": False, "session": 7, "lastSeen": 2_600, "firstSeen": 1_000,
        "properties": {"power": 11, "status": "charging", "energy": 2},
        "measured": {"power": 1_800, "status": 1_500, "energy": 1_400},
    }
    assert _gateway(engine, "gw") == (True, 3, 2_600, 900)
    # the second to flush merged the first's row into its view: nothing stale is kept
    second = order[1]
    assert second.is_online("gw", "connector", "c1") is False
    assert second.is_online("gw", "gateway", "gw") is True
    # the first learns at its next flush (any message of the device makes it due)
    order[0].seen("gw", "connector", "c1", 2_700)
    order[0].flush()
    for worker in (a, b):
        assert worker.is_online("gw", "connector", "c1") is False
        # the offline of session 7 was seen: its online again is stale, a new session is not
        assert worker.transition("gw", "connector", "c1", True, 7, 2_800) is None
    assert a.transition("gw", "connector", "c1", True, 8, 2_900) is True
    a.flush()
    b.seen("gw", "connector", "c1", 2_950, {"power": 3}, sample_ts=1_000)  # a replay
    b.flush()
    row = _row(engine, "c1")
    assert (row["online"], row["session"]) == (True, 8)
    assert row["properties"]["power"] == 11
    listed = {d["device"]: d for d in DeviceRegistry(engine).list_devices()}
    assert listed["c1"]["online"] is True and listed["c1"]["properties"]["power"] == 11


def test_an_older_session_late_online_does_not_resurrect_a_device(
        engine: Engine, other: Engine) -> None:
    a = DeviceRegistry(engine)
    b = DeviceRegistry(other)  # started before A's states: knows nothing of them
    assert a.transition("gw", "charger", "p1", True, 5, 1_000) is True
    assert a.transition("gw", "charger", "p1", False, 5, 2_000) is True
    assert a.transition("gw", "charger", "p1", True, 5, 2_100) is None  # redelivered: stale
    a.flush()
    assert b.transition("gw", "charger", "p1", True, 4, 3_000) is True  # B's view: news
    b.flush()
    assert b.is_online("gw", "charger", "p1") is False  # the merged row corrected B
    assert b.transition("gw", "charger", "p1", True, 5, 3_100) is None
    b.seen("gw", "charger", "p1", 3_200, {"status": "idle"})
    b.flush()
    row = _row(engine, "p1")
    assert (row["online"], row["session"], row["lastSeen"], row["firstSeen"]) == \
        (False, 5, 3_200, 1_000)


def test_a_restart_keeps_the_newest_measure_time(engine: Engine) -> None:
    reg = DeviceRegistry(engine)
    reg.seen("gw", "meter", "m1", 5_000, {"power": 9, "voltage": 230}, sample_ts=5_000)
    reg.seen("gw", "charger", "m1", 5_000, {"power": 22})  # same name, another product
    reg.flush()
    again = DeviceRegistry(engine)  # the worker restarted: its view comes from SQL
    # the backlog a device replays after an outage: older than what is stored
    again.seen("gw", "meter", "m1", 6_000, {"power": 1, "voltage": 231}, sample_ts=4_000)
    again.seen("gw", "meter", "m1", 6_100, {"voltage": 229}, sample_ts=5_000)  # equal: taken
    again.flush()
    row = _row(engine, "m1", "meter")
    assert row["properties"] == {"power": 9, "voltage": 229}
    assert row["measured"] == {"power": 5_000, "voltage": 5_000}
    assert row["lastSeen"] == 6_100
    listed = {(d["product"], d["device"]): d for d in again.list_devices()}
    assert listed[("charger", "m1")]["properties"] == {"power": 22}
    assert listed[("charger", "m1")]["lastSeen"] == 5_000


def test_rows_from_before_measure_times_take_any_sample(engine: Engine) -> None:
    """A database at revision 0001 (no devices.measured) upgraded: its values have no known
    time, so the next sample of a property replaces it; the others are kept."""
    db.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(insert(DeviceRow.__table__).values(  # type: ignore[attr-defined]
            gateway_id="gw", product="meter", device="old", online=True, session=2,
            last_seen_ms=9_000, first_seen_ms=1_000, properties={"power": 4, "energy": 70}))
    assert db.upgrade(engine) == db.head()
    reg = DeviceRegistry(engine)
    reg.seen("gw", "meter", "old", 9_500, {"power": 5}, sample_ts=100)
    reg.flush()
    row = _row(engine, "old")
    assert row["properties"] == {"power": 5, "energy": 70}
    assert row["measured"] == {"power": 100}
    assert (row["online"], row["session"], row["firstSeen"]) == (True, 2, 1_000)


class _Hold:
    """Stops a flush of one engine right after its SELECT of ``table`` (its rows read, and on
    PostgreSQL locked), until released."""

    def __init__(self, engine: Engine, table: str = "devices") -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        self.armed = True
        self.table = table
        event.listen(engine, "after_cursor_execute", self._after)

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.armed and f"FROM {self.table}" in statement:
            self.armed = False
            self.reached.set()
            self.release.wait(60)


def _flush_in_thread(reg: DeviceRegistry, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            reg.flush()
        except BaseException as exc:
            errors.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _concurrently(a: DeviceRegistry, b: DeviceRegistry, hold: _Hold) -> None:
    """Flush A until it stops after its SELECT, then B; B must wait for A (its row lock on
    PostgreSQL, its write lock on SQLite), then both complete."""
    errors: list[BaseException] = []
    first = _flush_in_thread(a, errors)
    assert hold.reached.wait(30)
    second = _flush_in_thread(b, errors)
    second.join(timeout=1.0)
    waited = second.is_alive()
    hold.release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert not first.is_alive() and not second.is_alive() and errors == []
    assert waited  # B did not write past A's read


def test_concurrent_flushes_lose_no_device_update(engine: Engine, other: Engine) -> None:
    """A flush that read a device row holds it until it commits: the other worker's flush waits
    and merges into the committed row (without the lock, A's write of the row it read would
    drop B's newer power)."""
    a, b = DeviceRegistry(engine), DeviceRegistry(other)
    a.seen("gw", "meter", "m1", 100, {"power": 1})
    a.flush()
    # A's news change the device row only (the gateway row's values stay: no gateway write
    # that would serialize the two flushes before the devices are read)
    a.seen("gw", "meter", "m1", 100, {"status": "ok"})
    a.transition("gw", "meter", "m1", True, 1, 100)
    b.seen("gw", "meter", "m1", 200, {"power": 2})
    _concurrently(a, b, _Hold(engine, "devices"))
    row = _row(engine, "m1")
    assert row["properties"] == {"power": 2, "status": "ok"}
    assert row["measured"] == {"power": 200, "status": 100}
    assert (row["online"], row["session"], row["lastSeen"]) == (True, 1, 200)


def test_concurrent_flushes_lose_no_gateway_update(engine: Engine, other: Engine) -> None:
    a, b = DeviceRegistry(engine), DeviceRegistry(other)
    a.seen("gw", "gateway", "gw", 100)
    a.flush()
    a.transition("gw", "gateway", "gw", True, 4, 150)
    b.seen("gw", "gateway", "gw", 200)
    _concurrently(a, b, _Hold(engine, "gateways"))
    assert _gateway(engine, "gw") == (True, 4, 200, 100)


def test_two_workers_creating_the_same_device_at_once(engine: Engine, other: Engine) -> None:
    """Both find no row; one inserts first, the other's insert hits the unique key (PostgreSQL)
    and its flush is merged again into the row that now exists (SQLite: it waits instead)."""
    a, b = DeviceRegistry(engine), DeviceRegistry(other)
    hold = _Hold(engine)
    a.transition("gw", "meter", "new", True, 1, 100)
    a.seen("gw", "meter", "new", 150, {"power": 1})
    b.seen("gw", "meter", "new", 120, {"power": 2, "energy": 5}, sample_ts=110)
    errors: list[BaseException] = []
    first = _flush_in_thread(a, errors)
    assert hold.reached.wait(30)
    second = _flush_in_thread(b, errors)
    second.join(timeout=1.0)
    hold.release.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert not first.is_alive() and not second.is_alive() and errors == []
    row = _row(engine, "new")
    assert row["properties"] == {"power": 1, "energy": 5}
    assert (row["online"], row["session"], row["lastSeen"], row["firstSeen"]) == \
        (True, 1, 150, 100)
    with Session(engine) as db_:
        assert len(db_.exec(select(DeviceRow)).all()) == 1


def test_a_silent_gateway_is_shown_offline_with_its_devices(engine: Engine) -> None:
    """No Will came (its broker crashed while it died): a gateway not heard from within
    ``silence_ms`` is listed offline, its devices too; hearing from it again revives it."""
    reg = DeviceRegistry(engine, silence_ms=60_000)
    now = now_ms()
    assert reg.presence("gw", "gateway", "gw", True, 5, now - 61_000)
    assert reg.presence("gw", "charger", "c1", True, 1, now - 61_000)
    assert reg.presence("gw2", "gateway", "gw2", True, 1, now)
    assert reg.presence("gw2", "charger", "c1", True, 1, now)
    reg.flush()
    assert {g["gateway"]: g["online"] for g in reg.list_gateways()} == {"gw": False,
                                                                       "gw2": True}
    assert [(d["gateway"], d["online"]) for d in reg.list_devices()] == [
        ("gw", False), ("gw2", True)]
    assert reg.online_count() == 1
    assert reg.is_online("gw", "gateway", "gw")  # its last state stands; only the view ages
    # without a silence limit a state stands for good
    assert all(g["online"] for g in DeviceRegistry(engine).list_gateways())
    reg.seen("gw", "gateway", "gw", now, {"uptimeS": 10})  # heard again
    reg.flush()
    assert all(g["online"] for g in reg.list_gateways())
    assert reg.online_count() == 2
