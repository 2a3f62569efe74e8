"""RuleEngine: hot reload (valid swap, invalid keeps the old set), metrics, concurrent evaluate."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from cloud.actions import WritePoint
from cloud.rules import RuleEngine, RulesConfig, RulesFileError
from tests.cloud.rules.rules_support import msg
from tests.support.net import eventually

PROP = "ev/v1/gw-1/connector/c-1/prop"


def rules_text(version: int) -> str:
    return f"""
rules:
  - id: points-v{version}
    from: [ev/v1/+/connector/+/prop]
    do:
      - influx: {{measurement: "v{version}", fields: {{power: "p['power']"}}}}
"""


def put(path: Path, text: str) -> None:
    """Replace a rule file atomically (what the docs recommend operators do)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def measurements(engine: RuleEngine, n: int = 1) -> list[str]:
    out = engine.evaluate(*msg(PROP, {"power": 1.0}, msg_id=f"01MSG{n:021d}"))
    return [a.measurement for a in out if isinstance(a, WritePoint)]


def test_an_invalid_set_at_start_raises(tmp_path: Path) -> None:
    put(tmp_path / "r.yaml", "rules: [{id: x}]")
    with pytest.raises(RulesFileError):
        RuleEngine([tmp_path], CollectorRegistry())


async def test_a_changed_valid_set_is_swapped_in(tmp_path: Path) -> None:
    put(tmp_path / "r.yaml", rules_text(1))
    registry = CollectorRegistry()
    engine = RuleEngine([tmp_path], registry, reload_interval=0.05)
    assert sample(registry, "voltmesh_rules_loaded") == 1
    assert measurements(engine) == ["v1"]
    task = asyncio.create_task(engine.run())
    try:
        put(tmp_path / "r.yaml", rules_text(2))
        await eventually(lambda: measurements(engine) == ["v2"], timeout=30)
        put(tmp_path / "more.yaml", rules_text(3))  # a new file counts as a change
        await eventually(lambda: measurements(engine) == ["v3", "v2"], timeout=30)  # file order
        assert sample(registry, "voltmesh_rules_loaded") == 2
        (tmp_path / "more.yaml").unlink()  # so does a removed one
        await eventually(lambda: measurements(engine) == ["v2"], timeout=30)
    finally:
        task.cancel()
    assert sample(registry, "voltmesh_rules_reloads_total", result="ok") == 3
    assert sample(registry, "voltmesh_rules_reloads_total", result="failed") == 0
    assert sample(registry, "voltmesh_rules_matches_total", rule="points-v2") >= 2
    assert sample(registry, "voltmesh_rules_actions_total", lane="telemetry") >= 5


async def test_an_invalid_set_keeps_the_old_one_is_logged_once_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    put(tmp_path / "r.yaml", rules_text(1))
    registry = CollectorRegistry()
    engine = RuleEngine([tmp_path], registry, reload_interval=0.02)
    caplog.set_level(logging.ERROR, logger="voltmesh.cloud.rules")
    task = asyncio.create_task(engine.run())
    try:
        put(tmp_path / "r.yaml", rules_text(2).replace("p['power']", "p['powr']"))
        await eventually(lambda: engine.last_error is not None, timeout=30)
        await asyncio.sleep(0.3)  # many more polls: the same broken files are not re-read
        assert measurements(engine) == ["v1"]
        assert sample(registry, "voltmesh_rules_reloads_total", result="failed") == 1
        errors = [r.getMessage() for r in caplog.records]
        assert len(errors) == 1
        assert "keeping the 1 rules" in errors[0] and "r.yaml:6" in errors[0]
        assert "points-v2" in errors[0]
        put(tmp_path / "r.yaml", rules_text(2))
        await eventually(lambda: measurements(engine) == ["v2"], timeout=30)
        assert engine.last_error is None
    finally:
        task.cancel()
    assert sample(registry, "voltmesh_rules_reloads_total", result="ok") == 1


async def test_no_message_is_lost_or_evaluated_twice_while_reloading(tmp_path: Path) -> None:
    put(tmp_path / "r.yaml", rules_text(0))
    engine = RuleEngine([tmp_path], CollectorRegistry(), reload_interval=0.01)
    stop = threading.Event()
    results: list[list[str]] = []

    def evaluate_forever() -> None:  # a worker evaluating messages back to back
        n = 0
        while not stop.is_set():
            n += 1
            results.append(measurements(engine, n))

    worker = threading.Thread(target=evaluate_forever, daemon=True)
    task = asyncio.create_task(engine.run())
    worker.start()
    try:
        for version in range(1, 6):
            put(tmp_path / "r.yaml", rules_text(version))
            await eventually(lambda v=version: engine.ruleset.rules[0].id == f"points-v{v}",
                             timeout=30)
        # the event loop evaluates too, between reload checks
        for n in range(200):
            results.append(measurements(engine, 1_000_000 + n))
            await asyncio.sleep(0)
    finally:
        stop.set()
        worker.join(timeout=30)
        task.cancel()
    assert len(results) > 200
    assert all(len(r) == 1 for r in results), [r for r in results if len(r) != 1][:5]
    seen = {r[0] for r in results}
    assert {"v0", "v5"} <= seen


def test_rules_config() -> None:
    config = RulesConfig()
    assert config.paths == ["config/rules"] and config.reload_interval == 2.0
    assert RulesConfig(paths=["/abs", "rel"]).resolved("/etc/voltmesh") == \
        [Path("/abs"), Path("/etc/voltmesh/rel")]
    with pytest.raises(ValueError, match="Extra inputs"):
        RulesConfig.model_validate({"paths": [], "reload": 1})
    with pytest.raises(ValueError, match="greater than 0"):
        RulesConfig(reload_interval=0)
