"""Writing a batch one action at a time (webhooks, commands, republish).

:func:`write_each` runs a per-action coroutine for every action of a batch concurrently and folds
the failures into one error for :class:`~cloud.sinks.queue.SinkQueue`: a batch of one raises the
action's own error; a larger batch raises :class:`PartialWriteError` naming what to retry and what
failed, and everything else counts as written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from cloud.actions import Action
from cloud.sinks.errors import PartialWriteError, PermanentError, RetryableError

log = logging.getLogger("voltmesh.cloud.sinks")


async def write_each(batch: Sequence[Action],
                     write_one: Callable[[Action], Awaitable[None]]) -> None:
    """``write_one(action)`` for each action at once; raise one error for all failures."""
    if len(batch) == 1:
        await write_one(batch[0])
        return
    results = await asyncio.gather(*(write_one(a) for a in batch), return_exceptions=True)
    retry: list[Action] = []
    failed: list[Action] = []
    reasons: dict[int, str] = {}
    retry_after: float | None = None
    for action, result in zip(batch, results, strict=True):
        if result is None:
            continue
        if isinstance(result, PermanentError):
            failed.append(action)
            reasons[id(action)] = str(result)
        elif isinstance(result, RetryableError):
            retry.append(action)
            if result.retry_after is not None:
                retry_after = max(retry_after or 0.0, result.retry_after)
        elif isinstance(result, Exception):
            log.error("action %s: unexpected error, will retry", action.key, exc_info=result)
            retry.append(action)
        else:  # CancelledError or another BaseException: not ours to swallow
            raise result
    if retry or failed:
        raise PartialWriteError(f"{len(retry)} to retry, {len(failed)} failed of {len(batch)}",
                                retry=retry, failed=failed, retry_after=retry_after,
                                reasons=reasons)
