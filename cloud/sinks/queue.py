"""One lane's bounded queue and its worker: batching, in-flight limit, retries, drops counted.

``put()`` accepts an action (or refuses it as a duplicate of a recent idempotency key); the
worker (``run()``, a long-lived task) takes batches of up to ``batch_size`` actions, waiting at
most ``max_delay`` for a partial batch to fill, and writes up to ``in_flight`` batches at once.

A failed batch is retried in place (it keeps its in-flight slot, so with ``in_flight: 1`` the
lane stays in order) with capped exponential backoff and jitter. Before every attempt an action
that has had ``max_attempts`` attempts, or has waited longer than its TTL, is dropped. When a
whole multi-action batch fails permanently, each action is tried once more alone, so one bad
action does not take its neighbours down.

When the queue is full, ``drop_oldest`` drops the oldest waiting action (telemetry) and
``block`` makes the producer wait (billing, alarms, commands). Every drop is counted by reason
and logged (at most once per reason every 10 s per sink, with the number suppressed).

Shutdown: ``drain(timeout)`` (or cancelling ``run()``, which drains for
``config.drain_timeout``) stops accepting, writes what is queued, and drops only what is still
there when the time is up (``shutdown``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from cloud.actions import Action
from cloud.sinks.config import Overflow, QueueConfig
from cloud.sinks.errors import PartialWriteError, PermanentError, RetryableError, SinkClosed
from cloud.sinks.metrics import SinkMetrics

log = logging.getLogger("voltmesh.cloud.sinks")

#: writes one batch; raises RetryableError / PermanentError / PartialWriteError on failure
Writer = Callable[[list[Action]], Awaitable[None]]
#: an action's own time to live in seconds (e.g. a command's timeout), or None
TtlOf = Callable[[Action], float | None]

LOG_INTERVAL = 10.0
#: longest wait a server's Retry-After can impose (the TTL still applies)
RETRY_AFTER_MAX = 300.0


@dataclass(slots=True)
class _Item:
    action: Action
    since: float  # monotonic time it was queued
    expires: float | None  # monotonic deadline of its last attempt
    attempts: int = 0


@dataclass(slots=True)
class _Outcome:
    retry: list[_Item] = field(default_factory=list)
    failed: list[_Item] = field(default_factory=list)
    retry_after: float | None = None
    isolate: bool = False
    reason: str = ""


class _ThrottledLog:
    """Logs a topic at most once per interval, telling how many were suppressed."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, topic: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(topic, (-math.inf, 0))
        if now - last < self.interval:
            self._last[topic] = (last, suppressed + 1)
            return
        self._last[topic] = (now, 0)
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        log.log(level, msg, *args, exc_info=exc_info)


def _keys(items: Sequence[_Item], limit: int = 3) -> str:
    keys = [it.action.key for it in items[:limit]]
    more = f" +{len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(keys) + more


class SinkQueue:
    """A bounded queue and worker for one sink (one lane)."""

    def __init__(self, name: str, writer: Writer, config: QueueConfig,
                 registry: CollectorRegistry, *, ttl_of: TtlOf | None = None) -> None:
        self.name = name
        self.writer = writer
        self.config = config
        self.ttl_of = ttl_of
        metrics = SinkMetrics.on(registry)
        self._metrics = metrics
        self._queued = metrics.queued.labels(sink=name)
        self._written = metrics.written.labels(sink=name)
        self._retried = metrics.retried.labels(sink=name)
        self._duplicates = metrics.duplicates.labels(sink=name)
        # read when scraped: the queue's length at that moment
        metrics.depth.labels(sink=name).set_function(self._depth_now)
        self._in_flight_gauge = metrics.in_flight.labels(sink=name)
        self._write_seconds = metrics.write_seconds.labels(sink=name)
        self._items: deque[_Item] = deque()
        self._pending: set[str] = set()  # keys queued or being written
        self._done: OrderedDict[str, None] = OrderedDict()  # keys written recently
        #: completion futures by key: who waits for a queued action to be done (or given up)
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._wake = asyncio.Event()  # the worker may have something to do
        self._space = asyncio.Event()  # room in the queue (block policy)
        self._abort = asyncio.Event()  # shutdown: stop retrying, drop what is left
        self._finished = asyncio.Event()
        self._slots = asyncio.Semaphore(config.in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._running = False
        self._in_flight = 0
        self._lost = 0
        self._log = _ThrottledLog()

    # -- producer side -----------------------------------------------------------------------

    def _depth_now(self) -> float:
        return float(len(self._items))

    @property
    def depth(self) -> int:
        """Actions waiting (not counting batches in flight)."""
        return len(self._items)

    @property
    def in_flight(self) -> int:
        """Batches being written right now."""
        return self._in_flight

    @property
    def closed(self) -> bool:
        """True once draining or stopped: ``put()`` raises :class:`SinkClosed`."""
        return self._closed

    @property
    def lost_at_shutdown(self) -> int:
        """Actions dropped because a drain ran out of time."""
        return self._lost

    async def put(self, action: Action, *, done: asyncio.Future[None] | None = None) -> bool:
        """Queue ``action``; False when its key was seen recently (a duplicate, not queued).

        ``done`` (optional) is resolved once the action is written, or given up for good
        (permanent failure, attempts, TTL: counted and logged); never when it is dropped at
        shutdown, so whoever waits for it (the consumer's PUBACK) does not acknowledge work
        that was not done. A duplicate's ``done`` follows the original.

        With ``overflow: block`` this waits while the queue is full; with ``drop_oldest`` it
        never waits. Raises :class:`SinkClosed` (and counts the action as ``closed``) once the
        queue is draining.
        """
        while True:
            queued = self.offer(action, done=done)
            if queued is not None:
                return queued
            self._space.clear()
            await self._space.wait()

    def offer(self, action: Action, *, done: asyncio.Future[None] | None = None) -> bool | None:
        """:meth:`put` without waiting: None (nothing done) when ``put`` would have to wait
        for room (``overflow: block`` and the queue full); otherwise what ``put`` returns."""
        key = action.key
        if self._closed:
            self._count_drop(1, "closed")
            self._log.log(logging.WARNING, "closed",
                          "sink %s: closed, action %s dropped", self.name, key)
            raise SinkClosed(f"sink {self.name} is closed")
        if key and (key in self._pending or key in self._done):
            self._duplicates.inc()
            if done is not None:
                if key in self._pending:
                    self._waiters.setdefault(key, []).append(done)
                elif not done.done():
                    done.set_result(None)
            return False
        if len(self._items) >= self.config.max_items:
            if self.config.overflow is not Overflow.DROP_OLDEST:
                return None
            self._drop([self._items.popleft()], "queue_full")
        now = time.monotonic()
        ttl = self.config.ttl
        own = self.ttl_of(action) if self.ttl_of else None
        if own is not None and (ttl is None or own < ttl):
            ttl = own
        self._items.append(_Item(action, now, now + ttl if ttl is not None else None))
        if key:
            self._pending.add(key)
            if done is not None:
                self._waiters.setdefault(key, []).append(done)
        elif done is not None and not done.done():
            done.set_result(None)  # without a key nothing can be tracked: do not hold anyone
        self._queued.inc()
        size = len(self._items)
        if size == 1 or size >= self.config.batch_size:
            self._wake.set()
        return True

    async def put_many(self, actions: Sequence[Action]) -> int:
        """``put()`` each action in order; returns how many were queued."""
        queued = 0
        for action in actions:
            queued += await self.put(action)
        return queued

    # -- worker ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Write batches until drained; on cancellation, drain for ``config.drain_timeout``."""
        if self._running or self._finished.is_set():
            raise RuntimeError(f"sink {self.name}: run() called twice")
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                try:
                    await self._feed(tg)
                except asyncio.CancelledError:
                    await self._drain_inside(tg)
                    raise
        finally:
            self._drop_waiting()
            await self._close_writer()
            self._running = False
            self._finished.set()

    async def drain(self, timeout: float) -> int:
        """Stop accepting, write what is queued, wait for it at most ``timeout`` seconds.

        Whatever is still queued or retrying then is dropped (``shutdown``). Returns the number
        of actions so lost. ``run()`` returns once the drain is over.
        """
        self._close()
        try:
            async with asyncio.timeout(timeout):
                await self._finished.wait()
        except TimeoutError:
            self._stop_now()
            if self._running:
                await self._finished.wait()
            else:  # no worker ever ran
                self._drop_waiting()
                self._finished.set()
        return self._lost

    def _close(self) -> None:
        self._closed = True
        self._wake.set()
        self._space.set()

    def _stop_now(self) -> None:
        self._abort.set()
        self._wake.set()
        for task in list(self._tasks):
            task.cancel()

    async def _drain_inside(self, tg: asyncio.TaskGroup) -> None:
        """run() was cancelled: keep writing for drain_timeout, then give up."""
        self._close()
        try:
            async with asyncio.timeout(self.config.drain_timeout):
                await self._feed(tg)
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        except TimeoutError:
            pass
        self._stop_now()

    async def _feed(self, tg: asyncio.TaskGroup) -> None:
        """Start a delivery per batch while in-flight slots allow; return once closed & empty."""
        while True:
            await self._slots.acquire()
            try:
                batch = await self._take_batch()
            except BaseException:
                self._slots.release()
                raise
            if batch is None:
                self._slots.release()
                return
            task = tg.create_task(self._deliver(batch), name=f"sink-{self.name}-batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _take_batch(self) -> list[_Item] | None:
        config = self.config
        while True:
            if self._abort.is_set():
                self._drop_waiting()
                return None
            self._expire_head()
            if self._items:
                if self._closed or len(self._items) >= config.batch_size:
                    break
                wait = self._items[0].since + config.max_delay - time.monotonic()
                if wait <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        count = min(config.batch_size, len(self._items))
        batch = [self._items.popleft() for _ in range(count)]
        self._space.set()
        return batch

    def _expire_head(self) -> None:
        now = time.monotonic()
        expired = []
        while self._items and (deadline := self._items[0].expires) is not None \
                and now > deadline:
            expired.append(self._items.popleft())
        if expired:
            self._space.set()
            self._drop(expired, "ttl")

    async def _deliver(self, batch: list[_Item]) -> None:
        self._in_flight += 1
        self._in_flight_gauge.set(self._in_flight)
        groups: deque[tuple[list[_Item], bool]] = deque([(batch, True)])
        pending: list[_Item] = []
        try:
            while groups:
                pending, may_isolate = groups.popleft()
                failures = 0
                while pending:
                    pending = self._prune(pending)
                    if not pending:
                        break
                    if self._abort.is_set():
                        self._drop(pending, "shutdown")
                        pending = []
                        break
                    for item in pending:
                        item.attempts += 1
                    outcome = await self._attempt(pending)
                    if outcome.failed:
                        whole = len(outcome.failed) == len(pending)
                        if outcome.isolate and may_isolate and whole and len(pending) > 1:
                            # each alone, in order, before the rest of this batch
                            for item in outcome.failed:
                                item.attempts -= 1
                            groups.extendleft([([item], False)
                                               for item in reversed(outcome.failed)])
                            pending = []
                            break
                        self._drop(outcome.failed, "permanent", outcome.reason)
                    pending = self._prune(outcome.retry)
                    if pending:
                        failures += 1
                        self._retried.inc(len(pending))
                        await self._backoff(failures, outcome.retry_after)
        except asyncio.CancelledError:
            self._drop(pending + [item for group, _ in groups for item in group], "shutdown")
            raise
        finally:
            self._in_flight -= 1
            self._in_flight_gauge.set(self._in_flight)
            self._slots.release()

    def _prune(self, items: list[_Item]) -> list[_Item]:
        now = time.monotonic()
        keep, too_many, too_old = [], [], []
        limit = self.config.max_attempts
        for item in items:
            if limit and item.attempts >= limit:
                too_many.append(item)
            elif item.expires is not None and now > item.expires:
                too_old.append(item)
            else:
                keep.append(item)
        if too_many:
            self._drop(too_many, "max_attempts")
        if too_old:
            self._drop(too_old, "ttl")
        return keep

    async def _attempt(self, items: list[_Item]) -> _Outcome:
        """One write of ``items``: marks the written ones done, returns what is left."""
        actions = [item.action for item in items]
        by_id = {id(item.action): item for item in items}

        def pick(chosen: Sequence[Action] | None) -> list[_Item]:
            if chosen is None:
                return list(items)
            return [by_id[id(a)] for a in chosen if id(a) in by_id]

        outcome = _Outcome()
        started = time.perf_counter()
        try:
            await self.writer(actions)
        except RetryableError as exc:
            outcome.retry = pick(exc.items)
            outcome.retry_after = exc.retry_after
            self._failed("retryable", items, exc)
        except PermanentError as exc:
            outcome.failed = pick(exc.items)
            outcome.isolate = exc.isolate and exc.items is None
            outcome.reason = str(exc)
            self._failed("permanent", items, exc)
        except PartialWriteError as exc:
            outcome.retry = pick(exc.retry)
            outcome.failed = pick(exc.failed)
            outcome.retry_after = exc.retry_after
            outcome.reason = "; ".join(sorted(set(exc.reasons.values()))) or str(exc)
            self._failed("partial", items, exc)
        except Exception as exc:  # noqa: BLE001 - an error the writer did not classify: retry
            outcome.retry = list(items)
            self._failed("unexpected", items, exc)
        finally:
            self._write_seconds.observe(time.perf_counter() - started)
        unresolved = {id(item) for item in outcome.retry} | {id(item) for item in outcome.failed}
        self._mark_done([item for item in items if id(item) not in unresolved])
        return outcome

    def _failed(self, kind: str, items: list[_Item], exc: BaseException) -> None:
        self._metrics.failed_batches.labels(sink=self.name, error=kind).inc()
        level = logging.ERROR if kind in ("permanent", "unexpected") else logging.WARNING
        self._log.log(level, f"fail:{kind}", "sink %s: %s write failure of %d actions (%s): %s",
                      self.name, kind, len(items), _keys(items), exc,
                      exc_info=kind == "unexpected")

    async def _backoff(self, failures: int, retry_after: float | None) -> None:
        config = self.config
        ceiling = min(config.backoff_max, config.backoff_initial * 2 ** min(failures - 1, 30))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311
        if retry_after is not None:  # the server's Retry-After, honoured up to 5 minutes
            delay = max(delay, min(retry_after, RETRY_AFTER_MAX))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._abort.wait()

    def _mark_done(self, items: list[_Item]) -> None:
        if not items:
            return
        self._written.inc(len(items))
        keep = self.config.recent_keys
        for item in items:
            key = item.action.key
            if not key:
                continue
            self._pending.discard(key)
            self._resolve(key)
            if keep:
                self._done[key] = None
        while len(self._done) > keep:
            self._done.popitem(last=False)

    def _drop(self, items: list[_Item], reason: str, detail: str = "") -> None:
        if not items:
            return
        for item in items:
            self._pending.discard(item.action.key)
            if reason == "shutdown":
                self._waiters.pop(item.action.key, None)  # not done: nobody may acknowledge
            else:
                self._resolve(item.action.key)  # given up for good (counted and logged)
        self._count_drop(len(items), reason)
        level = logging.ERROR if reason in ("permanent", "max_attempts", "shutdown") \
            else logging.WARNING
        self._log.log(level, f"drop:{reason}", "sink %s: dropped %d actions (%s): %s%s",
                      self.name, len(items), reason, _keys(items),
                      f" ({detail})" if detail else "")

    def _resolve(self, key: str) -> None:
        for future in self._waiters.pop(key, ()):
            if not future.done():
                future.set_result(None)

    def _count_drop(self, count: int, reason: str) -> None:
        self._metrics.dropped.labels(sink=self.name, reason=reason).inc(count)
        if reason == "shutdown":
            self._lost += count

    def _drop_waiting(self) -> None:
        if self._items:
            items = list(self._items)
            self._items.clear()
            self._drop(items, "shutdown")
        self._space.set()

    async def _close_writer(self) -> None:
        aclose = getattr(self.writer, "aclose", None)
        if aclose is None:
            return
        try:
            await aclose()
        except Exception:
            log.exception("sink %s: closing the writer failed", self.name)
