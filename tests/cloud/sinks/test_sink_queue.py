"""SinkQueue: batching, overflow policies, retries, drops by reason, idempotency keys, drain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cloud.actions import Action, AlarmSignal
from cloud.sinks import (
    Overflow,
    PartialWriteError,
    PermanentError,
    QueueConfig,
    RetryableError,
    SinkClosed,
    SinkQueue,
)
from tests.support.net import eventually

FAST: dict[str, Any] = {"backoff_initial": 0.01, "backoff_max": 0.05}


def signal(n: int | str) -> AlarmSignal:
    return AlarmSignal(rule="r", key=f"k{n}", type="overTemp", dedupe=f"overTemp:{n}", active=True,
                       level="major", gw="gwA", product="connector", device=f"c{n}", ts_ms=1)


def keys(batch: list[Action]) -> list[str]:
    return [a.key for a in batch]


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"sink": "t", **labels}) or 0.0


class Recorder:
    """A writer that records batches and fails as told by ``plan(batch) -> exception | None``."""

    def __init__(self, plan: Callable[[list[Action]], BaseException | None] | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.plan = plan
        self.gate = gate
        self.calls: list[list[str]] = []
        self.written: list[str] = []
        self.active = 0
        self.max_active = 0
        self.closed = False

    async def __call__(self, batch: list[Action]) -> None:
        self.calls.append(keys(batch))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            error = self.plan(batch) if self.plan else None
            if error is not None:
                raise error
            self.written.extend(keys(batch))
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        self.closed = True


def make(writer: Callable[[list[Action]], Awaitable[None]], registry: CollectorRegistry,
         **config: Any) -> SinkQueue:
    return SinkQueue("t", writer, QueueConfig(**{**FAST, **config}), registry)


async def stopped(queue: SinkQueue, task: asyncio.Task[None], timeout: float = 30) -> int:
    lost = await queue.drain(timeout)
    await asyncio.wait_for(task, timeout)
    return lost


async def test_batches_fill_to_batch_size_and_a_partial_batch_goes_after_max_delay() -> None:
    registry = CollectorRegistry()
    writer = Recorder()
    queue = make(writer, registry, batch_size=3, max_delay=0.2)
    for n in range(7):
        assert await queue.put(signal(n))
        assert metric(registry, "voltmesh_sink_queue_depth") == n + 1  # read when scraped
    assert queue.depth == 7
    task = asyncio.create_task(queue.run())
    await eventually(lambda: len(writer.written) == 7)
    assert writer.calls == [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k6"]]
    assert metric(registry, "voltmesh_sink_queued_total") == 7
    assert metric(registry, "voltmesh_sink_written_total") == 7
    assert metric(registry, "voltmesh_sink_queue_depth") == 0
    assert await stopped(queue, task) == 0
    assert writer.closed


async def test_drop_oldest_keeps_the_newest_and_counts_every_drop() -> None:
    registry = CollectorRegistry()
    writer = Recorder()
    queue = make(writer, registry, max_items=5, batch_size=10, max_delay=0,
                 overflow=Overflow.DROP_OLDEST)
    for n in range(20):
        assert await queue.put(signal(n))  # never waits
    assert queue.depth == 5
    assert metric(registry, "voltmesh_sink_queue_depth") == 5
    assert metric(registry, "voltmesh_sink_dropped_total", reason="queue_full") == 15
    task = asyncio.create_task(queue.run())
    await eventually(lambda: len(writer.written) == 5)
    assert writer.written == [f"k{n}" for n in range(15, 20)]
    await stopped(queue, task)


async def test_block_makes_the_producer_wait_and_loses_nothing() -> None:
    registry = CollectorRegistry()
    writer = Recorder()
    queue = make(writer, registry, max_items=3, batch_size=2, max_delay=0)
    for n in range(3):
        await queue.put(signal(n))
    fourth = asyncio.create_task(queue.put(signal(3)))
    await asyncio.sleep(0.2)
    assert not fourth.done()  # full: the producer waits
    assert queue.depth == 3
    assert queue.offer(signal(99)) is None  # would wait: nothing done
    assert queue.depth == 3
    assert metric(registry, "voltmesh_sink_queued_total") == 3

    async def produce() -> None:
        for n in range(4, 60):
            await queue.put(signal(n))

    producer = asyncio.create_task(produce())
    task = asyncio.create_task(queue.run())
    await asyncio.wait_for(asyncio.gather(fourth, producer), 30)
    await eventually(lambda: len(writer.written) == 60)
    assert writer.written == [f"k{n}" for n in range(60)]  # in order, none lost
    assert registry.get_sample_value("voltmesh_sink_dropped_total",
                                     {"sink": "t", "reason": "queue_full"}) is None
    await stopped(queue, task)


async def test_retryable_failures_are_retried_with_backoff_and_counted() -> None:
    registry = CollectorRegistry()
    failures = iter([RetryableError("down"), RetryableError("down")])
    writer = Recorder(lambda batch: next(failures, None))
    queue = make(writer, registry, batch_size=2, max_delay=0)
    await queue.put_many([signal(1), signal(2)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: writer.written == ["k1", "k2"])
    assert writer.calls == [["k1", "k2"]] * 3
    assert metric(registry, "voltmesh_sink_retried_total") == 4
    assert metric(registry, "voltmesh_sink_failed_batches_total", error="retryable") == 2
    assert metric(registry, "voltmesh_sink_written_total") == 2
    assert metric(registry, "voltmesh_sink_write_seconds_count") == 3
    await stopped(queue, task)


async def test_max_attempts_drops_and_counts() -> None:
    registry = CollectorRegistry()
    writer = Recorder(lambda batch: RetryableError("still down"))
    queue = make(writer, registry, batch_size=5, max_delay=0, max_attempts=3)
    await queue.put_many([signal(1), signal(2)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: metric(registry, "voltmesh_sink_dropped_total",
                                    reason="max_attempts") == 2)
    assert len(writer.calls) == 3
    assert metric(registry, "voltmesh_sink_written_total") == 0
    await stopped(queue, task)


async def test_ttl_drops_what_waited_too_long() -> None:
    registry = CollectorRegistry()
    writer = Recorder(lambda batch: RetryableError("still down"))
    queue = make(writer, registry, batch_size=1, max_delay=0, ttl=0.3)
    await queue.put(signal(1))
    task = asyncio.create_task(queue.run())
    await eventually(lambda: metric(registry, "voltmesh_sink_dropped_total", reason="ttl") == 1)
    assert len(writer.calls) >= 1
    await stopped(queue, task)


async def test_ttl_of_gives_an_action_its_own_deadline_in_the_queue() -> None:
    registry = CollectorRegistry()
    writer = Recorder()
    queue = SinkQueue("t", writer, QueueConfig(max_delay=0), registry,
                      ttl_of=lambda a: 0.05 if a.key == "k1" else None)
    await queue.put_many([signal(1), signal(2)])
    await asyncio.sleep(0.3)  # k1 expires while nothing runs the queue
    task = asyncio.create_task(queue.run())
    await eventually(lambda: writer.written == ["k2"])
    assert metric(registry, "voltmesh_sink_dropped_total", reason="ttl") == 1
    await stopped(queue, task)


async def test_a_permanent_failure_isolates_the_bad_action_and_writes_its_neighbours() -> None:
    registry = CollectorRegistry()
    writer = Recorder(lambda batch: PermanentError("bad data") if "kbad" in keys(batch)
                      else None)
    queue = make(writer, registry, batch_size=3, max_delay=0)
    await queue.put_many([signal(1), signal("bad"), signal(3)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: metric(registry, "voltmesh_sink_dropped_total",
                                    reason="permanent") == 1)
    await eventually(lambda: writer.written == ["k1", "k3"])
    assert writer.calls == [["k1", "kbad", "k3"], ["k1"], ["kbad"], ["k3"]]
    assert metric(registry, "voltmesh_sink_written_total") == 2
    await stopped(queue, task)


async def test_a_permanent_failure_not_about_the_data_drops_the_batch_at_once() -> None:
    registry = CollectorRegistry()
    writer = Recorder(lambda batch: PermanentError("401 bad token", isolate=False))
    queue = make(writer, registry, batch_size=3, max_delay=0)
    await queue.put_many([signal(1), signal(2), signal(3)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: metric(registry, "voltmesh_sink_dropped_total",
                                    reason="permanent") == 3)
    assert len(writer.calls) == 1
    await stopped(queue, task)


async def test_partial_failure_retries_some_drops_others_counts_the_rest_written() -> None:
    registry = CollectorRegistry()
    first = True

    def plan(batch: list[Action]) -> BaseException | None:
        nonlocal first
        if first:
            first = False
            return PartialWriteError("mixed", retry=[batch[1]], failed=[batch[2]],
                                     reasons={id(batch[2]): "rejected"})
        return None

    writer = Recorder(plan)
    queue = make(writer, registry, batch_size=3, max_delay=0)
    await queue.put_many([signal(1), signal(2), signal(3)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: metric(registry, "voltmesh_sink_written_total") == 2)
    assert writer.calls == [["k1", "k2", "k3"], ["k2"]]
    assert metric(registry, "voltmesh_sink_dropped_total", reason="permanent") == 1
    assert metric(registry, "voltmesh_sink_retried_total") == 1
    await stopped(queue, task)


async def test_an_unexpected_writer_error_is_retried_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    failures = iter([KeyError("bug")])
    writer = Recorder(lambda batch: next(failures, None))
    queue = make(writer, registry, max_delay=0)
    await queue.put(signal(1))
    with caplog.at_level(logging.ERROR, logger="voltmesh.cloud.sinks"):
        task = asyncio.create_task(queue.run())
        await eventually(lambda: writer.written == ["k1"])
    assert metric(registry, "voltmesh_sink_failed_batches_total", error="unexpected") == 1
    assert any("unexpected" in r.getMessage() and r.exc_info for r in caplog.records)
    await stopped(queue, task)


async def test_a_recent_key_is_not_done_twice() -> None:
    registry = CollectorRegistry()
    writer = Recorder()
    queue = make(writer, registry, max_delay=0, recent_keys=2)
    assert await queue.put(signal(1))
    assert not await queue.put(signal(1))  # still queued
    task = asyncio.create_task(queue.run())
    await eventually(lambda: writer.written == ["k1"])
    assert not await queue.put(signal(1))  # written moments ago: redelivery ignored
    assert metric(registry, "voltmesh_sink_duplicates_total") == 2
    # the recent-keys set is bounded: once k1 is pushed out, it is accepted again
    for n in (2, 3):
        await queue.put(signal(n))
    await eventually(lambda: len(writer.written) == 3)
    assert await queue.put(signal(1))
    await eventually(lambda: writer.written == ["k1", "k2", "k3", "k1"])
    await stopped(queue, task)


async def test_a_dropped_action_can_come_again() -> None:
    registry = CollectorRegistry()
    writer = Recorder(lambda batch: PermanentError("no"))
    queue = make(writer, registry, max_delay=0)
    await queue.put(signal(1))
    task = asyncio.create_task(queue.run())
    await eventually(lambda: metric(registry, "voltmesh_sink_dropped_total",
                                    reason="permanent") == 1)
    assert await queue.put(signal(1))  # not done, so not a duplicate
    await stopped(queue, task)


async def test_in_flight_limits_concurrent_batches() -> None:
    registry = CollectorRegistry()
    gate = asyncio.Event()
    writer = Recorder(gate=gate)
    queue = make(writer, registry, batch_size=1, max_delay=0, in_flight=2)
    await queue.put_many([signal(n) for n in range(6)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: writer.active == 2)
    await asyncio.sleep(0.2)
    assert writer.active == 2 and queue.in_flight == 2 and queue.depth == 4
    assert metric(registry, "voltmesh_sink_in_flight") == 2
    gate.set()
    await eventually(lambda: len(writer.written) == 6)
    assert writer.max_active == 2
    await stopped(queue, task)


async def test_drain_writes_everything_then_refuses_new_actions() -> None:
    registry = CollectorRegistry()
    writer = Recorder()
    queue = make(writer, registry, batch_size=10, max_delay=60)  # would wait a minute
    task = asyncio.create_task(queue.run())
    await queue.put_many([signal(n) for n in range(5)])
    assert await queue.drain(30) == 0
    await asyncio.wait_for(task, 30)
    assert writer.written == [f"k{n}" for n in range(5)]
    with pytest.raises(SinkClosed):
        await queue.put(signal(9))
    assert metric(registry, "voltmesh_sink_dropped_total", reason="closed") == 1
    assert writer.closed


async def test_drain_gives_up_after_its_timeout_and_counts_what_is_lost() -> None:
    registry = CollectorRegistry()
    writer = Recorder(lambda batch: RetryableError("dead"))
    queue = make(writer, registry, batch_size=2, max_delay=0, backoff_initial=0.05,
                 backoff_max=0.1)
    await queue.put_many([signal(n) for n in range(5)])
    task = asyncio.create_task(queue.run())
    await eventually(lambda: writer.calls)
    lost = await queue.drain(0.5)
    await asyncio.wait_for(task, 30)
    assert lost == 5
    assert metric(registry, "voltmesh_sink_dropped_total", reason="shutdown") == 5
    assert metric(registry, "voltmesh_sink_written_total") == 0


async def test_a_blocked_producer_is_released_by_a_drain() -> None:
    registry = CollectorRegistry()
    queue = make(Recorder(), registry, max_items=1)
    await queue.put(signal(1))
    waiting = asyncio.create_task(queue.put(signal(2)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert await queue.drain(0.2) == 1  # no worker ever ran: dropped after the timeout
    with pytest.raises(SinkClosed):
        await asyncio.wait_for(waiting, 10)
    assert metric(registry, "voltmesh_sink_dropped_total", reason="shutdown") == 1
    assert metric(registry, "voltmesh_sink_dropped_total", reason="closed") == 1


async def test_cancelling_run_drains_what_is_queued() -> None:
    registry = CollectorRegistry()
    writer = Recorder()
    queue = make(writer, registry, batch_size=100, max_delay=60, drain_timeout=30)
    task = asyncio.create_task(queue.run())
    await queue.put_many([signal(n) for n in range(3)])
    await asyncio.sleep(0.05)
    assert writer.calls == []  # waiting for the batch to fill
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    assert writer.written == ["k0", "k1", "k2"]
    assert queue.lost_at_shutdown == 0


async def test_cancelling_run_with_a_dead_writer_stops_after_drain_timeout() -> None:
    registry = CollectorRegistry()
    writer = Recorder(lambda batch: RetryableError("dead"))
    queue = make(writer, registry, max_delay=0, drain_timeout=0.3)
    task = asyncio.create_task(queue.run())
    await queue.put_many([signal(n) for n in range(3)])
    await eventually(lambda: writer.calls)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    assert queue.lost_at_shutdown == 3
    assert metric(registry, "voltmesh_sink_dropped_total", reason="shutdown") == 3


async def test_run_twice_is_refused() -> None:
    queue = make(Recorder(), CollectorRegistry())
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await queue.run()
    await stopped(queue, task)
