"""WebhookSink against a real local HTTP server; a dead webhook does not hold back InfluxDB."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from cloud.actions import Lane, PostWebhook, WritePoint
from cloud.sinks import (
    InfluxConfig,
    InfluxSink,
    Router,
    SinkQueue,
    WebhookSink,
    WebhooksQueueConfig,
)
from tests.support.net import eventually, free_port
from tests.support.victoria import Victoria

FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.2}


def hook(url: str, n: int = 1, **kw: Any) -> PostWebhook:
    return PostWebhook(rule="notify", key=f"msg{n}:notify:0", url=url,
                       body={"session": f"S{n}", "amount": Decimal("12.50"), "tiers": ("a",)},
                       **kw)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"sink": "webhooks", **labels}) or 0.0


def webhooks(registry: CollectorRegistry, **config: Any) -> SinkQueue:
    return SinkQueue("webhooks", WebhookSink(), WebhooksQueueConfig(**{**FAST, **config}),
                     registry)


async def test_500_500_200_is_delivered_once_with_the_same_idempotency_key(
        scripted_http: Any) -> None:
    scripted_http.answer(500, 500, 200)
    registry = CollectorRegistry()
    queue = webhooks(registry)
    task = asyncio.create_task(queue.run())
    try:
        await queue.put(hook(f"{scripted_http.url}/hooks/charging", headers={"X-Tenant": "t1"}))
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total") == 1,
                         timeout=30)
        await asyncio.sleep(0.3)  # nothing more arrives
    finally:
        await queue.drain(10)
        await task
    requests = scripted_http.requests
    assert len(requests) == 3
    assert {r.headers["idempotency-key"] for r in requests} == {"msg1:notify:0"}
    assert all(r.method == "POST" and r.path == "/hooks/charging" for r in requests)
    assert requests[0].headers["content-type"] == "application/json"
    assert requests[0].headers["x-tenant"] == "t1"
    assert json.loads(requests[0].body) == {"session": "S1", "amount": "12.50", "tiers": ["a"]}
    assert metric(registry, "voltmesh_sink_retried_total") == 2
    assert metric(registry, "voltmesh_sink_failed_batches_total", error="retryable") == 2


async def test_a_4xx_is_permanent_and_429_honours_retry_after(scripted_http: Any) -> None:
    scripted_http.answer(404, path="/gone")
    scripted_http.answer((429, {"Retry-After": "0.5"}), 200, path="/busy")
    registry = CollectorRegistry()
    queue = webhooks(registry)
    task = asyncio.create_task(queue.run())
    try:
        await queue.put(hook(f"{scripted_http.url}/gone", 1))
        await queue.put(hook(f"{scripted_http.url}/busy", 2))
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total") == 1
                         and metric(registry, "voltmesh_sink_dropped_total",
                                    reason="permanent") == 1, timeout=30)
    finally:
        await queue.drain(10)
        await task
    assert len(scripted_http.to("/gone")) == 1  # never retried
    busy = scripted_http.to("/busy")
    assert len(busy) == 2
    assert busy[1].at - busy[0].at >= 0.5  # waited as asked (longer than our own backoff)


async def test_connection_refused_and_a_hanging_server_are_retried_then_given_up(
        scripted_http: Any) -> None:
    scripted_http.answer(-1)  # accepts, reads, never answers
    registry = CollectorRegistry()
    queue = webhooks(registry, max_attempts=2)
    task = asyncio.create_task(queue.run())
    dead = f"http://127.0.0.1:{free_port()}/x"
    try:
        await queue.put(hook(dead, 1))
        await queue.put(hook(f"{scripted_http.url}/slow", 2, timeout_s=0.3))
        await eventually(lambda: metric(registry, "voltmesh_sink_dropped_total",
                                        reason="max_attempts") == 2, timeout=30)
    finally:
        await queue.drain(10)
        await task
    assert len(scripted_http.to("/slow")) == 2
    assert metric(registry, "voltmesh_sink_retried_total") == 2


async def test_a_batch_of_webhooks_is_resolved_per_action(scripted_http: Any) -> None:
    scripted_http.answer(200, path="/ok")
    scripted_http.answer(400, path="/bad")
    scripted_http.answer(503, 200, path="/flaky")
    registry = CollectorRegistry()
    queue = webhooks(registry, batch_size=3, max_delay=0.05)
    await queue.put_many([hook(f"{scripted_http.url}{p}", n)
                          for n, p in enumerate(["/ok", "/bad", "/flaky"])])
    task = asyncio.create_task(queue.run())
    try:
        await eventually(lambda: metric(registry, "voltmesh_sink_written_total") == 2,
                         timeout=30)
    finally:
        await queue.drain(10)
        await task
    assert [len(scripted_http.to(p)) for p in ("/ok", "/bad", "/flaky")] == [1, 1, 2]
    assert metric(registry, "voltmesh_sink_dropped_total", reason="permanent") == 1
    assert metric(registry, "voltmesh_sink_failed_batches_total", error="partial") == 1


async def test_a_dead_webhook_does_not_delay_influx_writes(victoria: Victoria,
                                                           scripted_http: Any) -> None:
    scripted_http.answer(-1)  # the third party hangs
    registry = CollectorRegistry()
    influx = InfluxConfig(url=victoria.url, batch_size=10, flush_interval=0.05)
    router = Router({
        Lane.TELEMETRY: SinkQueue("telemetry", InfluxSink(influx), influx.queue(), registry),
        Lane.WEBHOOKS: webhooks(registry, in_flight=2),
    }, registry)
    task = asyncio.create_task(router.run())
    base = int(time.time() * 1000) - 60_000
    try:
        for n in range(30):
            await router.dispatch([
                hook(f"{scripted_http.url}/hang", n, timeout_s=30),
                WritePoint(rule="t", key=f"p{n}", measurement="meter",
                           tags={"gw": "gwA", "device": "m1"}, fields={"power": float(n)},
                           ts_ms=base + n),
            ])
        # every point is written while both webhook slots still wait on the dead endpoint
        await eventually(lambda: registry.get_sample_value(
            "voltmesh_sink_written_total", {"sink": "telemetry"}) == 30, timeout=30)
        assert metric(registry, "voltmesh_sink_written_total") == 0
        assert router.queues[Lane.WEBHOOKS].in_flight == 2
        assert router.queues[Lane.WEBHOOKS].depth == 28
    finally:
        await router.drain(1)
        await task

    async def stored() -> bool:
        await victoria.force_flush()
        return await victoria.count('{__name__="meter_power"}') == 30

    await eventually(stored, timeout=30, interval=0.5)
    assert metric(registry, "voltmesh_sink_dropped_total", reason="shutdown") == 30
