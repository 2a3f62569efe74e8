"""RuleSet.evaluate semantics: batches, keys, variables, presence, errors counted not raised."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from cloud.actions import AlarmSignal, WritePoint
from cloud.rules import CountingStats, RuleSet
from tests.cloud.rules.rules_support import msg, ruleset, write
from thingmodels.envelope import Envelope
from thingmodels.topics import parse

PROP = "ev/v1/gw-1/connector/c-1/prop"

POINTS = """
rules:
  - id: points
    from: [ev/v1/+/connector/+/prop]
    do:
      - influx: {measurement: connector, fields: {energy: "p['energy']"}}
"""


def test_a_batch_runs_once_per_sample_with_its_params_time_and_key(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, POINTS)
    out = rules.evaluate(*msg(PROP, ts=900, batch=[
        (100, {"energy": "1.0"}), (None, {"energy": "1.5"}), (300, {"power": 2.0}),
        (400, {"energy": "2.25"}),
    ]))
    assert all(isinstance(a, WritePoint) for a in out)
    points = [a for a in out if isinstance(a, WritePoint)]
    assert [(p.fields["energy"], p.ts_ms) for p in points] == [
        (Decimal("1.0"), 100), (Decimal("1.5"), 900), (Decimal("2.25"), 400),
    ]
    base = "01TESTMESSAGE0000000000000:points:0"
    assert [p.key for p in points] == [f"{base}:0", f"{base}:1", f"{base}:3"]


def test_single_message_keys_have_no_sample_index_and_ts_falls_back_to_rts(
        tmp_path: Path) -> None:
    rules = ruleset(tmp_path, POINTS)
    [point] = rules.evaluate(*msg(PROP, {"energy": "3"}, ts=None))
    assert isinstance(point, WritePoint)
    assert point.key == "01TESTMESSAGE0000000000000:points:0"
    assert point.ts_ms == 5000  # rts
    # the same message again gives the same keys (idempotent sinks drop it)
    assert rules.evaluate(*msg(PROP, {"energy": "3"}, ts=None)) == [point]


def test_wire_decimals_compare_as_numbers_in_conditions(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: big-session
            from: [ev/v1/+/connector/+/prop]
            where: "p['energy'] >= 12.345"
            do: [{alarm: {type: big, level: info}}]
        """)
    assert len(rules.evaluate(*msg(PROP, {"energy": "12.345"}))) == 1
    assert rules.evaluate(*msg(PROP, {"energy": "12.3449999"})) == []


def test_variables_of_events_replies_and_states(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: vars
            from: [ev/v1/#]
            do:
              - alarm:
                  type: seen
                  level: info
                  message: "{kind}|{name}|{seq}|{src}|{code}|{id}|{topic}"
        """)

    def text(topic: str, **kw: object) -> str:
        [signal] = rules.evaluate(*msg(topic, **kw))  # type: ignore[arg-type]
        assert isinstance(signal, AlarmSignal)
        return signal.message

    assert text("ev/v1/g/connector/c/event/fault", p={"code": "E", "active": True}) == \
        "event|fault|7|ykc16|null|01TESTMESSAGE0000000000000|ev/v1/g/connector/c/event/fault"
    assert text("ev/v1/g/connector/c/svc/remoteStart/reply", p={"accepted": True}, code=0,
                cid="X").startswith("reply|remoteStart|7|ykc16|0|")
    assert text("ev/v1/g/gateway/g/state", p={"online": True, "session": 3}, seq=None) \
        .startswith("state|null|null|ykc16|null|")
    assert text("ev/v1/g/meter/m/event/commRestored", p=None).startswith("event|commRestored|")


def test_downlink_topics_are_not_for_rules(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: everything
            from: [ev/v1/#]
            do: [{alarm: {type: seen, level: info}}]
        """)
    for topic in ("ev/v1/g/connector/c/svc/remoteStart", "ev/v1/g/connector/c/desired",
                  "ev/v1/g/connector/c/event/authorize/reply"):
        assert rules.evaluate(parse(topic), Envelope(id="X", rts=1, p={})) == []
    assert len(rules.evaluate(*msg("ev/v1/g/connector/c/prop", {}))) == 1


def test_expression_errors_are_counted_per_rule_and_reason_never_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: needs-temp
            from: [ev/v1/+/connector/+/prop]
            where: "p['gunTemperature'] > 80"
            do: [{alarm: {type: hot, level: major}}]
          - id: fine
            from: [ev/v1/+/connector/+/prop]
            do: [{alarm: {type: seen, level: info}}]
        """)
    caplog.set_level(logging.WARNING, logger="voltmesh.cloud.rules")
    for p in ({"power": 1.0}, {"power": 2.0}, {"gunTemperature": "hot"},
              {"gunTemperature": 90.0}):
        out = rules.evaluate(*msg(PROP, p))
        assert [a.rule for a in out][-1] == "fine"  # the other rule still runs
    stats = rules.stats
    assert isinstance(stats, CountingStats)
    assert stats.failures == {("needs-temp", "missing"): 2, ("needs-temp", "type"): 1}
    assert stats.matches == {"needs-temp": 1, "fine": 4}
    assert stats.actions == {"alarms": 5}
    logged = [r.getMessage() for r in caplog.records if "needs-temp" in r.getMessage()]
    assert len(logged) == 2  # once per (rule, reason)
    assert "01TESTMESSAGE0000000000000" in logged[0]


def test_presence_runs_only_presence_rules_with_their_keys(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: offline
            from: [$presence]
            where: "product != 'gateway'"
            do:
              - alarm:
                  type: deviceOffline
                  level: major
                  raise: "p['online'] == false"
                  clear: "p['online'] == true"
                  debounce: 60s
                  message: "{kind} {product} {device} session {p['session']}"
          - id: not-presence
            from: [ev/v1/#]
            do: [{alarm: {type: seen, level: info}}]
        """)
    [down] = rules.evaluate_presence("gw-1", "meter", "m-1", False, 123, 7)
    assert isinstance(down, AlarmSignal)
    assert down.active and down.debounce_ms == 60_000 and down.ts_ms == 123
    assert down.key == "presence:gw-1/meter/m-1:7:False:offline:0"
    assert down.message == "presence meter m-1 session 7"
    [up] = rules.evaluate_presence("gw-1", "meter", "m-1", True, 456, 8)
    assert isinstance(up, AlarmSignal) and not up.active
    assert up.key == "presence:gw-1/meter/m-1:8:True:offline:0"
    assert rules.evaluate_presence("gw-1", "gateway", "gw-1", False, 1, 1) == []


def test_rules_run_in_file_then_document_order(tmp_path: Path) -> None:
    write(tmp_path, """
        rules:
          - {id: b1, from: [ev/v1/#], do: [{alarm: {type: t, level: info}}]}
          - {id: b2, from: [ev/v1/+/connector/+/prop], do: [{alarm: {type: t, level: info}}]}
        """, "b.yaml")
    write(tmp_path, """
        rules:
          - {id: a1, from: [ev/v1/+/+/+/prop], do: [{alarm: {type: t, level: info}}]}
        """, "a.yaml")
    rules = RuleSet.load([tmp_path])
    assert [a.rule for a in rules.evaluate(*msg(PROP, {}))] == ["a1", "b1", "b2"]
    assert [r.id for r in rules.candidates(parse("ev/v1/g/meter/m/event/commLost"))] == ["b1"]


def test_a_bug_in_one_action_costs_only_that_action(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    rules = ruleset(tmp_path, """
        rules:
          - id: buggy
            from: [ev/v1/#]
            do: [{alarm: {type: a, level: info}}, {alarm: {type: b, level: info}}]
          - id: fine
            from: [ev/v1/#]
            do: [{alarm: {type: c, level: info}}]
        """)

    def explode(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(rules.rules[0].actions[0], "build", explode)
    caplog.set_level(logging.ERROR, logger="voltmesh.cloud.rules")
    for _ in range(2):
        out = rules.evaluate(*msg(PROP, {}))
        assert [a.type for a in out if isinstance(a, AlarmSignal)] == ["b", "c"]
    assert isinstance(rules.stats, CountingStats)
    assert rules.stats.failures == {("buggy", "internal"): 2}
    assert len([r for r in caplog.records if "a bug" in r.getMessage()]) == 1
