"""The device registry on SQLite and on PostgreSQL (same code)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from cloud.registry import DeviceRegistry
from tests.support.postgres import backend_engine, database_fixture

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
