"""Shared test values for the billing tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cloud.billing import Tariff

SHANGHAI = ZoneInfo("Asia/Shanghai")

#: the worked example of docs/protocols: tip 10-11, peak 11-12 + 18-21,
#: flat 08-10 + 12-18 + 21-23, valley 23-08
DOC = {
    "tiers": {"tip": {"energy": "1.2", "service": "0.6"},
              "peak": {"energy": "1.0", "service": "0.6"},
              "flat": {"energy": "0.7", "service": "0.6"},
              "valley": {"energy": "0.3", "service": "0.6"}},
    "periods": [
        {"start": "23:00", "end": "08:00", "tier": "valley"},
        {"start": "08:00", "end": "10:00", "tier": "flat"},
        {"start": "10:00", "end": "11:00", "tier": "tip"},
        {"start": "11:00", "end": "12:00", "tier": "peak"},
        {"start": "12:00", "end": "18:00", "tier": "flat"},
        {"start": "18:00", "end": "21:00", "tier": "peak"},
        {"start": "21:00", "end": "23:00", "tier": "flat"},
    ],
}


def tariff() -> Tariff:
    """The worked-example tariff."""
    return Tariff.from_doc(DOC)


def ms(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0,
       tz: ZoneInfo = SHANGHAI) -> int:
    """A local wall time as ms since the epoch."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp() * 1000)
