"""Transaction messages wait here until the CSMS has answered them (across reconnects).

OCPP asks a charge point to deliver transaction-related messages reliably (1.6 §4.7 / "Offline
behaviour": StartTransaction, StopTransaction and the MeterValues of a transaction are queued
while offline and delivered in order once the connection is back; 2.0.1: TransactionEvent, with
``offline: true`` for events made while offline). One message is sent at a time and leaves the
queue only once answered (a CALLRESULT, or a CALLERROR: the CSMS has seen it).

The queue is bounded: when ``maxlen`` items wait, a new one first evicts the oldest *droppable*
item (periodic meter values; never the one being sent) -- 2.0.1 recommends dropping
intermediate ``Updated`` events and keeping ``Started`` / ``Ended`` -- counted in
:attr:`TxQueue.dropped`. Starts and stops are never dropped (billing); only they can take the
queue past ``maxlen``, two per session.

A payload is an ``ocpp`` call dataclass, or a builder ``() -> call | None`` run when the item is
sent: a 1.6 message made before its StartTransaction was answered learns the transactionId the
CSMS assigned only then (None = nothing to send any more, e.g. the start was refused).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Payload = Any
"""An ``ocpp`` call dataclass, or a ``Callable[[], call | None]`` built at send time."""


@dataclass(eq=False)
class TxItem:
    """One queued CALL payload and who waits for its answer."""

    payload: Payload
    future: asyncio.Future[Any] = field(repr=False)
    droppable: bool = False
    on_answer: Callable[[Any], None] | None = field(default=None, repr=False)
    """Run with the ``call_result`` as soon as it arrives, before the next item is built
    (the future's waiter runs later: a 1.6 start binds its transactionId here, in time for
    the meter values queued behind it)."""
    attempts: int = 0

    def build(self) -> Any:
        """The call to send now (None: nothing to send)."""
        return self.payload() if callable(self.payload) else self.payload


class TxQueue:
    """Bounded FIFO of :class:`TxItem`, waitable."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._items: deque[TxItem] = deque()
        self._maxlen = maxlen
        self._nonempty = asyncio.Event()
        self.sending: TxItem | None = None
        """The item whose CALL is on the wire (never evicted)."""
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, payload: Payload, *, droppable: bool = False,
            on_answer: Callable[[Any], None] | None = None) -> asyncio.Future[Any]:
        """Queue a payload; the future gets the ``call_result`` (or the CALLERROR exception,
        or None when a builder had nothing to send; cancelled when the item was dropped)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # nobody awaits a meter value's answer
        if len(self._items) >= self._maxlen:
            self._evict()
        self._items.append(TxItem(payload, future, droppable, on_answer))
        self._nonempty.set()
        return future

    def _evict(self) -> None:
        for item in self._items:
            if item.droppable and item is not self.sending:
                self._items.remove(item)
                self.dropped += 1
                item.future.cancel()
                return

    async def head(self) -> TxItem:
        """The oldest item (waits while empty)."""
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._items[0]

    def done(self, item: TxItem) -> None:
        """Remove an answered item."""
        if self._items and self._items[0] is item:
            self._items.popleft()
        elif item in self._items:
            self._items.remove(item)
        if self.sending is item:
            self.sending = None


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
