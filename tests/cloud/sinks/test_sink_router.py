"""Router: lanes to queues, no_sink counted, run and drain every lane."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from cloud.actions import Action, AlarmSignal, BillSessionEvent, Lane, WritePoint
from cloud.sinks import HandlerSink, QueueConfig, Router, SinkQueue
from tests.support.net import eventually


def bill(n: int) -> BillSessionEvent:
    return BillSessionEvent(rule="billing", key=f"b{n}", gw="gwA", product="connector",
                            device="c1", name="sessionEnded", params={}, msg_id=f"m{n}",
                            ts_ms=n)


def alarm(n: int) -> AlarmSignal:
    return AlarmSignal(rule="a", key=f"a{n}", type="t", dedupe="d", active=True, level="major",
                       gw="gwA", product="connector", device="c1", ts_ms=n)


def point(n: int) -> WritePoint:
    return WritePoint(rule="t", key=f"p{n}", measurement="connector", tags={},
                      fields={"power": 1.0}, ts_ms=n)


async def test_actions_go_to_their_lane_and_lanes_without_a_sink_are_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    seen: dict[str, list[str]] = {"billing": [], "alarms": []}

    def recorder(lane: str) -> HandlerSink:
        async def handle(batch: list[Action]) -> None:
            seen[lane].extend(a.key for a in batch)
        return HandlerSink(handle)

    router = Router({
        Lane.BILLING: SinkQueue("billing", recorder("billing"), QueueConfig(max_delay=0),
                                registry),
        Lane.ALARMS: SinkQueue("alarms", recorder("alarms"), QueueConfig(max_delay=0),
                               registry),
    }, registry)
    task = asyncio.create_task(router.run())
    with caplog.at_level(logging.WARNING, logger="voltmesh.cloud.sinks"):
        await router.dispatch([bill(1), alarm(1), point(1), bill(2), point(2), alarm(2)])
    await eventually(lambda: seen == {"billing": ["b1", "b2"], "alarms": ["a1", "a2"]})
    assert registry.get_sample_value("voltmesh_sink_dropped_total",
                                     {"sink": "telemetry", "reason": "no_sink"}) == 2
    assert sum("no sink configured for lane telemetry" in r.getMessage()
               for r in caplog.records) == 1  # logged once, then only counted
    assert await router.drain(10) == 0
    await asyncio.wait_for(task, 10)
    await router.dispatch([bill(3)])  # after shutdown: counted as closed, not raised
    assert registry.get_sample_value("voltmesh_sink_dropped_total",
                                     {"sink": "billing", "reason": "closed"}) == 1


async def test_cancelling_run_drains_every_lane() -> None:
    registry = CollectorRegistry()
    done: list[str] = []

    async def handle(batch: list[Action]) -> None:
        done.extend(a.key for a in batch)

    slow = QueueConfig(batch_size=100, max_delay=60)  # would wait a minute to fill a batch
    router = Router({
        Lane.BILLING: SinkQueue("billing", HandlerSink(handle), slow, registry),
        Lane.ALARMS: SinkQueue("alarms", HandlerSink(handle), slow, registry),
    }, registry)
    task = asyncio.create_task(router.run())
    await router.dispatch([bill(1), alarm(1)])
    await asyncio.sleep(0.05)
    assert done == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(done) == ["a1", "b1"]


async def test_handler_sink_drops_actions_of_a_type_it_does_not_accept() -> None:
    registry = CollectorRegistry()
    handled: list[str] = []

    async def handle(batch: list[Action]) -> None:
        assert all(isinstance(a, BillSessionEvent) for a in batch)
        handled.extend(a.key for a in batch)

    queue = SinkQueue("billing", HandlerSink(handle, accepts=(BillSessionEvent,)),
                      QueueConfig(max_delay=0.05), registry)
    await queue.put_many([bill(1), alarm(1), bill(2)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: handled == ["b1", "b2"])
    await eventually(lambda: registry.get_sample_value(
        "voltmesh_sink_dropped_total", {"sink": "billing", "reason": "permanent"}) == 1)
    await queue.drain(10)
    await task
