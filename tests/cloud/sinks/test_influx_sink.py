"""InfluxSink: line protocol, and real writes to VictoriaMetrics read back through its API."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision
from prometheus_client import CollectorRegistry

from cloud.actions import Action, AlarmSignal, Lane, WritePoint
from cloud.sinks import (
    HandlerSink,
    InfluxConfig,
    InfluxSink,
    PermanentError,
    QueueConfig,
    RetryableError,
    Router,
    SinkQueue,
    line_of,
)
from tests.support.net import eventually, free_port
from tests.support.victoria import Victoria, victoria_binary

FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.2}


def point(n: int, ts_ms: int, **fields: Any) -> WritePoint:
    return WritePoint(rule="telemetry", key=f"p{n}", measurement="connector",
                      tags={"gw": "gwA", "device": f"c{n % 3}", "status": "charging"},
                      fields=fields or {"power": float(n)}, ts_ms=ts_ms)


def alarm(n: int) -> AlarmSignal:
    return AlarmSignal(rule="overTemp", key=f"a{n}", type="overTemp", dedupe=f"overTemp:{n}",
                       active=True, level="major", gw="gwA", product="connector",
                       device="c1", ts_ms=1)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def now_ms() -> int:
    return int(time.time() * 1000)


# -- line protocol ---------------------------------------------------------------------------


def test_line_protocol_has_ms_timestamp_tags_and_float_fields() -> None:
    wp = WritePoint(rule="r", key="k", measurement="meter",
                    tags={"gw": "site 1", "device": "m,1"},
                    fields={"energyImport": Decimal("12.3450"), "count": 7, "ok": True,
                            "note": 'say "hi"\nbye'}, ts_ms=1_700_000_000_123)
    assert line_of(wp) == ('meter,device=m\\,1,gw=site\\ 1 count=7,energyImport=12.345,'
                           'note="say \\"hi\\" bye",ok=true 1700000000123')


def test_non_finite_fields_are_left_out_and_a_point_without_fields_is_invalid() -> None:
    kept = WritePoint(rule="r", key="k", measurement="m", tags={},
                      fields={"a": float("nan"), "b": Decimal("Infinity"), "c": 1.5}, ts_ms=1)
    assert line_of(kept) == "m c=1.5 1"
    for bad in (
        WritePoint(rule="r", key="k", measurement="m", tags={}, fields={"a": float("nan")},
                   ts_ms=1),
        WritePoint(rule="r", key="k", measurement="m", tags={}, fields={}, ts_ms=1),
        WritePoint(rule="r", key="k", measurement="", tags={}, fields={"a": 1}, ts_ms=1),
        WritePoint(rule="r", key="k", measurement="#m", tags={}, fields={"a": 1}, ts_ms=1),
        WritePoint(rule="r", key="k", measurement="m", tags={}, fields={"a": 1}, ts_ms=-5),
        WritePoint(rule="r", key="k", measurement="m", tags={}, fields={"a": [1]},  # type: ignore[dict-item]
                   ts_ms=1),
    ):
        with pytest.raises(ValueError):
            line_of(bad)


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                max_size=12)
plain = st.text(st.characters(codec="utf-8", exclude_characters="\x00\n\r"), max_size=12)
values = st.one_of(st.booleans(), st.integers(-(2**53), 2**53),
                   st.floats(allow_nan=True, allow_infinity=True), plain,
                   st.decimals(places=4, allow_nan=False, allow_infinity=False))


@settings(max_examples=300, deadline=None)
@given(measurement=names.filter(lambda m: not m.startswith("#")),
       tags=st.dictionaries(names, plain, max_size=4),
       fields=st.dictionaries(names, values, min_size=1, max_size=5),
       ts=st.integers(0, 2**62))
def test_line_protocol_is_what_influxdb_client_point_writes(
        measurement: str, tags: dict[str, str], fields: dict[str, Any], ts: int) -> None:
    wp = WritePoint(rule="r", key="k", measurement=measurement, tags=tags, fields=fields,
                    ts_ms=ts)
    reference: Any = Point(measurement)
    for name, tag in tags.items():
        reference.tag(name, tag)
    for name, value in fields.items():  # ints and decimals go out as floats
        as_float = float(value) if isinstance(value, int | Decimal) and \
            not isinstance(value, bool) else value
        reference.field(name, as_float)
    reference.time(ts, WritePrecision.MS)
    expected = reference.to_line_protocol()
    if not expected:
        with pytest.raises(ValueError):
            line_of(wp)
    else:
        assert line_of(wp) == expected


# -- against a real server -------------------------------------------------------------------


async def test_points_are_written_and_read_back_with_values_tags_and_timestamps(
        victoria: Victoria) -> None:
    registry = CollectorRegistry()
    config = InfluxConfig(url=victoria.url, batch_size=4, flush_interval=0.05)
    queue = SinkQueue("telemetry", InfluxSink(config), config.queue(), registry)
    task = asyncio.create_task(queue.run())
    base = now_ms() - 60_000
    points = [point(n, base + n * 1000, power=Decimal(f"{n}.25"), statusCode=4,
                    gunTemperature=30.5 + n) for n in range(9)]
    env = WritePoint(rule="env", key="e1", measurement="env_sensor",
                     tags={"gw": "gwA", "device": "t1"},
                     fields={"temperature": 21.5, "smoke": False, "water": True}, ts_ms=base)
    try:
        await queue.put_many([*points, env])
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total",
                                        sink="telemetry") == 10, timeout=30)
    finally:
        await queue.drain(30)
        await task

    async def exported() -> list[dict[str, Any]] | None:
        await victoria.force_flush()
        series = await victoria.export('{__name__="connector_power"}', start_ms=0)
        return series if sum(len(s["values"]) for s in series) == 9 else None

    series = await eventually(exported, timeout=30, interval=0.5)
    got = {(s["metric"]["device"], ts): v for s in series
           for ts, v in zip(s["timestamps"], s["values"], strict=True)}
    assert got == {(f"c{n % 3}", base + n * 1000): n + 0.25 for n in range(9)}
    assert all(s["metric"]["gw"] == "gwA" and s["metric"]["status"] == "charging"
               for s in series)
    temps = await victoria.export('{__name__="connector_gunTemperature", device="c1"}',
                                  start_ms=0)
    assert sorted(temps[0]["values"]) == [31.5, 34.5, 37.5]
    env_series = {}
    for name in ("temperature", "smoke", "water"):
        found = await eventually(
            lambda name=name: victoria.export(f'{{__name__="env_sensor_{name}"}}', start_ms=0),
            timeout=30, interval=0.5)
        env_series[name] = (found[0]["values"], found[0]["timestamps"], found[0]["metric"])
    assert env_series["temperature"][:2] == ([21.5], [base])
    assert env_series["smoke"][0] == [0] and env_series["water"][0] == [1]
    assert env_series["temperature"][2] == {"__name__": "env_sensor_temperature",
                                            "gw": "gwA", "device": "t1"}
    query = await victoria.query('sum by (gw) (connector_statusCode)', at_ms=base + 8000)
    assert [(q["metric"], q["value"][1]) for q in query] == [({"gw": "gwA"}, "12")]


async def test_an_invalid_point_is_dropped_without_holding_back_its_batch(
        victoria: Victoria) -> None:
    registry = CollectorRegistry()
    queue = SinkQueue("telemetry", InfluxSink(InfluxConfig(url=victoria.url)),
                      QueueConfig(batch_size=3, max_delay=0.05), registry)
    task = asyncio.create_task(queue.run())
    ts = now_ms() - 1000
    bad = WritePoint(rule="r", key="bad", measurement="connector", tags={"gw": "gwA"},
                     fields={"power": float("nan")}, ts_ms=ts)
    try:
        await queue.put_many([point(1, ts), bad, point(2, ts)])
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total",
                                        sink="telemetry") == 2, timeout=30)
        assert metric(registry, "voltmesh_sink_dropped_total", sink="telemetry",
                      reason="permanent") == 1
    finally:
        await queue.drain(30)
        await task

    async def both() -> bool:
        await victoria.force_flush()
        return await victoria.count('{__name__="connector_power"}') == 2

    await eventually(both, timeout=30, interval=0.5)


async def test_server_answers_are_classified(scripted_http: Any) -> None:
    sink = InfluxSink(InfluxConfig(url=scripted_http.url, bucket="b1", org="o1", token="t0k"))
    batch: list[Action] = [point(1, 1000)]
    try:
        scripted_http.answer((429, {"Retry-After": "7"}), 503, 400, 401, 204)
        with pytest.raises(RetryableError) as too_many:
            await sink(batch)
        assert too_many.value.retry_after == 7.0
        with pytest.raises(RetryableError):
            await sink(batch)
        with pytest.raises(PermanentError) as bad_data:
            await sink(batch)
        assert bad_data.value.isolate is True
        with pytest.raises(PermanentError) as bad_token:
            await sink(batch)
        assert bad_token.value.isolate is False
        await sink(batch)
    finally:
        await sink.aclose()
    first = scripted_http.requests[0]
    assert first.method == "POST" and first.path == "/api/v2/write"
    assert first.headers["authorization"] == "Token t0k"
    assert first.body == b"connector,device=c1,gw=gwA,status=charging power=1 1000"
    assert len(scripted_http.requests) == 5


async def test_dead_influx_is_retried_telemetry_stays_bounded_and_alarms_keep_flowing(
        tmp_path: Path) -> None:
    if victoria_binary() is None:
        pytest.skip("victoria-metrics is not installed (run scripts/install-system-deps.sh)")
    port = free_port()  # nobody listens here yet
    config = InfluxConfig(url=f"http://127.0.0.1:{port}", batch_size=10, flush_interval=0,
                          max_queue=50, in_flight=1, timeout=5, **FAST)
    registry = CollectorRegistry()
    alarms: list[str] = []
    written_when_alarmed: list[float] = []

    async def handle(batch: list[Action]) -> None:
        alarms.extend(a.key for a in batch)
        written_when_alarmed.append(metric(registry, "voltmesh_sink_written_total",
                                           sink="telemetry"))

    router = Router({
        Lane.TELEMETRY: SinkQueue("telemetry", InfluxSink(config), config.queue(), registry),
        Lane.ALARMS: SinkQueue("alarms", HandlerSink(handle),
                               QueueConfig(max_delay=0, **FAST), registry),
    }, registry)
    task = asyncio.create_task(router.run())
    victoria = Victoria(tmp_path / "victoria", port=port)
    base = now_ms() - 120_000
    try:
        for round_ in range(8):
            await router.dispatch([point(round_ * 20 + n, base + round_ * 20 + n)
                                   for n in range(20)] + [alarm(round_)])
            # every alarm is handled while InfluxDB is still down
            await eventually(lambda r=round_: f"a{r}" in alarms, timeout=30)
        await eventually(lambda: metric(registry, "voltmesh_sink_failed_batches_total",
                                        sink="telemetry", error="retryable") >= 2, timeout=30)
        assert alarms == [f"a{n}" for n in range(8)]
        assert written_when_alarmed == [0.0] * 8
        telemetry = router.queues[Lane.TELEMETRY]
        assert telemetry.depth == 50  # bounded
        # 160 queued: 10 in the batch being retried, the newest 50 waiting, the rest dropped
        assert metric(registry, "voltmesh_sink_dropped_total", sink="telemetry",
                      reason="queue_full") == 100
        assert metric(registry, "voltmesh_sink_retried_total", sink="telemetry") >= 10
        assert metric(registry, "voltmesh_sink_written_total", sink="telemetry") == 0

        victoria.start()  # InfluxDB comes back on the same port
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total",
                                        sink="telemetry") == 60, timeout=60)
    finally:
        await router.drain(30)
        await task

    try:
        async def stored() -> list[dict[str, Any]] | None:
            await victoria.force_flush()
            series = await victoria.export('{__name__="connector_power"}', start_ms=0)
            return series if sum(len(s["values"]) for s in series) == 60 else None

        series = await eventually(stored, timeout=30, interval=0.5)
        values = sorted(v for s in series for v in s["values"])
        assert values == [float(n) for n in [*range(10), *range(110, 160)]]
    finally:
        victoria.stop()
