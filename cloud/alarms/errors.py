"""The exception tree of :mod:`cloud.alarms` (see the package docstring)."""

from __future__ import annotations

from cloud.errors import CloudError


class AlarmError(CloudError):
    """Base class of the alarm package's errors."""


class AlarmNotFound(AlarmError):
    """No alarm with this id (or not one the caller may see): HTTP 404."""

    def __init__(self, alarm_id: str) -> None:
        self.alarm_id = alarm_id
        super().__init__(f"no alarm {alarm_id!r}")


class AlarmConflict(AlarmError):
    """The operation does not fit the alarm's state (e.g. acknowledging a pending alarm): HTTP 409."""

    def __init__(self, alarm_id: str, state: str, message: str) -> None:
        self.alarm_id = alarm_id
        self.state = state
        super().__init__(f"alarm {alarm_id!r} is {state}: {message}")


class InvalidSignal(AlarmError):
    """An :class:`~cloud.actions.AlarmSignal` cannot be processed (unknown level, empty key ...).

    :meth:`AlarmManager.handle` does not raise it: it stores the signal in ``alarm_rejected``
    with this message, counts and logs it, and goes on with the rest of the batch.
    """


class ChannelError(AlarmError):
    """A notification channel failed to deliver; ``retryable`` says whether a retry may help."""

    def __init__(self, channel: str, message: str, *, retryable: bool = True) -> None:
        self.channel = channel
        self.retryable = retryable
        super().__init__(f"channel {channel}: {message}")
