"""Any async ``handle(batch)`` as a sink: how sessions & billing and alarms plug in.

The handler gets a batch of actions of its lane (in order with ``in_flight: 1``) and either
returns (all done) or raises: :class:`~cloud.sinks.errors.RetryableError`,
:class:`~cloud.sinks.errors.PermanentError` or :class:`~cloud.sinks.errors.PartialWriteError`
to say what happened; any other exception is retried (and logged with its traceback). Handlers
must be idempotent on ``action.key``: a batch can be retried after part of it was done.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from cloud.actions import Action
from cloud.sinks.errors import PartialWriteError, PermanentError, RetryableError

log = logging.getLogger("voltmesh.cloud.sinks")

Handle = Callable[[list[Action]], Awaitable[None]]


class HandlerSink:
    """Wraps ``handle``; with ``accepts``, other action types are dropped as permanent."""

    def __init__(self, handle: Handle, *, accepts: tuple[type[Action], ...] = ()) -> None:
        self.handle = handle
        self.accepts = accepts

    async def __call__(self, batch: list[Action]) -> None:
        """Hand the batch (minus actions of a type not accepted) to ``handle``."""
        if not self.accepts:
            await self.handle(batch)
            return
        wrong = [a for a in batch if not isinstance(a, self.accepts)]
        if not wrong:
            await self.handle(batch)
            return
        right = [a for a in batch if isinstance(a, self.accepts)]
        reasons = {id(a): f"{type(a).__name__} not accepted" for a in wrong}
        retry: list[Action] = []
        failed: list[Action] = list(wrong)
        retry_after: float | None = None
        if right:
            try:
                await self.handle(right)
            except RetryableError as exc:
                retry = exc.items if exc.items is not None else right
                retry_after = exc.retry_after
            except PermanentError as exc:
                failed += exc.items if exc.items is not None else right
            except PartialWriteError as exc:
                retry, failed, retry_after = exc.retry, failed + exc.failed, exc.retry_after
                reasons.update(exc.reasons)
            except Exception:
                log.exception("handler failed, will retry %d actions", len(right))
                retry = right
        raise PartialWriteError(f"{len(wrong)} actions of a type not accepted", retry=retry,
                                failed=failed, retry_after=retry_after, reasons=reasons)
