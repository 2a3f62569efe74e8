"""Loading rule files: every error names file, line and rule id; unknown keys are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.errors import ConfigError
from cloud.rules import RuleSet, RulesFileError
from tests.cloud.rules.rules_support import msg, write

GOOD = """
rules:
  - id: first
    description: a valid rule
    from: [ev/v1/+/connector/+/prop]
    do:
      - influx: {measurement: connector, fields: {power: "p['power']"}}
"""


def load_error(tmp_path: Path, text: str) -> RulesFileError:
    path = write(tmp_path, text)
    with pytest.raises(RulesFileError) as info:
        RuleSet.load([path])
    assert info.value.file == str(path)
    return info.value


def test_a_valid_file_loads_and_the_error_class_is_a_config_error(tmp_path: Path) -> None:
    rules = RuleSet.load([write(tmp_path, GOOD)])
    assert [r.id for r in rules.rules] == ["first"]
    assert rules.rules[0].line == 2
    assert issubclass(RulesFileError, ConfigError)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "rules:\n  - id: x\n    from: [a, b\n")
    assert err.line is not None and err.line >= 3
    assert "YAML syntax error" in str(err)
    assert str(err).startswith(f"{tmp_path / 'rules.yaml'}:{err.line}:")


def test_unknown_key_in_a_rule_names_line_and_rule(tmp_path: Path) -> None:
    err = load_error(tmp_path, """
        rules:
          - id: ok-rule
            from: [ev/v1/+/meter/+/prop]
            do: [{influx: {measurement: meter, fields: {p: "p['power']"}}}]
          - id: typo-rule
            from: [ev/v1/+/meter/+/prop]
            wher: "p['power'] > 1"
            do: [{influx: {measurement: meter, fields: {p: "p['power']"}}}]
        """)
    assert err.rule == "typo-rule"
    assert err.line == 7
    assert "unknown key 'wher'" in str(err)
    assert f"{err.file}:7: rule 'typo-rule': rules[1].wher" in str(err)


def test_unknown_key_inside_an_action_and_an_unknown_action_kind(tmp_path: Path) -> None:
    err = load_error(tmp_path, """
        rules:
          - id: r1
            from: [ev/v1/+/meter/+/prop]
            do:
              - influx:
                  measurement: meter
                  fields: {power: "p['power']"}
                  tagz: {gw: gw}
        """)
    assert (err.rule, err.line) == ("r1", 8)
    assert "tagz" in err.message
    err = load_error(tmp_path, """
        rules:
          - id: r2
            from: [ev/v1/+/meter/+/prop]
            do:
              - infux: {measurement: meter}
        """)
    assert err.rule == "r2"
    assert err.line == 5
    assert "infux" in err.message


def test_an_action_must_be_exactly_one_kind(tmp_path: Path) -> None:
    err = load_error(tmp_path, """
        rules:
          - id: two
            from: [ev/v1/+/connector/+/event/sessionEnded]
            do:
              - billing: {}
                alarm: {type: x, level: info}
        """)
    assert err.rule == "two"
    assert "exactly one of" in err.message


def test_missing_required_keys(tmp_path: Path) -> None:
    err = load_error(tmp_path, """
        rules:
          - id: nothing-to-do
            from: [ev/v1/+/meter/+/prop]
        """)
    assert err.rule == "nothing-to-do"
    assert "do" in err.path and "required" in err.message.lower()


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, GOOD, "a.yaml")
    second = write(tmp_path, "# the same id again\n# in a second file\n" + GOOD.lstrip("\n"), "b.yaml")
    with pytest.raises(RulesFileError) as info:
        RuleSet.load([tmp_path])
    err = info.value
    assert err.file == str(second)
    assert err.rule == "first"
    assert err.line == 4
    assert f"first defined at {first}:2" in err.message


@pytest.mark.parametrize(("source", "expected"), [
    ("ev/v1/+/connector/+/svc/remoteStart", "cannot match any uplink topic"),
    ("ev/v1/+/nosuchproduct/+/prop", "no thing model for product 'nosuchproduct'"),
    ("ev/v1/+/connector/+/event/noSuchEvent", "has no event 'noSuchEvent'"),
    ("ev/v1/+/connector/+/svc/noSuch/reply", "has no service 'noSuch'"),
    ("ev/v1/#/connector", "'#' must be a whole level and the last one"),
    ("ev/v1/gw+/connector/+/prop", "'+' must be a whole level"),
    ("ev/v2/+/connector/+/prop", "does not start with 'ev/v1/'"),
    ("ev/v1/+/connector/+", "ends after the device level"),
    ("$events", "unknown special source"),
])
def test_filters_outside_the_grammar_are_refused_at_their_line(
        tmp_path: Path, source: str, expected: str) -> None:
    err = load_error(tmp_path, f"""
        rules:
          - id: bad-filter
            from:
              - ev/v1/+/connector/+/prop
              - "{source}"
            do: [{{alarm: {{type: x, level: info}}}}]
        """)
    assert err.rule == "bad-filter"
    assert err.line == 5
    assert err.path == "rules[0].from[1]"
    assert expected in err.message


def test_filters_in_the_grammar_load(tmp_path: Path) -> None:
    RuleSet.load([write(tmp_path, """
        rules:
          - id: many
            from:
              - ev/v1/#
              - ev/v1/gw-1/#
              - ev/v1/+/+/+/#
              - ev/v1/+/+/+/+
              - ev/v1/+/+/+/event/+
              - ev/v1/+/connector/+/event/fault
              - ev/v1/+/connector/+/svc/remoteStart/reply
              - ev/v1/+/+/+/svc/+/reply
              - ev/v1/+/gateway/+/state
              - $presence
            do: [{alarm: {type: x, level: info}}]
        """)])


@pytest.mark.parametrize(("where", "expected"), [
    ("p['power'] >", "invalid expression"),
    ("devce == 'x'", "unknown name 'devce'"),
    ("p.power > 3", "write p['power'] instead of p.power"),
    ("ts + 1", "is a float, not a condition"),
    ("'abc'", "not a condition"),
])
def test_expressions_that_do_not_compile_are_refused_with_line_and_rule(
        tmp_path: Path, where: str, expected: str) -> None:
    err = load_error(tmp_path, f"""
        rules:
          - id: bad-where
            from: [ev/v1/+/meter/+/prop]
            where: "{where}"
            do: [{{influx: {{measurement: meter, fields: {{power: "p['power']"}}}}}}]
        """)
    assert (err.rule, err.line, err.path) == ("bad-where", 4, "rules[0].where")
    assert expected in err.message


def test_a_field_no_source_can_carry_is_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path, """
        rules:
          - id: typo-field
            from: [ev/v1/+/connector/+/prop]
            do:
              - influx:
                  measurement: connector
                  fields:
                    power: p['power']
                    temp: p['gunTemprature']
        """)
    assert (err.rule, err.line) == ("typo-field", 9)
    assert "p['gunTemprature'] is not in any source" in err.message
    assert "gunTemperature" in err.message  # what it can carry


def test_field_check_uses_the_union_of_concrete_sources_and_skips_open_ones(
        tmp_path: Path) -> None:
    RuleSet.load([write(tmp_path, """
        rules:
          - id: union
            from: [ev/v1/+/connector/+/prop, ev/v1/+/meter/+/prop]
            do: [{influx: {measurement: "{product}", fields: {a: "p['voltage']", b: "p['voltageL1']"}}}]
          - id: open
            from: [ev/v1/+/+/+/prop]
            do: [{influx: {measurement: "{product}", fields: {a: "p['anything']"}}}]
          - id: event-params
            from: [ev/v1/+/connector/+/event/fault]
            where: "p['active'] and p['code'] != ''"
            do: [{alarm: {type: fault, level: major}}]
          - id: presence
            from: [$presence]
            where: "p['online'] == false"
            do: [{alarm: {type: offline, level: major}}]
        """)])
    err = load_error(tmp_path, """
        rules:
          - id: wrong-event-param
            from: [ev/v1/+/connector/+/event/fault]
            where: "p['temperature'] > 3"
            do: [{alarm: {type: fault, level: major}}]
        """)
    assert err.rule == "wrong-event-param"
    assert "code" in err.message


def test_alarm_clear_needs_an_explicit_raise(tmp_path: Path) -> None:
    err = load_error(tmp_path, """
        rules:
          - id: clear-only
            from: [ev/v1/+/env_sensor/+/event/waterDetected]
            do:
              - alarm: {type: water, level: critical, clear: "p['active'] == false"}
        """)
    assert err.rule == "clear-only"
    assert "explicit 'raise'" in err.message


@pytest.mark.parametrize(("action", "expected"), [
    ('{webhook: {url: "ftp://example.invalid/x"}}', "not an http:// or https:// URL"),
    ('{republish: {topic: "ev/v1/{gw}/copy"}}', "under ev/"),
    ('{republish: {topic: "out/+/x"}}', "wildcard"),
    ('{invoke: {service: noSuchService}}', "no service 'noSuchService'"),
    ('{alarm: {type: x, level: urgent}}', "Input should be"),
    ('{alarm: {type: x, level: info, debounce: 5 minutes}}', "not a duration"),
    ('{alarm: {type: x, level: info, message: "temp {p[\'gunTemperature\']"}}', "unclosed"),
    ('{influx: {measurement: m, fields: {}}}', "at least 1"),
])
def test_invalid_actions(tmp_path: Path, action: str, expected: str) -> None:
    err = load_error(tmp_path, f"""
        rules:
          - id: bad-action
            from: [ev/v1/+/connector/+/prop]
            do:
              - {action}
        """)
    assert err.rule == "bad-action"
    assert err.line == 5
    assert expected in err.message


def test_billing_refuses_presence_sources(tmp_path: Path) -> None:
    err = load_error(tmp_path, """
        rules:
          - id: bill-presence
            from: [$presence]
            do: [{billing: {}}]
        """)
    assert err.rule == "bill-presence"
    assert "billing takes event and property messages" in err.message


def test_paths_files_dirs_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="no such rule file or directory"):
        RuleSet.load([tmp_path / "missing"])
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not yaml: [", encoding="utf-8")
    assert RuleSet.load([tmp_path]).rules == ()
    write(tmp_path, GOOD, "good.yaml")
    rules = RuleSet.load([tmp_path, tmp_path / "good.yaml"])  # the same file once
    assert [r.id for r in rules.rules] == ["first"]


def test_a_rule_id_is_a_safe_label(tmp_path: Path) -> None:
    err = load_error(tmp_path, GOOD.replace("id: first", "id: 'has space:colon'"))
    assert err.path == "rules[0].id"
    assert err.line == 2


def test_disabled_rules_are_validated_but_never_run(tmp_path: Path) -> None:
    text = GOOD.replace("description: a valid rule", "enabled: false")
    rules = RuleSet.load([write(tmp_path, text)])
    assert rules.enabled == 0
    assert rules.evaluate(*msg("ev/v1/g/connector/c/prop", {"power": 3.0})) == []
    err = load_error(tmp_path, text.replace("p['power']", "p['nope']"))
    assert err.rule == "first"
