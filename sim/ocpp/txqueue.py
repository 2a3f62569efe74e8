"""Transaction messages wait here until the CSMS has answered them (across reconnects).

OCPP asks a charge point to deliver transaction messages (1.6 Start/StopTransaction, 2.0.1
TransactionEvent) reliably: they are queued while offline and re-sent after a reconnect, in
order. An item leaves the queue only when it was answered (or answered with a CALLERROR).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TxItem:
    """One queued CALL payload (an ``ocpp`` call dataclass) and who waits for its answer."""

    payload: Any
    future: asyncio.Future[Any] = field(repr=False)
    attempts: int = 0


class TxQueue:
    """FIFO of :class:`TxItem`, waitable."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._items: deque[TxItem] = deque()
        self._maxlen = maxlen
        self._nonempty = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, payload: Any) -> asyncio.Future[Any]:
        """Queue a payload; the future gets the ``call_result`` (or the CALLERROR exception)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(self._items) >= self._maxlen:
            old = self._items.popleft()
            self.dropped += 1
            if not old.future.done():
                old.future.cancel()
        self._items.append(TxItem(payload, future))
        self._nonempty.set()
        return future

    async def head(self) -> TxItem:
        """The oldest item (waits while empty)."""
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._items[0]

    def pop(self) -> TxItem:
        """Remove the oldest item."""
        return self._items.popleft()
