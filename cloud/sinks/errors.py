"""The exception tree of :mod:`cloud.sinks`.

::

    CloudError (cloud.errors)
    └── SinkError                 base of everything raised by the sinks
        ├── SinkClosed            put() on a queue that is draining or stopped
        └── WriteError            a writer could not write (part of) a batch
            ├── RetryableError    try again later: connection refused, timeout, 429, 5xx
            ├── PermanentError    will never succeed (4xx, invalid point): counted, logged, dropped
            └── PartialWriteError some actions were written; ``retry`` and ``failed`` name the rest

Writers raise these; :class:`~cloud.sinks.queue.SinkQueue` decides what happens next. Any other
exception escaping a writer is treated as retryable (and logged with its traceback), so an
unexpected failure delays a lane but never loses an action silently.

The actions named in ``items`` / ``retry`` / ``failed`` must be the very objects of the batch
the writer was given (they are matched by identity).
"""

from __future__ import annotations

from collections.abc import Sequence

from cloud.actions import Action
from cloud.errors import CloudError


class SinkError(CloudError):
    """Base class of the sinks' errors."""


class SinkClosed(SinkError):
    """The queue is draining or stopped and accepts no more actions."""


class WriteError(SinkError):
    """A writer could not write (part of) a batch."""


class RetryableError(WriteError):
    """Worth another attempt later.

    ``items``: the actions to retry (None: the whole batch; the others count as written).
    ``retry_after``: seconds the server asked us to wait (HTTP ``Retry-After``), if any.
    """

    def __init__(self, message: str, *, items: Sequence[Action] | None = None,
                 retry_after: float | None = None) -> None:
        self.items = list(items) if items is not None else None
        self.retry_after = retry_after
        super().__init__(message)


class PermanentError(WriteError):
    """Will never succeed; the actions are dropped (counted as ``permanent`` and logged).

    ``items``: the failed actions (None: the whole batch; the others count as written).
    ``isolate``: when the whole batch failed and it holds more than one action, try each action
    alone once more, so one bad action does not take its neighbours down. Writers set it to
    False for failures that are not about the data (a bad token, a missing bucket).
    """

    def __init__(self, message: str, *, items: Sequence[Action] | None = None,
                 isolate: bool = True) -> None:
        self.items = list(items) if items is not None else None
        self.isolate = isolate
        super().__init__(message)


class PartialWriteError(WriteError):
    """Some actions of a batch were written; ``retry`` are to be retried, ``failed`` dropped.

    ``reasons`` maps ``id(action)`` of a failed action to a short text for the log.
    """

    def __init__(self, message: str, *, retry: Sequence[Action] = (),
                 failed: Sequence[Action] = (), retry_after: float | None = None,
                 reasons: dict[int, str] | None = None) -> None:
        self.retry = list(retry)
        self.failed = list(failed)
        self.retry_after = retry_after
        self.reasons = reasons or {}
        super().__init__(message)
