"""Telemetry batching: property reports of one device within a flush interval become one message.

A single sample is sent as ``p``; several as a batch ``b``. Batches go into the outbox as
telemetry rows, so that they survive an outage at a priority below events. A periodic flush of
every device is one outbox transaction (:attr:`TelemetryBatcher.group`): a thousand charging
piles whose real-time data arrive in the same second are one commit, not a thousand commits in
one event-loop callback (``bench/ykc_piles.py --probe`` saw that callback hold the loop for
20-40 ms at 1,000 charging piles).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from thingmodels.envelope import Sample

FlushFn = Callable[[str, str, str, list[Sample]], None]


@dataclass
class _Pending:
    src: str
    samples: list[Sample] = field(default_factory=list)


class TelemetryBatcher:
    """Collect samples per (product, device); flush them periodically or when a batch is full."""

    def __init__(self, flush: FlushFn, *, interval: float = 1.0, max_batch: int = 100) -> None:
        self._flush = flush
        self.interval = interval
        self.max_batch = max_batch
        self._pending: dict[tuple[str, str], _Pending] = {}
        #: wraps the flushes of one :meth:`flush_all` (the gateway: one outbox transaction,
        #: set by :class:`~edge.context.EdgeContext`)
        self.group: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext

    def add(self, product: str, device: str, src: str, ts: int | None, params: dict[str, Any]) -> None:
        """Queue one sample."""
        key = (product, device)
        pending = self._pending.get(key)
        if pending is None or pending.src != src:
            if pending is not None:
                self._flush_key(key)
            pending = self._pending[key] = _Pending(src)
        pending.samples.append(Sample(ts, params))
        if len(pending.samples) >= self.max_batch:
            self._flush_key(key)

    def _flush_key(self, key: tuple[str, str]) -> None:
        pending = self._pending.pop(key, None)
        if pending and pending.samples:
            self._flush(key[0], key[1], pending.src, pending.samples)

    def flush_all(self) -> None:
        """Flush everything now (in one :attr:`group`)."""
        if not self._pending:
            return
        with self.group():
            for key in list(self._pending):
                self._flush_key(key)

    @property
    def pending(self) -> int:
        """Samples waiting."""
        return sum(len(p.samples) for p in self._pending.values())

    async def run(self) -> None:
        """Flush every ``interval`` until cancelled (and once more on the way out)."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.flush_all()
        finally:
            self.flush_all()
