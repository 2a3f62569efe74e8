"""Each action kind, through RuleSet.evaluate: the values it produces and when it produces none."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from cloud.actions import (
    AlarmSignal,
    BillSessionEvent,
    InvokeService,
    Lane,
    PostWebhook,
    Republish,
    WritePoint,
)
from cloud.rules import CountingStats
from tests.cloud.rules.rules_support import msg, ruleset

PROP = "ev/v1/gw-1/connector/c-1/prop"


def failures(rules: object) -> dict[tuple[str, str], int]:
    stats = rules.stats  # type: ignore[attr-defined]
    assert isinstance(stats, CountingStats)
    return dict(stats.failures)


def test_influx_point_tags_and_fields_missing_ones_omitted(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: points
            from: [ev/v1/+/connector/+/prop]
            do:
              - influx:
                  measurement: "{product}"
                  tags: {gw: gw, device: device, status: "p['status']"}
                  fields: {power: "p['power']", energy: "p['energy']", double: "p['power'] * 2"}
        """)
    [point] = rules.evaluate(*msg(PROP, {"power": 7.5, "energy": "12.3450"}, ts=1234))
    assert isinstance(point, WritePoint)
    assert point.lane is Lane.TELEMETRY
    assert point.measurement == "connector"
    assert point.tags == {"gw": "gw-1", "device": "c-1"}  # no status in this report
    assert point.fields == {"power": 7.5, "energy": Decimal("12.3450"), "double": Decimal("15.0")}
    assert point.ts_ms == 1234
    assert point.key == "01TESTMESSAGE0000000000000:points:0"
    assert point.rule == "points"
    # a report with none of the fields writes no point, and missing fields are not failures
    assert rules.evaluate(*msg(PROP, {"plugged": True})) == []
    assert failures(rules) == {}


def test_influx_field_type_errors_drop_the_field_and_are_counted(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: typed
            from: [ev/v1/+/+/+/prop]
            do:
              - influx:
                  measurement: m
                  fields: {a: "p['a'] * 2", b: "p['b']", c: "p['c']"}
        """)
    [point] = rules.evaluate(*msg(PROP, {"a": "text", "b": 1, "c": [1, 2]}))
    assert isinstance(point, WritePoint)
    assert point.fields == {"b": 1}
    assert failures(rules) == {("typed", "type"): 2}


def alarm_rules(tmp_path: Path) -> object:
    return ruleset(tmp_path, """
        rules:
          - id: hot-gun
            from: [ev/v1/+/connector/+/prop]
            where: "p&['gunTemperature'] != null"
            do:
              - alarm:
                  type: gunOverTemperature
                  level: major
                  raise: "p['gunTemperature'] > 80"
                  clear: "p['gunTemperature'] < 70"
                  debounce: 5s
                  clear_after: 500ms
                  value: p['gunTemperature']
                  message: "{type} {level}: {p['gunTemperature']} degC, session {p['sessionId']}"
                  details: {limit: "80", session: "p['sessionId']"}
        """)


def test_alarm_hysteresis_raise_nothing_between_clear(tmp_path: Path) -> None:
    rules = alarm_rules(tmp_path)
    signals = []
    for temp in (85.0, 75.0, 65.0, 80.0, 80.5):
        out = rules.evaluate(*msg(PROP, {"gunTemperature": temp}))  # type: ignore[attr-defined]
        signals.append(out[0].active if out else None)
    assert signals == [True, None, False, None, True]
    [signal] = rules.evaluate(*msg(PROP, {"gunTemperature": 90.0}, ts=77))  # type: ignore[attr-defined]
    assert isinstance(signal, AlarmSignal)
    assert signal.lane is Lane.ALARMS
    assert (signal.type, signal.level, signal.dedupe) == \
        ("gunOverTemperature", "major", "gunOverTemperature:gw-1/connector/c-1")
    assert (signal.debounce_ms, signal.clear_after_ms) == (5000, 500)
    assert signal.value == 90.0
    assert (signal.gw, signal.product, signal.device, signal.ts_ms) == ("gw-1", "connector", "c-1", 77)
    # a missing value in the message text shows '?', in details it is left out
    assert signal.message == "gunOverTemperature major: 90.0 degC, session ?"
    assert signal.details == {"limit": Decimal("80")}
    # the where keeps reports without a gun temperature out: no failure counted
    assert rules.evaluate(*msg(PROP, {"power": 3.0})) == []  # type: ignore[attr-defined]
    assert failures(rules) == {}


def test_alarm_raise_defaults_to_the_where_and_custom_dedupe(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: fire
            from: [ev/v1/+/camera/+/event/fireDetected]
            do:
              - alarm: {type: fire, level: critical, dedupe: "{type}@{gw}:{p&['zone'] ?? 'all'}"}
          - id: bay-free
            from: [ev/v1/+/camera/+/event/spaceOccupancy]
            where: "p['occupied'] == false"
            do:
              - alarm: {type: ice, level: warning, raise: false, clear: true}
        """)
    [raised] = rules.evaluate(*msg("ev/v1/g/camera/cam/event/fireDetected", {"confidence": 0.9}))
    assert isinstance(raised, AlarmSignal) and raised.active
    assert raised.dedupe == "fire@g:all"
    [cleared] = rules.evaluate(*msg("ev/v1/g/camera/cam/event/spaceOccupancy",
                                    {"space": "A1", "occupied": False}))
    assert isinstance(cleared, AlarmSignal) and not cleared.active
    assert rules.evaluate(*msg("ev/v1/g/camera/cam/event/spaceOccupancy",
                               {"space": "A1", "occupied": True})) == []


def test_alarm_with_a_missing_dedupe_field_is_skipped_and_counted(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: per-code
            from: [ev/v1/+/connector/+/event/fault]
            do:
              - alarm: {type: fault, level: major, dedupe: "{type}:{device}:{p['code']}"}
        """)
    assert rules.evaluate(*msg("ev/v1/g/connector/c/event/fault", {"active": True})) == []
    assert failures(rules) == {("per-code", "missing"): 1}


def test_invoke_validates_params_against_the_service_input(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: stop-hot
            from: [ev/v1/+/connector/+/prop]
            where: "(p&['gunTemperature'] ?? 0) > 95"
            do:
              - invoke: {service: remoteStop, params: {sessionId: "p['sessionId']"}}
          - id: reserve
            from: [ev/v1/+/connector/+/event/sessionEnded]
            do:
              - invoke:
                  service: reserveNow
                  device: "{device}"
                  timeout: 3s
                  params: {reservationId: "1 + 1", idTag: "'T1'", expiresAt: "ts + 60000"}
        """)
    [call] = rules.evaluate(*msg(PROP, {"gunTemperature": 99.0, "sessionId": "S9"}))
    assert isinstance(call, InvokeService)
    assert call.lane is Lane.COMMANDS
    assert (call.gw, call.product, call.device, call.service) == \
        ("gw-1", "connector", "c-1", "remoteStop")
    assert call.params == {"sessionId": "S9"}
    assert call.timeout_s == 10.0  # the model's timeout
    [reserve] = rules.evaluate(*msg("ev/v1/g/connector/c/event/sessionEnded",
                                    {"sessionId": "S", "seq": 1}, ts=1000))
    assert isinstance(reserve, InvokeService)
    assert reserve.params == {"reservationId": 2, "idTag": "T1", "expiresAt": 61000}
    assert type(reserve.params["reservationId"]) is int
    assert reserve.timeout_s == 3.0
    # a param of the wrong type: counted as payload, no call
    assert rules.evaluate(*msg(PROP, {"gunTemperature": 99.0, "sessionId": 5})) == []
    assert failures(rules) == {("stop-hot", "payload"): 1}


def test_webhook_default_body_custom_body_headers(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: hook
            from: [ev/v1/+/connector/+/event/sessionEnded]
            do:
              - webhook: {url: "https://partner.example/ev/{gw}/{device}"}
              - webhook:
                  url: "https://partner.example/energy"
                  body: {session: "p['sessionId']", kwh: "p['energy']", none: "p&['reason']"}
                  headers: {X-Site: "{gw}"}
                  timeout: 2s
        """)
    full, custom = rules.evaluate(*msg("ev/v1/gw-1/connector/c-1/event/sessionEnded",
                                       {"sessionId": "S1", "seq": 2, "energy": "10.50"}))
    assert isinstance(full, PostWebhook) and isinstance(custom, PostWebhook)
    assert full.url == "https://partner.example/ev/gw-1/c-1"
    assert full.body["p"] == {"sessionId": "S1", "seq": 2, "energy": "10.50"}
    assert (full.body["rule"], full.body["kind"], full.body["name"], full.body["id"]) == \
        ("hook", "event", "sessionEnded", "01TESTMESSAGE0000000000000")
    assert full.key.endswith(":hook:0") and custom.key.endswith(":hook:1")
    assert custom.body == {"session": "S1", "kwh": "10.50"}  # decimals as strings, nulls left out
    assert custom.headers == {"X-Site": "gw-1"}
    assert custom.timeout_s == 2.0


def test_republish_default_payload_and_bad_rendered_topic(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: copy
            from: [ev/v1/+/+/+/prop]  # open: p['target'] is not a meter property
            do:
              - republish: {topic: "site/{gw}/{device}/power", qos: 0, retain: true}
              - republish: {topic: "{p['target']}", payload: {kw: "p['power']"}}
        """)
    first, second = rules.evaluate(*msg("ev/v1/g/meter/m1/prop",
                                        {"power": 3.5, "energyImport": "1.5", "target": "a/b"}))
    assert isinstance(first, Republish) and isinstance(second, Republish)
    assert (first.topic, first.qos, first.retain) == ("site/g/m1/power", 0, True)
    assert first.payload == {"id": "01TESTMESSAGE0000000000000", "rts": 5000, "ts": 1000,
                             "seq": 7, "src": "ykc16",
                             "p": {"power": 3.5, "energyImport": "1.5", "target": "a/b"}}
    assert (second.topic, second.payload) == ("a/b", {"kw": 3.5})
    only = rules.evaluate(*msg("ev/v1/g/meter/m1/prop", {"power": 1.0, "target": "ev/v1/x"}))
    assert [a.topic for a in only if isinstance(a, Republish)] == ["site/g/m1/power"]
    assert failures(rules) == {("copy", "type"): 1}


def test_billing_validates_through_the_thing_model(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: sessions
            from: [ev/v1/+/connector/+/event/+]
            do: [{billing: {}}]
          - id: samples
            from: [ev/v1/+/connector/+/prop]
            where: "(p&['sessionId'] ?? '') != ''"
            do: [{billing: {}}]
        """)
    [event] = rules.evaluate(*msg(
        "ev/v1/gw-1/connector/c-1/event/transactionRecord",
        {"sessionId": "T1", "startedAt": 1, "endedAt": 2, "meterStart": "100.0",
         "meterStop": "112.5", "energy": "12.5", "amount": "15.63",
         "tiers": [{"tier": "peak", "energy": "12.5", "amount": "15.63"}], "vendorX": 1},
        seq=42))
    assert isinstance(event, BillSessionEvent)
    assert event.lane is Lane.BILLING
    assert event.name == "transactionRecord"
    assert event.params["amount"] == Decimal("15.63")
    assert event.params["tiers"][0]["energy"] == Decimal("12.5")
    assert event.params["vendorX"] == 1  # lenient: unknown keys pass through
    assert (event.msg_id, event.seq, event.ts_ms) == ("01TESTMESSAGE0000000000000", 42, 1000)
    [sample] = rules.evaluate(*msg(PROP, {"sessionId": "T1", "meterEnergy": "100.25"}))
    assert isinstance(sample, BillSessionEvent)
    assert sample.name == "sample"
    assert sample.params == {"sessionId": "T1", "meterEnergy": Decimal("100.25")}
    # invalid params (a float for a decimal, a missing required param): counted, skipped
    assert rules.evaluate(*msg("ev/v1/g/connector/c/event/sessionEnded",
                               {"sessionId": "T1", "seq": 1, "energy": 1.5})) == []
    assert rules.evaluate(*msg("ev/v1/g/connector/c/event/sessionStarted", {"seq": 1})) == []
    assert failures(rules) == {("sessions", "payload"): 2}
