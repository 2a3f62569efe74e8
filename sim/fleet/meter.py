"""Live measurements of one kind of device in one process, and mergeable latency histograms.

The simulated devices write straight into their kind's :class:`KindMeter` (a counter
increment, a histogram bucket), so a progress snapshot costs nothing per message. Histograms
use logarithmic buckets (2 % wide), so quantiles of any number of samples take a few hundred
integers and the histograms of worker processes add up exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Histogram", "KindMeter"]

_RATIO = 1.02
_LOG_RATIO = math.log(_RATIO)
_FLOOR_MS = 0.001  # 1 µs: everything faster lands in bucket 0


class Histogram:
    """Latencies in milliseconds, in buckets ``(FLOOR·1.02^(i-1), FLOOR·1.02^i]``."""

    __slots__ = ("buckets", "count", "max_ms", "total_ms")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.max_ms = 0.0
        self.total_ms = 0.0

    def record(self, seconds: float) -> None:
        """Add one latency (seconds; negative values count as 0)."""
        ms = max(0.0, seconds * 1000.0)
        index = 0 if ms <= _FLOOR_MS else math.ceil(math.log(ms / _FLOOR_MS) / _LOG_RATIO)
        self.buckets[index] += 1
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)

    def merge(self, other: Histogram) -> None:
        """Add another histogram's samples."""
        self.buckets.update(other.buckets)
        self.count += other.count
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in ms, within 2 % (the bucket's upper edge, at most the
        largest sample); None without samples."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(_FLOOR_MS * _RATIO**index, self.max_ms)
        return self.max_ms  # pragma: no cover - rank <= count always stops the loop

    def summary(self) -> dict[str, Any]:
        """``{n, p50, p99, max, mean}`` in ms (rounded to µs)."""
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {"n": self.count, "p50": rounded(self.quantile(0.5)),
                "p99": rounded(self.quantile(0.99)),
                "max": rounded(self.max_ms) if self.count else None,
                "mean": rounded(self.total_ms / self.count) if self.count else None}

    def to_dict(self) -> dict[str, Any]:
        """A plain form for the pipe between processes."""
        return {"b": {str(k): v for k, v in self.buckets.items()}, "n": self.count,
                "max": self.max_ms, "sum": self.total_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """Inverse of :meth:`to_dict`."""
        out = cls()
        out.buckets = Counter({int(k): int(v) for k, v in data["b"].items()})
        out.count = int(data["n"])
        out.max_ms = float(data["max"])
        out.total_ms = float(data["sum"])
        return out


@dataclass
class KindMeter:
    """Counters of one kind of device; the devices update them as things happen.

    Gauges (connected, active sessions) are not kept here: the runner counts them from the
    devices when it takes a snapshot.
    """

    sent: int = 0
    """Messages the devices sent (frames, CALLs and CALLRESULTs, publishes, Modbus answers)."""
    received: int = 0
    acked: int = 0
    """Requests of the devices that got their protocol acknowledgement."""
    sessions_started: int = 0
    sessions_completed: int = 0
    """Sessions ended at the charger whose record the platform acknowledged."""
    reconnects: int = 0
    connect_failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: dict[str, Histogram] = field(default_factory=dict)

    def ack(self, name: str, seconds: float) -> None:
        """An acknowledgement the device waited ``seconds`` for."""
        self.acked += 1
        histogram = self.latency.get(name)
        if histogram is None:
            histogram = self.latency[name] = Histogram()
        histogram.record(seconds)

    def error(self, name: str, count: int = 1) -> None:
        """Count an error by name."""
        if count:
            self.errors[name] += count
