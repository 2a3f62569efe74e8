"""Routes actions to the sink queue of their lane.

Each lane has its own :class:`~cloud.sinks.queue.SinkQueue`, so a dead InfluxDB fills (and
drops from) the telemetry queue only, while bills and alarms keep flowing. An action whose lane
has no sink is counted as ``voltmesh_sink_dropped_total{sink=<lane>, reason="no_sink"}`` and
logged; an action refused because its queue is shutting down is counted as ``closed``.

``dispatch()`` awaits ``put()`` of each action in order: a lane with ``overflow: block`` that is
full makes it wait (back-pressure on the consumer, never a silent loss).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from cloud.actions import Action, Lane
from cloud.sinks.errors import SinkClosed
from cloud.sinks.metrics import SinkMetrics
from cloud.sinks.queue import SinkQueue

log = logging.getLogger("voltmesh.cloud.sinks")


class Router:
    """Lane -> sink queue; ``run()`` runs every queue's worker."""

    def __init__(self, queues: Mapping[Lane, SinkQueue], registry: CollectorRegistry) -> None:
        self.queues: dict[Lane, SinkQueue] = dict(queues)
        self._metrics = SinkMetrics.on(registry)
        self._warned: set[Lane] = set()

    async def dispatch(self, actions: Iterable[Action], *,
                       track: frozenset[Lane] = frozenset()) -> Awaitable[Any] | None:
        """Queue every action on its lane's sink, in order.

        For actions on a lane in ``track`` the result is an awaitable that completes once they
        are all done (see :meth:`SinkQueue.put`): the consumer holds the message's PUBACK on it.
        """
        waits: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for action in actions:
            queue = self.queues.get(action.lane)
            if queue is None:
                self._metrics.dropped.labels(sink=action.lane.value, reason="no_sink").inc()
                if action.lane not in self._warned:
                    self._warned.add(action.lane)
                    log.warning("no sink configured for lane %s: action %s of rule %s dropped "
                                "(further drops only counted)", action.lane.value, action.key,
                                action.rule)
                continue
            done: asyncio.Future[None] | None = None
            if action.lane in track:
                done = loop.create_future()
                waits.append(done)
            try:
                if queue.offer(action, done=done) is None:  # full: wait for room
                    await queue.put(action, done=done)
            except SinkClosed:
                continue  # counted and logged by the queue; we are shutting down
        if not waits:
            return None
        return asyncio.gather(*waits)

    async def run(self) -> None:
        """Run every queue's worker until cancelled (each then drains for its drain_timeout)."""
        async with asyncio.TaskGroup() as tg:
            for lane, queue in self.queues.items():
                tg.create_task(queue.run(), name=f"sink-{lane.value}")

    async def drain(self, timeout: float) -> int:
        """Drain every queue at once (at most ``timeout`` s); returns the actions lost."""
        lost = await asyncio.gather(*(q.drain(timeout) for q in self.queues.values()))
        return sum(lost)
