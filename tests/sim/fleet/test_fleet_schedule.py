"""The fleet and its session schedule are functions of the spec and the seed alone."""

from __future__ import annotations

import statistics

from sim.fleet import Kind, build_spec, plan_devices, sessions_until, shard_devices
from sim.fleet.schedule import card_pool, device_seed

BASE: dict[str, object] = dict(
    ykc=6, ocpp16=3, ocpp201=2, modbus_meters=4, parking_locks=2, cameras=3, env_sensors=2,
    ykc_port=8768, ocpp_url="ws://127.0.0.1:9000/ocpp", ykc_guns=2, sessions_per_hour=4,
    session_minutes=5, app_share=0.4, app_api="http://127.0.0.1:8000", gateway_id="gw")


def schedules(values: dict[str, object], horizon: float = 4 * 3600) -> dict[tuple[str, int], list]:  # type: ignore[type-arg]
    spec = build_spec(**values)
    return {(plan.device_id, connector): sessions_until(spec, plan.device_id, connector, horizon)
            for plan in plan_devices(spec) for connector in range(1, plan.connectors + 1)}


def test_same_seed_same_fleet_and_schedule_other_seed_other_schedule() -> None:
    first = schedules({**BASE, "seed": 42})
    again = schedules({**BASE, "seed": 42})
    other = schedules({**BASE, "seed": 43})
    assert first == again
    assert sum(len(s) for s in first.values()) > 50
    assert first.keys() == other.keys()
    assert first != other
    spec = build_spec(**BASE, seed=42)
    assert plan_devices(spec) == plan_devices(build_spec(**BASE, seed=42))
    assert device_seed(42, "ykc", "32010200000001") == device_seed(42, "ykc", "32010200000001")
    assert device_seed(42, "ykc", "32010200000001") != device_seed(43, "ykc", "32010200000001")


def test_a_connector_schedule_does_not_depend_on_the_rest_of_the_fleet() -> None:
    small = schedules({**BASE, "seed": 5})
    large = schedules({**BASE, "seed": 5, "ykc": 60, "ocpp16": 30, "processes": 4})
    for key, planned in small.items():
        assert large[key] == planned, key


def test_shards_split_the_fleet_without_overlap_and_keep_modbus_in_worker_0() -> None:
    spec = build_spec(**BASE, processes=3)
    devices = plan_devices(spec)
    shards = [shard_devices(spec, devices, shard, 3) for shard in range(3)]
    ids = [plan.device_id for shard in shards for plan in shard]
    assert sorted(ids) == sorted(plan.device_id for plan in devices)
    assert len(ids) == len(set(ids))
    modbus = {plan.device_id for plan in devices if spec.is_modbus(plan.kind)}
    assert modbus and modbus <= {plan.device_id for plan in shards[0]}
    sizes = [sum(1 for plan in shard if not spec.is_modbus(plan.kind)) for shard in shards]
    assert max(sizes) - min(sizes) <= 1  # dealt round robin
    # the ramp interleaves kinds: OCPP chargers do not all come after the YKC piles
    order = [plan.kind for plan in devices]
    assert order.index(Kind.OCPP16) < len(order) // 2


def test_device_ids_follow_the_protocols() -> None:
    spec = build_spec(**BASE)
    ids = {plan.kind: plan.device_id for plan in plan_devices(spec) if plan.index == 1}
    assert ids[Kind.YKC] == "32010200000001" and len(ids[Kind.YKC]) == 14
    assert ids[Kind.OCPP16] == "SIM16-00001" and ids[Kind.OCPP201] == "SIM201-00001"
    assert ids[Kind.CAMERA] == "cam01" and ids[Kind.ENV_SENSOR] == "env01"
    assert ids[Kind.MODBUS_METER] == "mb-meter-0001" and ids[Kind.PARKING_LOCK] == "mb-lock-0001"
    assert card_pool(spec)[0] == "D1000001" and len(card_pool(spec)) == spec.cards


def test_the_schedule_has_the_asked_rate_lengths_and_app_share() -> None:
    values = {**BASE, "seed": 9, "sessions_per_hour": 3, "session_minutes": 10,
              "app_share": 0.25, "plug_delay": 5}
    spec = build_spec(**values)
    hours = 2000
    planned = sessions_until(spec, "32010200000001", 1, hours * 3600)
    assert abs(len(planned) / hours - 3) < 0.15
    lengths = [p.duration for p in planned]
    assert min(lengths) >= 300 and max(lengths) <= 900
    assert abs(statistics.mean(lengths) - 600) < 15
    apps = [p for p in planned if p.method == "app"]
    assert abs(len(apps) / len(planned) - 0.25) < 0.03
    assert all(p.plug_delay == 5 for p in apps)
    assert all(p.plug_delay == 0 for p in planned if p.method == "card")
    starts = [p.start for p in planned]
    ends = [p.start + p.duration for p in planned]
    assert all(end <= nxt for end, nxt in zip(ends, starts[1:], strict=False))  # no overlap
    assert all(card in card_pool(spec) for card in {p.card for p in planned})
    assert sessions_until(build_spec(**{**values, "sessions_per_hour": 0}),
                          "32010200000001", 1, 3600) == []
