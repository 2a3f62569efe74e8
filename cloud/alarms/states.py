"""The alarm vocabulary: levels (ordered), lifecycle states and transition events."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    """Severity, from least to most severe (compare with :func:`rank`)."""

    INFO = "info"
    WARNING = "warning"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


_RANK = {level: i for i, level in enumerate(Level)}


def rank(level: str) -> int:
    """The severity order of ``level`` (ValueError for an unknown level)."""
    return _RANK[Level(level)]


class State(StrEnum):
    """Lifecycle states.

    ``pending`` holds the start of a raise condition until it has lasted ``debounce_ms``;
    ``open`` and ``acknowledged`` are active (the condition holds); ``cleared`` is inactive and
    not yet acknowledged; ``closed`` is final and frees the dedupe key.
    """

    PENDING = "pending"
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"
    CLOSED = "closed"


#: states in which the raise condition is considered to hold
ACTIVE_STATES = frozenset({State.OPEN, State.ACKNOWLEDGED})
#: states that hold the dedupe key
LIVE_STATES = frozenset({State.PENDING, State.OPEN, State.ACKNOWLEDGED, State.CLEARED})


class Event(StrEnum):
    """What happened to an alarm (history entries, notifications, time-series points)."""

    PENDING = "pending"  # raise seen, debounce running (history only)
    RAISED = "raised"  # became open (first time or again after a clear)
    ESCALATED = "escalated"  # a raise with a higher level while active
    CLEARED = "cleared"  # the clear condition held for clear_after_ms
    ACKNOWLEDGED = "acknowledged"  # by an operator
    CLOSED = "closed"  # final: cleared + acknowledged, or closed by an operator


#: events a notification channel can subscribe to
NOTIFY_EVENTS = frozenset({Event.RAISED, Event.ESCALATED, Event.CLEARED, Event.ACKNOWLEDGED,
                           Event.CLOSED})
