"""The shipped rules (config/rules/): consistent with the thing models, and doing what they say."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
import yaml

from cloud.actions import AlarmSignal, BillSessionEvent, WritePoint
from cloud.rules import RuleSet
from tests.cloud.rules.rules_support import SHIPPED, msg
from thingmodels.loader import builtin_models
from thingmodels.schema import ParamType

MODELS = builtin_models()
NUMERIC = {ParamType.INT, ParamType.FLOAT, ParamType.DECIMAL}
P_KEY = re.compile(r"""\bp&?\[\s*['"]([A-Za-z0-9_]+)['"]\s*\]""")


def raw_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted(SHIPPED.glob("*.yaml")):
        rules.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["rules"])
    return rules


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return RuleSet.load([SHIPPED])


def test_the_shipped_rules_load(shipped: RuleSet) -> None:
    assert len(shipped.rules) == len(raw_rules()) >= 18
    assert shipped.enabled == len(shipped.rules)


def test_every_filter_and_referenced_field_exists_in_the_thing_models() -> None:
    """Checked from the YAML text, independently of the loader's own checks."""
    for rule in raw_rules():
        keys = {k for text in strings({"where": rule.get("where"), "do": rule["do"]})
                for k in P_KEY.findall(text)}
        carried: set[str] = set()
        for source in rule["from"]:
            if source == "$presence":
                carried |= {"online", "session"}
                continue
            levels = source.split("/")
            assert levels[:2] == ["ev", "v1"], source
            product = levels[3]
            assert product in set(MODELS), f"{rule['id']}: {source}: unknown product"
            model = MODELS[product]
            if levels[5:] == ["prop"]:
                carried |= set(model.spec.properties)
            else:
                assert levels[5] == "event" and len(levels) == 7, source
                assert levels[6] in model.spec.events, f"{rule['id']}: {source}: no such event"
                carried |= set(model.spec.events[levels[6]].params)
        assert keys <= carried, f"{rule['id']}: {sorted(keys - carried)} not in its sources"


def test_telemetry_names_are_the_dashboard_contract() -> None:
    telemetry = [r for r in raw_rules() if r["id"].startswith("telemetry-")]
    by_measurement = {r["do"][0]["influx"]["measurement"]: r for r in telemetry}
    assert set(by_measurement) == {"connector", "meter", "env_sensor", "charger", "storage",
                                   "parking_lock"}
    for product, rule in by_measurement.items():
        assert rule["from"] == [f"ev/v1/+/{product}/+/prop"]
        influx = rule["do"][0]["influx"]
        expected_tags = {"gw": "gw", "device": "device"}
        if product == "connector":
            expected_tags["status"] = "p['status']"
        assert influx["tags"] == expected_tags
        numeric = {name for name, spec in MODELS[product].spec.properties.items()
                   if spec.type in NUMERIC}
        extra = {"statusCode"} if product == "connector" else set()
        assert set(influx["fields"]) == numeric | extra, product
        for name in numeric:
            assert influx["fields"][name] == f"p['{name}']"


def test_status_code_is_the_index_in_the_model_enum(shipped: RuleSet) -> None:
    values = MODELS["connector"].spec.properties["status"].values
    assert values is not None
    for index, status in enumerate(values):
        out = shipped.evaluate(*msg("ev/v1/g/connector/c/prop", {"status": status}))
        [point] = [a for a in out if isinstance(a, WritePoint)]
        assert point.fields == {"statusCode": index}
        assert point.tags["status"] == status
    # a status the model does not know writes no code (and no point without other fields)
    assert shipped.evaluate(*msg("ev/v1/g/connector/c/prop", {"status": "exploded"})) == []


def test_telemetry_of_a_connector_batch(shipped: RuleSet) -> None:
    out = shipped.evaluate(*msg("ev/v1/g/connector/c/prop", batch=[
        (1, {"voltage": 400.0, "current": 150.0, "power": 60.0, "energy": "10.5",
             "meterEnergy": "1000.25", "soc": 55.0, "gunTemperature": 40.0, "plugged": True}),
        (2, {"power": 59.5}),
    ]))
    points = [a for a in out if isinstance(a, WritePoint)]
    assert [p.ts_ms for p in points] == [1, 2]
    assert points[0].fields == {"voltage": 400.0, "current": 150.0, "power": 60.0,
                                "energy": Decimal("10.5"), "meterEnergy": Decimal("1000.25"),
                                "soc": 55.0, "gunTemperature": 40.0}
    assert points[1].fields == {"power": 59.5}


def alarms(out: list[Any]) -> list[AlarmSignal]:
    return [a for a in out if isinstance(a, AlarmSignal)]


def test_gun_over_temperature_hysteresis(shipped: RuleSet) -> None:
    states = []
    for temp in (79.0, 85.0, 75.0, 70.0, 69.9):
        signals = alarms(shipped.evaluate(*msg("ev/v1/g/connector/c/prop",
                                               {"gunTemperature": temp})))
        states.append(signals[0].active if signals else None)
        for s in signals:
            assert (s.type, s.level, s.debounce_ms, s.clear_after_ms) == \
                ("gunOverTemperature", "major", 5000, 30000)
            assert s.dedupe == "gunOverTemperature:g/connector/c"
    assert states == [None, True, None, None, False]


@pytest.mark.parametrize(("event", "alarm_type"), [
    ("waterDetected", "waterDetected"), ("smokeDetected", "smokeDetected"),
    ("overTemperature", "overTemperature"),
])
def test_env_sensor_events_raise_and_clear(shipped: RuleSet, event: str, alarm_type: str) -> None:
    extra = {"temperature": 61.0, "threshold": 55.0} if event == "overTemperature" else {}
    topic = f"ev/v1/g/env_sensor/e/event/{event}"
    [up] = alarms(shipped.evaluate(*msg(topic, {"active": True, **extra})))
    [down] = alarms(shipped.evaluate(*msg(topic, {"active": False, **extra})))
    assert (up.type, up.active, down.active) == (alarm_type, True, False)
    assert up.dedupe == down.dedupe == f"{alarm_type}:g/env_sensor/e"


def test_water_property_of_a_modbus_sensor_is_the_same_alarm(shipped: RuleSet) -> None:
    topic = "ev/v1/g/env_sensor/water-1/prop"
    [up] = alarms(shipped.evaluate(*msg(topic, {"water": True})))
    [down] = alarms(shipped.evaluate(*msg(topic, {"water": False})))
    assert (up.type, up.level, up.active, down.active) == ("waterDetected", "critical", True,
                                                           False)
    assert up.dedupe == down.dedupe == "waterDetected:g/env_sensor/water-1"
    assert alarms(shipped.evaluate(*msg(topic, {"temperature": 21.5}))) == []


def test_an_interlock_that_acted_is_a_critical_alarm_until_it_clears(shipped: RuleSet) -> None:
    topic = "ev/v1/g/gateway/g/event/interlockTriggered"
    base = {"interlock": "flood-site", "condition": "water-1.water == true",
            "actions": [{"action": "cut_relay", "target": "relay/r", "ok": True}]}
    [up] = alarms(shipped.evaluate(*msg(topic, {**base, "active": True})))
    [down] = alarms(shipped.evaluate(*msg(topic, {**base, "active": False})))
    assert (up.type, up.level, up.active, down.active) == ("interlockTriggered", "critical",
                                                           True, False)
    assert up.dedupe == down.dedupe == "interlockTriggered:g/flood-site"
    assert up.message == "interlock flood-site: water-1.water == true"


def test_camera_fire_and_ice_occupying(shipped: RuleSet) -> None:
    [fire] = alarms(shipped.evaluate(*msg("ev/v1/g/camera/cam/event/fireDetected",
                                          {"confidence": 0.93, "zone": "bay-3"})))
    assert (fire.type, fire.level, fire.active, fire.value) == ("fireDetected", "critical",
                                                                 True, 0.93)
    assert fire.message == "fire detected in zone bay-3 (confidence 0.93)"
    [ice] = alarms(shipped.evaluate(*msg("ev/v1/g/camera/cam/event/iceOccupying",
                                         {"space": "A7", "plate": "京A12345"})))
    assert (ice.type, ice.active, ice.dedupe) == ("iceOccupying", True,
                                                  "iceOccupying:g/camera/cam/A7")
    [left] = alarms(shipped.evaluate(*msg("ev/v1/g/camera/cam/event/spaceOccupancy",
                                          {"space": "A7", "occupied": False})))
    assert (left.type, left.active, left.dedupe) == ("iceOccupying", False, ice.dedupe)
    assert alarms(shipped.evaluate(*msg("ev/v1/g/camera/cam/event/spaceOccupancy",
                                        {"space": "A7", "occupied": True}))) == []


@pytest.mark.parametrize("product", ["charger", "connector", "storage"])
def test_fault_events_per_code(shipped: RuleSet, product: str) -> None:
    topic = f"ev/v1/g/{product}/d/event/fault"
    [up] = alarms(shipped.evaluate(*msg(topic, {"code": "E7", "active": True})))
    [down] = alarms(shipped.evaluate(*msg(topic, {"code": "E7", "active": False})))
    assert (up.active, down.active) == (True, False)
    assert up.dedupe == down.dedupe == f"fault:g/{product}/d:E7"


def test_presence_offline_alarms(shipped: RuleSet) -> None:
    [down] = shipped.evaluate_presence("g", "connector", "c", False, 10, 4)
    [up] = shipped.evaluate_presence("g", "connector", "c", True, 20, 5)
    assert isinstance(down, AlarmSignal) and isinstance(up, AlarmSignal)
    assert (down.type, down.active, down.debounce_ms, up.active) == \
        ("deviceOffline", True, 60_000, False)
    [gw] = shipped.evaluate_presence("g", "gateway", "g", False, 10, 4)
    assert isinstance(gw, AlarmSignal)
    assert (gw.type, gw.level, gw.debounce_ms) == ("gatewayOffline", "critical", 60_000)


@pytest.mark.parametrize(("event", "params"), [
    ("sessionStarted", {"sessionId": "S", "seq": 0, "meterStart": "100.0"}),
    ("sessionUpdated", {"sessionId": "S", "seq": 1, "energy": "1.5", "amount": "2.10"}),
    ("sessionEnded", {"sessionId": "S", "seq": 2, "energy": "3.0"}),
    ("transactionRecord", {"sessionId": "S", "startedAt": 1, "endedAt": 2, "meterStart": "1",
                           "meterStop": "4", "energy": "3", "amount": "4.20", "tiers": []}),
    ("startResult", {"sessionId": "S", "accepted": True}),
    ("stopResult", {"accepted": True}),
])
def test_session_events_go_to_billing(shipped: RuleSet, event: str,
                                      params: dict[str, Any]) -> None:
    [bill] = shipped.evaluate(*msg(f"ev/v1/g/connector/c/event/{event}", params))
    assert isinstance(bill, BillSessionEvent)
    assert bill.name == event
    assert bill.key == "01TESTMESSAGE0000000000000:billing-session-events:0"


def test_session_samples_go_to_billing_only_with_a_session(shipped: RuleSet) -> None:
    out = shipped.evaluate(*msg("ev/v1/g/connector/c/prop", batch=[
        (1, {"sessionId": "S", "meterEnergy": "10.125", "energy": "0.5"}),
        (2, {"sessionId": "", "meterEnergy": "10.2"}),
        (3, {"meterEnergy": "10.3"}),
    ]))
    bills = [a for a in out if isinstance(a, BillSessionEvent)]
    assert [(b.name, b.params.get("meterEnergy"), b.ts_ms) for b in bills] == \
        [("sample", Decimal("10.125"), 1)]
