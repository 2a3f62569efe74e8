"""Where a rule set counts what it does: matches, actions, evaluation failures."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from cloud.actions import Lane


class RuleStats(Protocol):
    """Receives the counts of one or more rule sets (the engine keeps one across reloads)."""

    def matched(self, rule: str, count: int = 1) -> None:
        """``rule``'s statement matched ``count`` messages (or batch samples)."""

    def failed(self, rule: str, reason: str) -> None:
        """An expression of ``rule`` failed (``missing``, ``type``), params were invalid
        (``payload``) or the engine hit a bug (``internal``)."""

    def emitted(self, lane: Lane, count: int = 1) -> None:
        """``count`` actions for ``lane`` were produced."""


class CountingStats:
    """In-memory counts (the default; what ``voltmesh rules test`` prints)."""

    def __init__(self) -> None:
        self.matches: Counter[str] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()
        self.actions: Counter[str] = Counter()

    def matched(self, rule: str, count: int = 1) -> None:
        self.matches[rule] += count

    def failed(self, rule: str, reason: str) -> None:
        self.failures[rule, reason] += 1

    def emitted(self, lane: Lane, count: int = 1) -> None:
        self.actions[lane.value] += count
