"""In-process change notification for live order status (``OrderService.watch``).

``handle()`` notifies the ids it changed; a watcher waits on its event with a timeout and
re-reads the order either way, so changes made by another cloud worker are seen within the
poll interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class Notifier:
    """Wakes the watchers of an order id (event-loop side only)."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = {}

    def notify(self, order_ids: Iterable[int]) -> None:
        for order_id in order_ids:
            for event in self._waiters.get(order_id, ()):
                event.set()

    @contextmanager
    def subscribe(self, order_id: int) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(order_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(order_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[order_id]

    def watchers(self, order_id: int) -> int:
        """How many watchers an order has (tests, metrics)."""
        return len(self._waiters.get(order_id, ()))
